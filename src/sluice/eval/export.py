"""Feedback joined to call records: `sluice eval export` and `sluice eval feedback`.

`export_rows` reads the feedback given since a time and joins each to its call record (same
database: the feedback table lives beside `call_records`), giving one labelled example per
call: the request id, tenant, route, model, deployment, the records' PII-redacted input and
output previews, and the score — the dataset the router and the semantic cache can learn
from. `feedback_summary` groups the same rows by route / model / tenant / deployment with
the count, mean score and thumbs-up / thumbs-down counts.

Read only: neither creates a database or a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from sluice.eval.feedback_store import TABLE, FeedbackStore
from sluice.observe.report import ReportError, safe_url
from sluice.observe.store import RecordStore

GROUPS = {"route": "route", "model": "model", "tenant": "tenant", "deployment": "deployment"}
_JOINED = (
    "request_id",
    "route",
    "model_requested",
    "deployment",
    "input_preview",
    "output_preview",
    "status",
)
_IN_CHUNK = 500


def check_exists(url: str) -> None:
    """A missing SQLite file is an error, not a new empty database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ReportError(f"--store {url!r} is not a database URL") from None
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not Path(database).is_file()
    ):
        raise ReportError(f"no record store at {safe_url(url)}: {database} does not exist")


def export_rows(url: str, since: float) -> list[dict[str, Any]]:
    """One labelled row per piece of feedback given at or after `since`, oldest first."""
    check_exists(url)
    try:
        feedback = FeedbackStore(url)
        records = RecordStore(url)
    except (SQLAlchemyError, ImportError) as exc:  # unknown dialect, driver not installed
        raise ReportError(f"cannot open {safe_url(url)}: {type(exc).__name__}") from None
    try:
        tables = set(inspect(feedback.engine).get_table_names())
        if TABLE not in tables:
            raise ReportError(f"no feedback in {safe_url(url)}: it has no {TABLE} table")
        given = feedback.since(since)
        joined = _records_by_id(records, [f.request_id for f in given]) if given else {}
    except SQLAlchemyError as exc:
        raise ReportError(f"cannot read {safe_url(url)}: {type(exc).__name__}") from None
    finally:
        feedback.close()
        records.close()
    rows = []
    for fb in given:
        call = joined.get((fb.tenant, fb.request_id), {})
        rows.append(
            {
                "request_id": fb.request_id,
                "tenant": fb.tenant,
                "route": call.get("route"),
                "model": call.get("model_requested"),
                "deployment": call.get("deployment"),
                "status": call.get("status"),
                "input_preview": call.get("input_preview"),
                "output_preview": call.get("output_preview"),
                "score": fb.score,
                "thumbs": fb.thumbs,
                "tags": list(fb.tags),
                "comment": fb.comment,
                "ts": fb.ts,
            }
        )
    return rows


def _records_by_id(
    store: RecordStore, ids: Sequence[str]
) -> dict[tuple[str | None, str], dict[str, Any]]:
    """The call records by (tenant, request id): a caller may choose its own request id, so
    another tenant's call under the same id must not label this tenant's feedback."""
    t = store.table
    out: dict[tuple[str | None, str], dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            part = list(set(ids[start : start + _IN_CHUNK]))
            stmt = (
                select(*(t.c[c] for c in _JOINED), t.c.tenant, t.c.ts)
                .where(t.c.request_id.in_(part), t.c.kind == "call")
                .order_by(t.c.ts)
            )
            for row in conn.execute(stmt):
                out[(row.tenant, row.request_id)] = row._asdict()  # the newest wins
    return out


@dataclass(frozen=True, slots=True)
class FeedbackGroup:
    group: str | None
    count: int
    mean_score: float
    thumbs_up: int
    thumbs_down: int

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "feedback": self.count,
            "mean_score": self.mean_score,
            "thumbs_up": self.thumbs_up,
            "thumbs_down": self.thumbs_down,
        }


def feedback_summary(rows: Iterable[dict[str, Any]], by: str) -> list[FeedbackGroup]:
    """Count, mean score and thumbs per group, most feedback first."""
    if by not in GROUPS:
        raise ReportError(f"cannot group feedback by {by!r}; one of {', '.join(GROUPS)}")
    acc: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        acc.setdefault(row[GROUPS[by]], []).append(row)
    groups = [
        FeedbackGroup(
            group=key,
            count=len(items),
            mean_score=sum(float(r["score"]) for r in items) / len(items),
            thumbs_up=sum(r["thumbs"] == "up" for r in items),
            thumbs_down=sum(r["thumbs"] == "down" for r in items),
        )
        for key, items in acc.items()
    ]
    groups.sort(key=lambda g: (-g.count, g.group is None, g.group or ""))
    return groups


def format_summary(groups: Sequence[FeedbackGroup], by: str) -> str:
    header = f"{by:<24} {'feedback':>8} {'mean':>6} {'up':>5} {'down':>5}"
    lines = [header, "-" * len(header)]
    for g in groups:
        name = "(none)" if g.group is None else g.group[:24]
        lines.append(
            f"{name:<24} {g.count:>8} {g.mean_score:>6.3f} {g.thumbs_up:>5} {g.thumbs_down:>5}"
        )
    if not groups:
        lines.append("(no feedback in this period)")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class FeedbackRate:
    """Feedback on one route (or model): how many of its calls got any, and how it went."""

    group: str | None
    calls: int
    feedback: int
    mean_score: float | None
    thumbs_up: int
    thumbs_down: int

    @property
    def rate(self) -> float | None:
        return self.feedback / self.calls if self.calls else None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "calls": self.calls,
            "feedback": self.feedback,
            "feedback_rate": self.rate,
            "mean_score": self.mean_score,
            "thumbs_up": self.thumbs_up,
            "thumbs_down": self.thumbs_down,
        }


def feedback_rates(url: str, since: float, by: str) -> list[FeedbackRate]:
    """Per route or model (`by`): calls since `since` (Sluice's own shadow and judge calls
    left out), and the feedback given on them. Empty when the store has no feedback table."""
    if by not in ("route", "model"):
        raise ReportError(f"feedback rates are per route or model, not {by!r}")
    check_exists(url)
    column = "route" if by == "route" else "model_requested"
    records = RecordStore(url)
    try:
        tables = set(inspect(records.engine).get_table_names())
        if TABLE not in tables:
            return []
        t = records.table
        own = (
            "sluice-shadow",
            "sluice-online-judge",
            "sluice-shadow-judge",
            "sluice-eval-judge",
        )
        stmt = (
            select(t.c[column], func.count())
            .where(
                t.c.ts >= since,
                t.c.kind == "call",
                t.c.feature.is_(None) | t.c.feature.notin_(own),
            )
            .group_by(t.c[column])
        )
        with records.engine.connect() as conn:
            calls: dict[str | None, int] = {g: int(n) for g, n in conn.execute(stmt)}
        feedback = FeedbackStore(url)
        try:
            given = feedback.since(since)
        finally:
            feedback.close()
        joined = _records_by_id(records, [f.request_id for f in given]) if given else {}
    except SQLAlchemyError as exc:
        raise ReportError(f"cannot read {safe_url(url)}: {type(exc).__name__}") from None
    finally:
        records.close()
    owner = {
        key: row["route" if by == "route" else "model_requested"]
        for key, row in joined.items()
        if row["ts"] >= since
    }
    acc: dict[str | None, list[Any]] = {}
    for fb in given:
        key = (fb.tenant, fb.request_id)
        if key in owner:  # feedback on a call of this period
            acc.setdefault(owner[key], []).append(fb)
    out = []
    for group, n in calls.items():
        items = acc.get(group, [])
        out.append(
            FeedbackRate(
                group=group,
                calls=n,
                feedback=len(items),
                mean_score=sum(f.score for f in items) / len(items) if items else None,
                thumbs_up=sum(f.thumbs == "up" for f in items),
                thumbs_down=sum(f.thumbs == "down" for f in items),
            )
        )
    out.sort(key=lambda r: (-r.calls, r.group is None, r.group or ""))
    return out


def format_rates(rates: Sequence[FeedbackRate], by: str) -> str:
    header = f"{by:<24} {'calls':>7} {'feedback':>8} {'rate':>7} {'mean':>6} {'up':>5} {'down':>5}"
    lines = ["User feedback (POST /v1/sluice/feedback)", header, "-" * len(header)]
    for r in rates:
        name = "(none)" if r.group is None else r.group[:24]
        rate = "-" if r.rate is None else f"{r.rate:.1%}"
        mean = "-" if r.mean_score is None else f"{r.mean_score:.3f}"
        lines.append(
            f"{name:<24} {r.calls:>7} {r.feedback:>8} {rate:>7} {mean:>6} "
            f"{r.thumbs_up:>5} {r.thumbs_down:>5}"
        )
    return "\n".join(lines)


def with_feedback(report: str, url: str, since: float, by: str, as_json: bool) -> str:
    """`sluice report --by route|model`, with the feedback rates of the same groups added
    (a table below the report, or a `feedback` key in its JSON) when there is feedback."""
    if by not in ("route", "model"):
        return report
    rates = feedback_rates(url, since, by)
    if not rates:
        return report
    if as_json:
        import json

        doc = json.loads(report)
        doc["feedback"] = [r.to_json() for r in rates]
        return json.dumps(doc)
    return report + "\n\n" + format_rates(rates, by)
