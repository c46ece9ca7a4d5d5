"""`sluice report`: calls, errors, tokens, cost and latency per group, from the call records.

The pure part works on `CallRecord`s and knows nothing of databases or terminals:
`parse_since` turns `--since` into epoch seconds, `build_report` turns records into a `Report`
(one `ReportRow` per group plus a TOTAL row), `report_json` and `format_table` render it.
`load_calls` reads the records from a `RecordStore` (read only: it never creates a database
or a table), and `run_report` ties it together for the CLI; both raise `ReportError` with a
message fit for a user, never a traceback.

Only `kind="call"` records count (attempt records would count retried calls twice). The TOTAL
row is computed from all the calls, like a group of its own: its percentiles are percentiles of
every call's latency, not sums or averages of the groups' percentiles. Percentiles interpolate
between ranks (`sluice.observe.store.percentile`, the same as `RecordStore.aggregate`).

JSON (`report_json`, `sluice report --json`) is one object::

    {"since": "2025-05-01T10:00:00+00:00", "by": "model",
     "groups": [{"group": "gpt-4o-mini", "calls": 12, "errors": 1, ...}, ...],
     "total": {"group": null, "calls": 30, ...}}

`since` is ISO 8601 in UTC. Counts and token sums are integers; `error_rate_pct` and
`cache_hit_rate_pct` are floats from 0 to 100 (null for no calls); latency and TTFT
percentiles are float milliseconds (null when nothing was measured: TTFT exists only for
streamed answers). Money is never a float: `cost_usd` and `cost_saved_usd` are decimal
strings in plain notation (`"0.0000210000"`), exact sums of the stored `Decimal`s. `cost_usd`
sums the calls with a known price; `unpriced_calls` counts the others, which are never taken as
$0, and `cost_usd` is null when the group has calls but none of them has a price.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from sluice.observe.records import CallRecord
from sluice.observe.store import STAT_COLUMNS, CallStats, GroupBy, RecordStore

# `--by` name -> CallRecord field (and records column).
GROUPS: dict[str, GroupBy] = {
    "user": "user_id",
    "feature": "feature",
    "model": "model_requested",
    "route": "route",
    "tenant": "tenant",
    "deployment": "deployment",
    # A batch item's call has its batch as parent (sluice.web.batches): spend per batch.
    "batch": "parent_request_id",
}
DEFAULT_SINCE = "24h"
NO_GROUP = "(none)"  # how the table shows calls without a value for the grouping field

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_COLUMNS = ("request_id", "kind", "ts", *GROUPS.values(), *STAT_COLUMNS, "routing_saved_usd")


class ReportError(Exception):
    """A report that cannot be made; the message is meant for the user."""


def parse_since(text: str, now: float) -> float:
    """`30m`, `24h`, `7d`, `2w` (before `now`), or an ISO date/time, as epoch seconds.
    An ISO value without an offset is UTC; a bare date is its midnight, UTC."""
    value = text.strip()
    match = _DURATION.fullmatch(value.lower())
    if match:
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ReportError(
            f"--since {text!r}: expected a duration like 30m, 24h, 7d or 2w, or an ISO "
            "date/time like 2025-05-01 or 2025-05-01T12:00:00+02:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRow:
    group: str | None  # None: calls without a value (and the TOTAL row)
    calls: int
    errors: int  # status >= 400
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal | None  # over the priced calls; None when there are calls but none priced
    unpriced_calls: int
    cost_saved_usd: Decimal  # by prompt caching (cache-read tokens at the cheaper price)
    cache_hits: int  # calls answered from Sluice's cache (exact or semantic)
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    ttft_ms_p99: float | None

    @property
    def error_rate_pct(self) -> float | None:
        return 100 * self.errors / self.calls if self.calls else None

    @property
    def cache_hit_rate_pct(self) -> float | None:
        return 100 * self.cache_hits / self.calls if self.calls else None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "calls": self.calls,
            "errors": self.errors,
            "error_rate_pct": self.error_rate_pct,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": None if self.cost_usd is None else _plain(self.cost_usd),
            "unpriced_calls": self.unpriced_calls,
            "cost_saved_usd": _plain(self.cost_saved_usd),
            "cache_hits": self.cache_hits,
            "cache_hit_rate_pct": self.cache_hit_rate_pct,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
            "latency_ms_p99": self.latency_ms_p99,
            "ttft_ms_p50": self.ttft_ms_p50,
            "ttft_ms_p95": self.ttft_ms_p95,
            "ttft_ms_p99": self.ttft_ms_p99,
        }


@dataclass(frozen=True, slots=True)
class Report:
    since: float  # epoch seconds
    by: str  # a key of GROUPS
    groups: list[ReportRow]  # most calls first; the None group last among equals
    total: ReportRow
    # Routed calls (sluice.routing): cost at each route's reference model minus actual cost.
    routed_calls: int = 0
    routing_saved_usd: Decimal = Decimal(0)


def _row(group: str | None, stats: CallStats) -> ReportRow:
    all_unpriced = stats.calls > 0 and stats.unpriced == stats.calls
    return ReportRow(
        group=group,
        calls=stats.calls,
        errors=stats.errors,
        input_tokens=stats.tokens[0],
        output_tokens=stats.tokens[1],
        cache_read_tokens=stats.tokens[2],
        cache_write_tokens=stats.tokens[3],
        cost_usd=None if all_unpriced else stats.cost,
        unpriced_calls=stats.unpriced,
        cost_saved_usd=stats.saved,
        cache_hits=stats.hits,
        **stats.percentiles(),
    )


def build_report(records: Iterable[CallRecord], by: str, since: float) -> Report:
    """The report over the `kind="call"` records with `ts >= since`, grouped by `by` (a key
    of `GROUPS`); other records are ignored."""
    field = _group_field(by)
    groups: dict[str | None, CallStats] = {}
    total = CallStats()
    routed, routing_saved = 0, Decimal(0)
    for record in records:
        if record.kind != "call" or record.ts < since:
            continue
        if record.routing_saved_usd is not None:
            routed += 1
            routing_saved += record.routing_saved_usd
        key = getattr(record, field)
        stats = groups.get(key)
        if stats is None:
            stats = groups[key] = CallStats()
        stats.add_record(record)
        total.add_record(record)
    rows = [_row(key, stats) for key, stats in groups.items()]
    rows.sort(key=lambda r: (-r.calls, r.group is None, r.group or ""))
    return Report(since, by, rows, _row(None, total), routed, routing_saved)


def report_json(report: Report) -> dict[str, Any]:
    """The JSON-safe form; see the module docstring for the shape."""
    return {
        "since": datetime.fromtimestamp(report.since, UTC).isoformat(),
        "by": report.by,
        "groups": [row.to_json() for row in report.groups],
        "total": report.total.to_json(),
        "routing": {
            "routed_calls": report.routed_calls,
            "saved_usd": _plain(report.routing_saved_usd),
        },
    }


_HEADERS = (
    "calls",
    "errors",
    "err %",
    "in tok",
    "out tok",
    "cache rd",
    "cache wr",
    "cost USD",
    "saved USD",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "ttft p50",
    "ttft p95",
    "hit %",
)


def format_table(report: Report, *, source: str | None = None) -> str:
    """A fixed-width table: one line per group, then a TOTAL line. `source` (the store) is
    named in the title when given."""
    since = datetime.fromtimestamp(report.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"Sluice report: {report.total.calls:,} calls since {since}, by {report.by}"
    if source:
        title += f" ({source})"
    header = (report.by, *_HEADERS)
    body = [(_label(r.group), *_cells(r)) for r in report.groups]
    total = ("TOTAL", *_cells(report.total))
    widths = [max(len(line[i]) for line in (header, *body, total)) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    rule = "-" * len(render(header))
    lines = [title, "", render(header), rule, *(render(line) for line in body)]
    if not body:
        lines.append("(no calls in this period)")
    lines += [
        rule,
        render(total),
        "",
        "cost: USD over calls with a known price; '+N unknown' / 'unknown': calls without a "
        "price, never counted as $0.",
        "latency and TTFT in ms (TTFT: streamed calls only); TOTAL is computed over all calls.",
    ]
    if report.routed_calls:
        lines.append(
            f"saved by routing: ${_plain(report.routing_saved_usd)} over {report.routed_calls:,} "
            "routed calls (cost at each route's reference model minus actual cost)"
        )
    return "\n".join(lines)


def _cells(r: ReportRow) -> tuple[str, ...]:
    return (
        f"{r.calls:,}",
        f"{r.errors:,}",
        _num(r.error_rate_pct),
        f"{r.input_tokens:,}",
        f"{r.output_tokens:,}",
        f"{r.cache_read_tokens:,}",
        f"{r.cache_write_tokens:,}",
        _cost(r),
        _money(r.cost_saved_usd),
        _num(r.latency_ms_p50),
        _num(r.latency_ms_p95),
        _num(r.latency_ms_p99),
        _num(r.ttft_ms_p50),
        _num(r.ttft_ms_p95),
        _num(r.cache_hit_rate_pct),
    )


def _label(group: str | None) -> str:
    return NO_GROUP if group is None else group


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _money(value: Decimal) -> str:
    return f"{value:,.6f}"


def _cost(r: ReportRow) -> str:
    if r.cost_usd is None:
        return "unknown"
    if r.unpriced_calls:
        return f"{_money(r.cost_usd)} +{r.unpriced_calls} unknown"
    return _money(r.cost_usd)


def _plain(value: Decimal) -> str:
    """A decimal in plain notation (str() would switch to 1E-8 for tiny amounts)."""
    return format(value, "f")


def _group_field(by: str) -> GroupBy:
    try:
        return GROUPS[by]
    except KeyError:
        raise ReportError(f"cannot group by {by!r}; one of {', '.join(GROUPS)}") from None


# -- I/O ----------------------------------------------------------------------------------


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def load_calls(url: str, since: float, *, table_name: str = "call_records") -> list[CallRecord]:
    """The call records with `ts >= since` from the store at `url`, oldest first, with only
    the fields a report needs. Never creates a database file or a table."""
    shown = safe_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ReportError(
            f"--store {url!r} is not a database URL (e.g. sqlite:///sluice.db or "
            "postgresql+psycopg://user:pass@host/db)"
        ) from None
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not Path(database).is_file()
    ):
        raise ReportError(
            f"no record store at {shown}: {database} does not exist (relative paths are "
            "relative to the current directory)"
        )
    try:
        store = RecordStore(url, table_name=table_name)
    except (SQLAlchemyError, ImportError) as exc:  # unknown dialect, driver not installed
        raise ReportError(f"cannot open record store {shown}: {_first_line(exc)}") from None
    try:
        if not inspect(store.engine).has_table(table_name):
            raise ReportError(
                f"record store {shown} has no {table_name} table (no gateway has written "
                "records there yet)"
            )
        t = store.table
        stmt = (
            select(*(t.c[name] for name in _COLUMNS))
            .where(t.c.kind == "call", t.c.ts >= since)
            .order_by(t.c.ts, t.c.id)
        )
        with store.engine.connect() as conn:
            return [CallRecord.from_json(row._asdict()) for row in conn.execute(stmt)]
    except SQLAlchemyError as exc:
        raise ReportError(f"cannot read record store {shown}: {_first_line(exc)}") from None
    finally:
        store.close()


def run_report(
    url: str, since: str, by: str, *, as_json: bool = False, now: float | None = None
) -> str:
    """What `sluice report` prints: the table, or the JSON object on one line."""
    _group_field(by)  # a bad --by fails before the store is touched
    start = parse_since(since, time.time() if now is None else now)
    report = build_report(load_calls(url, start), by, start)
    if as_json:
        return json.dumps(report_json(report))
    return format_table(report, source=safe_url(url))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
