"""`RecordStore`: call records in SQLite or PostgreSQL, on SQLAlchemy Core.

One table (`call_records` unless told otherwise) with a column per `CallRecord` field plus
a surrogate `id`, indexed on ts and request_id. The table is defined in
`sluice.state.tables` and made or upgraded by the `records` branch of the one Alembic
environment (`sluice.state.migrations`); the engine is the process's one for the URL.

Every method is synchronous and does blocking I/O: from the event loop, call them through
`asyncio.to_thread` (the `RecordSink` does this for writes).

Aggregates count only `kind="call"` rows. Sums are exact (`Decimal` for money) and computed
in Python, as are the latency percentiles, from the rows in the time range: simple, the same
on both databases, and fine for the volumes one gateway's database holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cached_property
from operator import attrgetter
from typing import Any, Literal, TypedDict, get_args

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from sluice.observe.records import CACHE_HITS, FIELD_NAMES, CallRecord
from sluice.pgcopy import copy_rows, is_postgresql
from sluice.state import engines, migrations
from sluice.state.tables import RECORDS_TABLE, records_table

DEFAULT_URL = "sqlite:///sluice.db"

GroupBy = Literal[
    "user_id", "feature", "model_requested", "route", "tenant", "deployment", "parent_request_id"
]
GROUP_BY_COLUMNS: tuple[str, ...] = get_args(GroupBy)
# Rows per INSERT statement: 36 columns x 200 rows stays far below the parameter limits
# of SQLite (32,766) and PostgreSQL (65,535).
_ROWS_PER_STATEMENT = 200


class Percentiles(TypedDict):
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    ttft_ms_p99: float | None


class GroupStats(Percentiles):
    group_by: str
    group: str | None
    calls: int
    errors: int  # status >= 400
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal  # over the calls that have a cost
    cost_saved_usd: Decimal
    unpriced_calls: int  # calls with no cost (unknown price)
    cache_hit_rate: float  # share of calls answered from Sluice's cache (exact or semantic)


_MONEY_FIELDS = ("cost_usd", "cost_saved_usd", "routing_saved_usd", "retrieval_cost_usd")


DEAD_LETTERS = "sluice_dead_letters"


def dead_letter_table(metadata: MetaData) -> Table:
    """Rows a writer's table refused (too long for a column, a byte the database rejects),
    parked as JSON with the database's reason, so one bad row never costs its batch.
    Shared by the call records and the spend ledger (`source` says whose row it was)."""
    return Table(
        DEAD_LETTERS,
        metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
        Column("ts", Double(), nullable=False),
        Column("source", String(64), nullable=False),
        Column("request_id", String(255), nullable=True),
        Column("error", Text(), nullable=False),
        Column("payload", Text(), nullable=False),
        keep_existing=True,
    )


def park_row(
    engine: Engine, table: Table, source: str, row: dict[str, Any], exc: BaseException
) -> None:
    """Insert one refused row into the dead-letter table (made if missing)."""
    table.create(engine, checkfirst=True)
    payload = orjson.dumps(row, default=str).decode()  # JSON escapes NUL: the text is storable
    error = f"{type(exc).__name__}: {exc}".replace("\x00", "")[:2000]
    request_id = row.get("request_id")
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            {
                "ts": time.time(),
                "source": source,
                "request_id": str(request_id).replace("\x00", "")[:255] if request_id else None,
                "error": error,
                "payload": payload,
            },
        )


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of sorted values, interpolating between ranks."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class RecordStore:
    def __init__(self, url: str = DEFAULT_URL, *, table_name: str = RECORDS_TABLE) -> None:
        self.url = url
        self.engine = engines.acquire(url)  # shared with every store on this URL
        self._statements: dict[int, str] = {}
        self.table = records_table(table_name)
        self.metadata = self.table.metadata
        self.dead_letters = dead_letter_table(self.metadata)

    @classmethod
    def open(cls, url: str = DEFAULT_URL, *, table_name: str = RECORDS_TABLE) -> RecordStore:
        """A store whose table exists (created or upgraded by the migrations)."""
        store = cls(url, table_name=table_name)
        try:
            store.create_schema()
        except BaseException:
            store.close()
            raise
        return store

    def create_schema(self) -> None:
        """Create or upgrade the table: the `records` branch of `sluice.state.migrations`
        (adopts a table made by an older Sluice and adds the columns it lacks)."""
        migrations.upgrade(self.url, "records", table=self.table.name)

    def missing(self, records: Sequence[CallRecord]) -> list[CallRecord]:
        """The records the table does not have yet (by request id and timestamp): what a
        spool replay still has to write."""
        t = self.table
        have: set[tuple[str, float]] = set()
        ids = sorted({r.request_id for r in records})
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                stmt = select(t.c.request_id, t.c.ts).where(t.c.request_id.in_(part))
                have.update((row[0], row[1]) for row in conn.execute(stmt))
        return [r for r in records if (r.request_id, r.ts) not in have]

    def park(self, record: CallRecord, exc: BaseException) -> bool:
        """Park one record the table refused in `sluice_dead_letters`; False if that failed
        too. Runs in the writer's thread, like `write_batch`."""
        try:
            park_row(self.engine, self.dead_letters, self.table.name, record.to_json(), exc)
        except Exception:  # the caller counts the row as lost and logs
            return False
        return True

    def drop_schema(self) -> None:
        """Drop the table and forget its revision (tests)."""
        migrations.drop(self.url, "records", table=self.table.name)

    def close(self) -> None:
        engines.release(self.engine)

    def write_batch(self, records: Iterable[CallRecord]) -> None:
        """Insert records in one transaction (all or none): COPY on PostgreSQL (`pgcopy`),
        elsewhere multi-row `INSERT ... VALUES (...), (...)` statements, built once per
        chunk size and sent straight to the driver. Why: this runs in a thread beside the
        event loop, and the SQLite driver gives up and retakes the GIL around every statement
        step — one step per row with executemany, which under load turns into a GIL convoy
        that slows the request path. Here it is one step per chunk."""
        _, order, money_positions = self._insert
        row_of = attrgetter(*order)  # one C call per record instead of 38 getattr calls
        if is_postgresql(self.engine):
            rows = [row_of(record) for record in records]
            if rows:
                with self.engine.begin() as conn:
                    copy_rows(conn, self.table, order, rows)
            return
        money_as_text = self.engine.dialect.name == "sqlite"
        params: list[Any] = []
        for record in records:
            values: tuple[Any, ...] | list[Any] = row_of(record)
            if money_as_text:
                values = list(values)
                for i in money_positions:
                    if values[i] is not None:
                        values[i] = str(values[i])
            params.extend(values)
        if not params:
            return
        width = len(order)
        chunk = _ROWS_PER_STATEMENT * width
        with self.engine.begin() as conn:
            for start in range(0, len(params), chunk):
                part = params[start : start + chunk]
                conn.exec_driver_sql(self._insert_rows(len(part) // width), tuple(part))

    @cached_property
    def _insert(self) -> tuple[str, tuple[str, ...], tuple[int, ...]]:
        """The one-row INSERT for this dialect with positional parameters, the field order,
        and where the money fields are in it."""
        fields = tuple(FIELD_NAMES)
        quote = self.engine.dialect.identifier_preparer
        names = ", ".join(quote.quote(f) for f in fields)
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        placeholders = ", ".join([marker] * len(fields))
        sql = f"INSERT INTO {quote.format_table(self.table)} ({names}) VALUES ({placeholders})"
        money = tuple(i for i, f in enumerate(fields) if f in _MONEY_FIELDS)
        return sql, fields, money

    def _insert_rows(self, rows: int) -> str:
        """The INSERT statement for `rows` rows (cached per row count)."""
        cached = self._statements.get(rows)
        if cached is None:
            head, _, one = self._insert[0].partition(" VALUES ")
            cached = f"{head} VALUES " + ", ".join([one] * rows)
            if len(self._statements) < 8:
                self._statements[rows] = cached
        return cached

    def query(
        self,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[CallRecord]:
        """Records with `since <= ts < until`, oldest first unless `newest_first`."""
        t = self.table
        stmt = select(*(t.c[name] for name in FIELD_NAMES))
        if since is not None:
            stmt = stmt.where(t.c.ts >= since)
        if until is not None:
            stmt = stmt.where(t.c.ts < until)
        order = (t.c.ts.desc(), t.c.id.desc()) if newest_first else (t.c.ts, t.c.id)
        stmt = stmt.order_by(*order)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [CallRecord.from_json(row._asdict()) for row in conn.execute(stmt)]

    def aggregate(
        self, since: float | None, group_by: GroupBy, *, until: float | None = None
    ) -> list[GroupStats]:
        """Per-group totals over the calls in `[since, until)`, most calls first."""
        if group_by not in GROUP_BY_COLUMNS:
            raise ValueError(f"cannot group by {group_by!r}; one of {', '.join(GROUP_BY_COLUMNS)}")
        t = self.table
        stmt = select(t.c[group_by], *(t.c[name] for name in STAT_COLUMNS)).where(
            t.c.kind == "call"
        )
        if since is not None:
            stmt = stmt.where(t.c.ts >= since)
        if until is not None:
            stmt = stmt.where(t.c.ts < until)
        groups: dict[str | None, CallStats] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                key = row[0]
                acc = groups.get(key)
                if acc is None:
                    acc = groups[key] = CallStats()
                acc.add(row[1:])
        stats = [acc.result(group_by, key) for key, acc in groups.items()]
        stats.sort(key=lambda s: (-s["calls"], s["group"] is None, s["group"] or ""))
        return stats


# The columns `CallStats.add` takes, in its order.
STAT_COLUMNS = (
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "cost_saved_usd",
    "cache_status",
    "latency_ms",
    "ttft_ms",
)


class CallStats:
    """Totals and latency samples over a set of calls: one place for the arithmetic that
    `aggregate`, `sluice report` and the dashboard share."""

    __slots__ = ("calls", "cost", "errors", "hits", "lat", "saved", "tokens", "ttft", "unpriced")

    def __init__(self) -> None:
        self.calls = self.errors = self.unpriced = self.hits = 0
        self.tokens = [0, 0, 0, 0]
        self.cost = Decimal(0)
        self.saved = Decimal(0)
        self.lat: list[float] = []
        self.ttft: list[float] = []

    def add_record(self, r: CallRecord) -> None:
        self.add(
            (
                r.status,
                r.input_tokens,
                r.output_tokens,
                r.cache_read_tokens,
                r.cache_write_tokens,
                r.cost_usd,
                r.cost_saved_usd,
                r.cache_status,
                r.latency_ms,
                r.ttft_ms,
            )
        )

    def add(self, row: Sequence[Any]) -> None:
        """One call, as the columns of `aggregate`'s query in order."""
        status, t_in, t_out, t_read, t_write, cost, saved, cache_status, lat, ttft = row
        self.calls += 1
        self.errors += status >= 400
        for i, n in enumerate((t_in, t_out, t_read, t_write)):
            self.tokens[i] += n
        if cost is None:
            self.unpriced += 1
        else:
            self.cost += cost
        if saved is not None:
            self.saved += saved
        self.hits += cache_status in CACHE_HITS
        self.lat.append(lat)
        if ttft is not None:
            self.ttft.append(ttft)

    def percentiles(self) -> Percentiles:
        """p50/p95/p99 of latency and TTFT, by the names both result types use."""
        lat, ttft = sorted(self.lat), sorted(self.ttft)
        return Percentiles(
            latency_ms_p50=percentile(lat, 50),
            latency_ms_p95=percentile(lat, 95),
            latency_ms_p99=percentile(lat, 99),
            ttft_ms_p50=percentile(ttft, 50),
            ttft_ms_p95=percentile(ttft, 95),
            ttft_ms_p99=percentile(ttft, 99),
        )

    def result(self, group_by: str, key: str | None) -> GroupStats:
        return GroupStats(
            group_by=group_by,
            group=key,
            calls=self.calls,
            errors=self.errors,
            input_tokens=self.tokens[0],
            output_tokens=self.tokens[1],
            cache_read_tokens=self.tokens[2],
            cache_write_tokens=self.tokens[3],
            cost_usd=self.cost,
            cost_saved_usd=self.saved,
            unpriced_calls=self.unpriced,
            cache_hit_rate=self.hits / self.calls,
            **self.percentiles(),
        )
