"""The durable spend ledger: one row per settled call in `sluice_spend_ledger`.

Counters in Redis or memory decide admission; the ledger is the record that survives them
(audits, `sluice budgets`, rebuilding spend after a Redis loss). Rows are queued on the
request path and written in batches by one background task, in a worker thread (SQLAlchemy
Core; SQLite or PostgreSQL). A full queue drops rows (counted) rather than slow calls down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from sluice.governance.limits_config import LedgerConfig
from sluice.observe.rows import bounded, write_splitting
from sluice.observe.spool import ORPHAN_SCAN_S, Spool, claim_orphan, orphan_paths
from sluice.observe.store import dead_letter_table, park_row
from sluice.pgcopy import copy_rows, is_postgresql
from sluice.state import engines, migrations
from sluice.state.tables import spend_ledger

if TYPE_CHECKING:
    from sluice.pipeline.context import CallContext

log = logging.getLogger("sluice.limits")

TABLE_NAME = spend_ledger.name


@dataclass(frozen=True, slots=True)
class LedgerRow:
    ts: float
    request_id: str
    tenant: str
    key_id: str | None
    team: str | None
    user_id: str | None
    feature: str | None
    model: str
    deployment: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None

    @classmethod
    def of(cls, ctx: CallContext, now: float) -> LedgerRow:
        meta = ctx.request.meta
        ident = ctx.identity
        return cls(
            ts=now,
            request_id=bounded(meta.request_id, 128),
            tenant=bounded(ident.tenant),
            key_id=ident.key_id,
            team=_bounded(ident.team),
            user_id=_bounded(ctx.end_user),
            feature=_bounded(meta.feature),
            model=bounded(ctx.request.model),
            deployment=ctx.deployment.id if ctx.deployment else None,
            input_tokens=ctx.usage.input_tokens,
            output_tokens=ctx.usage.output_tokens,
            cost_usd=ctx.cost_usd,
        )


def _bounded(text: str | None) -> str | None:
    return None if text is None else bounded(text)


def _row_json(row: LedgerRow) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(row).items()}


def _row_of(doc: dict[str, Any]) -> LedgerRow:
    cost = doc.get("cost_usd")
    return LedgerRow(**{**doc, "cost_usd": None if cost is None else Decimal(cost)})


_ROW_FIELDS = tuple(f.name for f in fields(LedgerRow))
_row_values = attrgetter(*_ROW_FIELDS)


class Ledger:
    def __init__(
        self, config: LedgerConfig, on_dead_letter: Callable[[int], None] | None = None
    ) -> None:
        if not config.store_url:
            raise ValueError("the spend ledger needs limits.ledger.store_url")
        self.config = config
        self.engine = engines.acquire(config.store_url)  # shared with every store on the URL
        self._queue: asyncio.Queue[LedgerRow | None] = asyncio.Queue(config.max_pending)
        self._task: asyncio.Task[None] | None = None
        self._ready = False
        self.written = 0
        self.dropped = 0
        self.dead_lettered = 0  # rows the table refused, parked in sluice_dead_letters
        self.on_dead_letter = on_dead_letter  # rows the table refused, parked (a metric)
        self._dead_letters = dead_letter_table(sa.MetaData())
        # Rows are in a local spool before their call's answer goes out (see
        # sluice.observe.spool): a replica killed mid-batch loses none.
        self._spool = Spool(config.spool_dir) if config.spool_dir else None
        self._next_scan = 0.0
        self.replayed = 0

    def add(self, row: LedgerRow) -> None:
        """Queue a row (never blocks); the writer starts on first use."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_forever())
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1
            self._spooled(row, queued=False)
        else:
            self._spooled(row, queued=True)

    def _spooled(self, row: LedgerRow, *, queued: bool) -> None:
        if self._spool is None:
            return
        line = orjson.dumps(_row_json(row), option=orjson.OPT_APPEND_NEWLINE)
        try:
            if queued:
                self._spool.append(line)
            else:
                self._spool.append_unqueued(line)
        except OSError as exc:
            log.error("spend ledger spool disabled: %s", exc)
            self._spool = None

    async def flush(self) -> None:
        """Write everything queued so far (tests, shutdown)."""
        rows = [r for r in self._drain(self._queue.qsize()) if r is not None]
        if rows:
            await self._write(rows)

    async def _write(self, batch: list[LedgerRow]) -> None:
        """Write a batch; rows the table refuses are parked, never the whole batch lost."""
        spool = self._spool
        if spool is not None:
            spool.rotate()
        try:
            _, parked, lost = await asyncio.to_thread(
                write_splitting, batch, self._insert, self._park
            )
        except Exception as exc:  # the database is unreachable: counted, logged
            log.error("spend ledger: %d rows not written: %s", len(batch), type(exc).__name__)
            self.dropped += len(batch)
            if spool is not None:
                spool.handled(len(batch), failed=True)  # kept for a replay
            return
        if spool is not None:
            spool.handled(len(batch), failed=lost > 0)
            await self._replay_orphans(spool)
        if parked or lost:
            log.warning("spend ledger: %d rows refused, %d parked", parked + lost, parked)
            self.dead_lettered += parked
            self.dropped += lost
            if self.on_dead_letter is not None and parked:
                self.on_dead_letter(parked)

    async def _replay_orphans(self, spool: Spool) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next_scan:
            return
        self._next_scan = now + ORPHAN_SCAN_S
        try:
            self.replayed += await asyncio.to_thread(self._replay, spool.dir)
        except Exception as exc:  # the database is down: the segments wait for the next scan
            log.warning("spend ledger spool replay deferred: %s", type(exc).__name__)

    def _replay(self, directory: Path) -> int:
        """Rows of dead processes' spool segments the ledger does not have yet."""
        total = 0
        for path in orphan_paths(directory):
            with claim_orphan(path) as data:
                if not data:
                    continue
                rows = []
                for line in data.splitlines():
                    try:  # a process killed mid-write leaves a partial last line
                        rows.append(_row_of(orjson.loads(line)))
                    except (orjson.JSONDecodeError, TypeError, ValueError, ArithmeticError):
                        continue
                todo = self._missing(rows)
                if todo:
                    written, _, _ = write_splitting(todo, self._insert, self._park)
                    total += written
        return total

    def _missing(self, rows: list[LedgerRow]) -> list[LedgerRow]:
        have: set[str] = set()
        ids = sorted({r.request_id for r in rows})
        col = spend_ledger.c.request_id
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                stmt = sa.select(col).where(col.in_(ids[start : start + 500]))
                have.update(row[0] for row in conn.execute(stmt))
        return [r for r in rows if r.request_id not in have]

    def _park(self, row: LedgerRow, exc: BaseException) -> bool:
        values = _row_json(row)
        try:
            park_row(self.engine, self._dead_letters, TABLE_NAME, values, exc)
        except Exception:  # the caller counts the row as lost
            return False
        return True

    async def close(self) -> None:
        """Stop the writer after it has written every row queued so far."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        await self.flush()
        if self._spool is not None:
            self._spool.close()
        await asyncio.to_thread(engines.release, self.engine)

    async def _write_forever(self) -> None:
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), ORPHAN_SCAN_S / 3)
            except TimeoutError:  # idle: still replay dead processes' spool segments
                if self._spool is not None:
                    await self._replay_orphans(self._spool)
                continue
            if first is not None:
                await asyncio.sleep(self.config.flush_interval_s)  # let a batch gather
            rows = [first, *self._drain(self.config.batch_size - 1)]
            batch = [r for r in rows if r is not None]
            if batch:
                await self._write(batch)
            if len(batch) < len(rows):
                return  # close() asked to stop

    def _drain(self, limit: int) -> list[LedgerRow | None]:
        rows: list[LedgerRow | None] = []
        while len(rows) < limit and not self._queue.empty():
            rows.append(self._queue.get_nowait())
        return rows

    def _insert(self, rows: Sequence[LedgerRow]) -> None:
        if not self._ready:
            if self.config.migrate:
                migrations.upgrade(self.config.store_url or "", "governance")
            self._ready = True
        with self.engine.begin() as conn:
            if is_postgresql(self.engine):
                copy_rows(conn, spend_ledger, _ROW_FIELDS, list(map(_row_values, rows)))
            else:
                conn.execute(spend_ledger.insert(), [asdict(r) for r in rows])
        self.written += len(rows)


def spend_since(
    engine: sa.Engine, column: str, since: float, tenant: str | None = None
) -> dict[str | None, dict[str, Any]]:
    """Spend per value of `column` (tenant, team, user_id, feature, key_id) since `since`,
    within one tenant when `tenant` is given."""
    col = spend_ledger.c[column]
    query = (
        sa.select(
            col,
            sa.func.count(),
            sa.func.sum(spend_ledger.c.input_tokens + spend_ledger.c.output_tokens),
            sa.func.sum(spend_ledger.c.cost_usd),
        )
        .where(spend_ledger.c.ts >= since)
        .group_by(col)
    )
    if tenant is not None:
        query = query.where(spend_ledger.c.tenant == tenant)
    with engine.connect() as conn:
        return {
            row[0]: {"calls": row[1], "tokens": int(row[2] or 0), "usd": Decimal(row[3] or 0)}
            for row in conn.execute(query)
        }
