"""The durable spend ledger: one row per settled call in `sluice_spend_ledger`.

Counters in Redis or memory decide admission; the ledger is the record that survives them
(audits, `sluice budgets`, rebuilding spend after a Redis loss). Rows are queued on the
request path and written in batches by one background task, in a worker thread (SQLAlchemy
Core; SQLite or PostgreSQL). A full queue drops rows (counted) rather than slow calls down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sluice.governance.limits_config import LedgerConfig
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
        ident = meta.identity
        return cls(
            ts=now,
            request_id=meta.request_id,
            tenant=ident.tenant if ident else meta.tenant,
            key_id=ident.key_id if ident else meta.key_id,
            team=(ident.team if ident else None) or meta.team,
            user_id=meta.user or (ident.user if ident else None),
            feature=meta.feature,
            model=ctx.request.model,
            deployment=ctx.deployment.id if ctx.deployment else None,
            input_tokens=ctx.usage.input_tokens,
            output_tokens=ctx.usage.output_tokens,
            cost_usd=ctx.cost_usd,
        )


_ROW_FIELDS = tuple(f.name for f in fields(LedgerRow))
_row_values = attrgetter(*_ROW_FIELDS)


class Ledger:
    def __init__(self, config: LedgerConfig) -> None:
        if not config.store_url:
            raise ValueError("the spend ledger needs limits.ledger.store_url")
        self.config = config
        self.engine = engines.acquire(config.store_url)  # shared with every store on the URL
        self._queue: asyncio.Queue[LedgerRow | None] = asyncio.Queue(config.max_pending)
        self._task: asyncio.Task[None] | None = None
        self._ready = False
        self.written = 0
        self.dropped = 0

    def add(self, row: LedgerRow) -> None:
        """Queue a row (never blocks); the writer starts on first use."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_forever())
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1

    async def flush(self) -> None:
        """Write everything queued so far (tests, shutdown)."""
        rows = [r for r in self._drain(self._queue.qsize()) if r is not None]
        if rows:
            await asyncio.to_thread(self._insert, rows)

    async def close(self) -> None:
        """Stop the writer after it has written every row queued so far."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        await self.flush()
        await asyncio.to_thread(engines.release, self.engine)

    async def _write_forever(self) -> None:
        while True:
            first = await self._queue.get()
            if first is not None:
                await asyncio.sleep(self.config.flush_interval_s)  # let a batch gather
            rows = [first, *self._drain(self.config.batch_size - 1)]
            batch = [r for r in rows if r is not None]
            if batch:
                try:
                    await asyncio.to_thread(self._insert, batch)
                except Exception:
                    log.exception("spend ledger: %d rows not written", len(batch))
                    self.dropped += len(batch)
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
