"""Async jobs and their webhook deliveries, in SQL (`sluice_jobs`, `sluice_job_deliveries`).

Every read and write is scoped by tenant where a caller names a job, so another tenant's
job is the same "not found" as an unknown id. The result is written once: `finish` only
moves a job that is still `queued` or `running` to a terminal state, so a job run twice
(at-least-once queue, a worker killed after the upstream answered) keeps its first result.
The same UPDATE keeps the run's spend-ledger row (`charge`, `sluice.state.charges`), and
`settle_charges` copies it into the ledger, keyed by the job (never twice), and clears it:
a job's kept result is charged exactly once, a dropped one never. Blocking SQLAlchemy calls
run in threads.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, and_, insert, select, update

from sluice.state import charges, engines, migrations
from sluice.state.tables import job_deliveries as d
from sluice.state.tables import jobs as t

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL = ("succeeded", "failed", "cancelled")
MAX_LIST = 100
_CHARGE_SWEEP = 500
log = logging.getLogger("sluice.jobs")


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def charge_key(job_id: str) -> str:
    """The spend ledger's `once_key` of a job: charged once, whatever reruns it."""
    return f"job:{job_id}"


@dataclass(slots=True)
class JobRow:
    id: str
    tenant: str
    key_id: str | None
    status: Status
    format: str
    request: dict[str, Any]
    metadata: dict[str, Any] | None
    webhook_url: str | None
    http_status: int | None
    result: Any
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int

    def public(self, *, with_request: bool = False) -> dict[str, Any]:
        """What the API shows (the webhook URL only as its host: URLs carry tokens)."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": "sluice.job",
            "status": self.status,
            "format": self.format,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "webhook": _host(self.webhook_url),
            "http_status": self.http_status,
            "result": self.result,
        }
        if with_request:
            out["request"] = self.request
        return out


def _host(url: str | None) -> str | None:
    if not url:
        return None
    from yarl import URL

    return URL(url).host


def _row(r: Any) -> JobRow:
    return JobRow(
        id=r.id,
        tenant=r.tenant,
        key_id=r.key_id,
        status=r.status,
        format=r.format,
        request=orjson.loads(r.request),
        metadata=orjson.loads(r.metadata) if r.metadata else None,
        webhook_url=r.webhook_url,
        http_status=r.http_status,
        result=orjson.loads(r.result) if r.result else None,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        attempts=r.attempts,
    )


class JobStore:
    def __init__(
        self, url: str, *, ledger_url: str | None = None, migrate_ledger: bool = True
    ) -> None:
        """`ledger_url`: the spend ledger's database (None: no ledger is kept, jobs hold no
        charge; `migrate_ledger`: bring its tables up first, as the ledger itself does)."""
        self.url = url
        self.ledger_url = ledger_url
        self.migrate_ledger = migrate_ledger
        self._engine: Engine | None = None
        self._ledger: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("JobStore.start() was not called")
        return self._engine

    async def start(self) -> None:
        if self._engine is None:
            await asyncio.to_thread(migrations.upgrade, self.url, "jobs")
            if self.ledger_url and self.migrate_ledger:
                await asyncio.to_thread(migrations.upgrade, self.ledger_url, "governance")
            self._engine = engines.acquire(self.url)
            if self.ledger_url:
                self._ledger = engines.acquire(self.ledger_url)

    async def close(self) -> None:
        if self._ledger is not None:
            ledger, self._ledger = self._ledger, None
            engines.release(ledger)
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engines.release(engine)

    async def create(
        self,
        *,
        tenant: str,
        key_id: str | None,
        fmt: str,
        request: dict[str, Any],
        metadata: dict[str, Any] | None,
        webhook_url: str | None,
    ) -> JobRow:
        row = JobRow(
            new_job_id(), tenant, key_id, "queued", fmt, request, metadata, webhook_url,
            None, None, time.time(), None, None, 0,
        )  # fmt: skip

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t).values(
                        id=row.id,
                        tenant=tenant,
                        key_id=key_id,
                        status="queued",
                        format=fmt,
                        request=orjson.dumps(request).decode(),
                        metadata=orjson.dumps(metadata).decode() if metadata else None,
                        webhook_url=webhook_url,
                        created_at=row.created_at,
                        attempts=0,
                    )
                )

        await asyncio.to_thread(write)
        return row

    async def get(self, job_id: str, tenant: str | None = None) -> JobRow | None:
        """The job; with `tenant`, only that tenant's (None for anyone else's)."""

        def read() -> JobRow | None:
            cond = t.c.id == job_id[:64]
            if tenant is not None:
                cond = and_(cond, t.c.tenant == tenant)
            with self.engine.connect() as conn:
                r = conn.execute(select(t).where(cond)).first()
            return None if r is None else _row(r)

        return await asyncio.to_thread(read)

    async def list_jobs(
        self, tenant: str, *, limit: int = 20, status: str | None = None, after: str | None = None
    ) -> list[JobRow]:
        def read() -> list[JobRow]:
            stmt = select(t).where(t.c.tenant == tenant)
            if status:
                stmt = stmt.where(t.c.status == status[:16])
            if after:
                with self.engine.connect() as conn:
                    pivot = conn.execute(
                        select(t.c.created_at).where(t.c.id == after[:64], t.c.tenant == tenant)
                    ).scalar()
                if pivot is not None:
                    stmt = stmt.where(t.c.created_at < pivot)
            stmt = stmt.order_by(t.c.created_at.desc()).limit(max(1, min(limit, MAX_LIST)))
            with self.engine.connect() as conn:
                return [_row(r) for r in conn.execute(stmt).all()]

        return await asyncio.to_thread(read)

    async def start_run(self, job_id: str) -> JobRow | None:
        """Mark the job running (one more attempt); None when it already ended
        (finished, cancelled) — the queue item is then a leftover and does nothing."""

        def write() -> JobRow | None:
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(t)
                    .where(t.c.id == job_id, t.c.status.in_(("queued", "running")))
                    .values(status="running", started_at=time.time(), attempts=t.c.attempts + 1)
                )
                if not result.rowcount:
                    return None
                r = conn.execute(select(t).where(t.c.id == job_id)).first()
            return None if r is None else _row(r)

        return await asyncio.to_thread(write)

    async def finish(
        self,
        job_id: str,
        status: Status,
        http_status: int,
        result: Any,
        charge: str | None = None,
    ) -> bool:
        """Write the result once, with the run's held charge (`sluice.state.charges`) in the
        same transaction: True when this call wrote them, False when the job had already
        ended (a second run's answer and charge are dropped, the first ones stay)."""

        def write() -> bool:
            with self.engine.begin() as conn:
                res = conn.execute(
                    update(t)
                    .where(t.c.id == job_id, t.c.status.in_(("queued", "running")))
                    .values(
                        status=status,
                        http_status=http_status,
                        result=orjson.dumps(result).decode(),
                        finished_at=time.time(),
                        charge=charge if self._ledger is not None else None,
                    )
                )
            return bool(res.rowcount)

        return await asyncio.to_thread(write)

    async def settle_charges(self, job_id: str | None = None) -> int:
        """Copy held charges (one job's, or up to `_CHARGE_SWEEP` of any) into the spend
        ledger and clear them; returns how many this call cleared."""
        ledger = self._ledger
        if ledger is None:
            return 0

        def move() -> int:
            stmt = select(t.c.id, t.c.charge).where(t.c.charge.is_not(None))
            if job_id is not None:
                stmt = stmt.where(t.c.id == job_id)
            with self.engine.connect() as conn:
                due = conn.execute(stmt.limit(_CHARGE_SWEEP)).all()
            if not due:
                return 0
            charges.write(ledger, [row[1] for row in due])  # keyed by job: never twice
            with self.engine.begin() as conn:
                gone = conn.execute(
                    update(t)
                    .where(t.c.id.in_([row[0] for row in due]), t.c.charge.is_not(None))
                    .values(charge=None)
                )
            return int(gone.rowcount)

        return await asyncio.to_thread(move)

    async def cancel(self, job_id: str, tenant: str) -> JobRow | None:
        """Cancel a queued job (a running one finishes: its upstream call is under way).
        Returns the job after the attempt; None when the tenant has no such job."""

        def write() -> JobRow | None:
            with self.engine.begin() as conn:
                conn.execute(
                    update(t)
                    .where(t.c.id == job_id[:64], t.c.tenant == tenant, t.c.status == "queued")
                    .values(status="cancelled", finished_at=time.time())
                )
                r = conn.execute(
                    select(t).where(t.c.id == job_id[:64], t.c.tenant == tenant)
                ).first()
            return None if r is None else _row(r)

        return await asyncio.to_thread(write)

    async def add_delivery(
        self,
        job_id: str,
        attempt: int,
        status_code: int | None,
        error: str | None,
        duration_ms: float,
    ) -> None:
        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(d).values(
                        job_id=job_id,
                        attempt=attempt,
                        at=time.time(),
                        status_code=status_code,
                        error=error[:300] if error else None,
                        duration_ms=duration_ms,
                    )
                )

        await asyncio.to_thread(write)

    async def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(d).where(d.c.job_id == job_id).order_by(d.c.attempt, d.c.id)
                ).all()
            return [
                {
                    "attempt": r.attempt,
                    "at": r.at,
                    "status_code": r.status_code,
                    "error": r.error,
                    "duration_ms": round(r.duration_ms, 1),
                    "ok": r.status_code is not None and 200 <= r.status_code < 300,
                }
                for r in rows
            ]

        return await asyncio.to_thread(read)

    async def counts(self) -> dict[str, int]:
        """Jobs by status (metrics)."""
        from sqlalchemy import func

        def read() -> dict[str, int]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
            return {str(s): int(n) for s, n in rows}

        return await asyncio.to_thread(read)
