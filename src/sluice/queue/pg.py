"""The shared queue: `pgqueuer` on PostgreSQL, for several replicas (docs/design/queue.md).

pgqueuer does the hard parts: `FOR UPDATE SKIP LOCKED` dequeue in priority order, a
heartbeat per running job and re-picking of jobs whose heartbeat went stale (a dead
worker's items; `heartbeat_timeout` = `queue.lock_timeout_s`), LISTEN/NOTIFY wake-ups,
dedupe keys enforced by a partial unique index, cancellation by NOTIFY. This module only
maps the `Queue` protocol onto it:

- `kind` is pgqueuer's entrypoint, `priority` its priority (higher first);
- `group` travels in the job's headers (`{"sluice_group": ...}`); `cancel_group` removes
  the group's queued jobs through pgqueuer's own cancellation (logged as `canceled`);
- the schema is pgqueuer's own declaration, installed by our migrations (branch
  `pgqueue`, revision `p0001_pgqueuer`, under the migration lock: replicas starting at
  once never race), with table and channel names prefixed by `queue.name` so
  deployments sharing a database stay apart; `start` runs them like every other store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import orjson
import psycopg
from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.core.qm import QueueManager
from pgqueuer.domain import models, types
from pgqueuer.domain.settings import DBSettings

from sluice.queue.base import Handler, Job, Priority, QueueStats, priority_of
from sluice.state import migrations

log = logging.getLogger("sluice.queue")
GROUP_HEADER = "sluice_group"


def _dsn(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer from PostgreSQL, got {type(value).__name__}")
    return value


class PgQueue:
    """The `Queue` protocol on pgqueuer (see the module docstring)."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        name: str = "sluice_",
        lock_timeout_s: float = 30.0,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.url = url
        self.prefix = name
        self.dsn = _dsn(url)
        self.settings = DBSettings(prefix=name)
        self.lock_timeout_s = lock_timeout_s
        self.poll_interval_s = poll_interval_s
        self.stats = QueueStats()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._queries: Queries | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the producer connection
        self._qm: QueueManager | None = None
        self._stop_requested = False

    def _make_queries(self, conn: psycopg.AsyncConnection[Any]) -> Queries:
        return Queries(
            PsycopgDriver(conn),
            qbe=QueryBuilderEnvironment(self.settings),
            qbq=QueryQueueBuilder(self.settings),
            qbs=QuerySchedulerBuilder(self.settings),
        )

    @property
    def queries(self) -> Queries:
        if self._queries is None:
            raise RuntimeError("PgQueue.start() was not called")
        return self._queries

    async def start(self) -> None:
        if self._queries is not None:
            return
        await asyncio.to_thread(migrations.upgrade, self.url, "pgqueue", table=self.prefix)
        self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        self._queries = self._make_queries(self._conn)

    @contextlib.asynccontextmanager
    async def _producer(self) -> AsyncIterator[None]:
        """The producer connection, one statement at a time; a connection that broke
        (PostgreSQL restarted) is replaced on the next use instead of failing forever."""
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("PgQueue.start() was not called")
            if conn.closed or conn.broken:
                with contextlib.suppress(Exception):
                    await conn.close()
                self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                self._queries = self._make_queries(self._conn)
            yield

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn, self._queries = self._conn, None, None
            await conn.close()

    # --- producer side ---------------------------------------------------------------

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        priority: Priority = Priority.JOB,
        dedupe_key: str | None = None,
        *,
        group: str | None = None,
        delay_s: float = 0.0,
    ) -> str:
        headers = {GROUP_HEADER: group} if group else None
        body = orjson.dumps({"p": payload, "t": time.time()})
        after = timedelta(seconds=delay_s) if delay_s > 0 else None
        async with self._producer():
            ids = await self.queries.enqueue(
                kind, body, int(priority), after, dedupe_key, headers, on_conflict="skip"
            )
            if ids[0] is not None:
                return str(ids[0])
            rows = await self.queries.driver.fetch(
                f"SELECT id FROM {self.settings.qualified.queue_table} WHERE dedupe_key = $1",
                dedupe_key,
            )
        if rows:
            return str(rows[0]["id"])
        return await self.enqueue(kind, payload, priority, dedupe_key, group=group, delay_s=delay_s)

    async def enqueue_many(
        self,
        kind: str,
        items: Sequence[tuple[dict[str, Any], str | None]],
        priority: Priority = Priority.BATCH,
        *,
        group: str | None = None,
    ) -> int:
        if not items:
            return 0
        now = time.time()
        headers: dict[str, str] | None = {GROUP_HEADER: group} if group else None
        async with self._producer():
            ids = await self.queries.enqueue(
                [kind] * len(items),
                [orjson.dumps({"p": payload, "t": now}) for payload, _ in items],
                [int(priority)] * len(items),
                None,
                [key for _, key in items],
                [headers] * len(items),
                on_conflict="skip",
            )
        return sum(1 for i in ids if i is not None)

    async def cancel_group(self, group: str) -> int:
        table = self.settings.qualified.queue_table
        async with self._producer():
            rows = await self.queries.driver.fetch(
                f"SELECT id FROM {table} WHERE status = 'queued' AND headers->>$1 = $2",
                GROUP_HEADER,
                group,
            )
            ids = [types.JobId(_int(r["id"])) for r in rows]
            if ids:
                await self.queries.mark_job_as_cancelled(ids)
        return len(ids)

    # --- observation -------------------------------------------------------------------

    async def depth_by_priority(self) -> dict[str, int]:
        table = self.settings.qualified.queue_table
        async with self._producer():
            rows = await self.queries.driver.fetch(
                f"SELECT priority, count(*) AS n FROM {table} "
                "WHERE status IN ('queued', 'picked') GROUP BY priority"
            )
        out = {p.name.lower(): 0 for p in Priority}
        for row in rows:
            out[priority_of(_int(row["priority"])).name.lower()] += _int(row["n"])
        return out

    async def oldest_age_s(self) -> float:
        table = self.settings.qualified.queue_table
        async with self._producer():
            rows = await self.queries.driver.fetch(
                f"SELECT EXTRACT(EPOCH FROM now() - min(created))::float8 AS age FROM {table} "
                "WHERE status IN ('queued', 'picked')"
            )
        age = rows[0]["age"] if rows else None
        return 0.0 if age is None else max(0.0, float(str(age)))

    # --- worker side --------------------------------------------------------------------

    def stop(self) -> None:
        self._stop_requested = True
        if self._qm is not None:
            self._qm.shutdown.set()

    async def run(self, handlers: Mapping[str, Handler], concurrency: int = 8) -> None:
        await self._run(handlers, concurrency, types.QueueExecutionMode.continuous)

    async def drain(self, handlers: Mapping[str, Handler], concurrency: int = 8) -> None:
        # Not pgqueuer's drain mode: that stops when nothing is *queued*, while a dead
        # worker's jobs (picked, heartbeat going stale) still have to be run here.
        watcher = asyncio.create_task(self._stop_when_empty(list(handlers)))
        try:
            await self._run(handlers, concurrency, types.QueueExecutionMode.continuous)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _stop_when_empty(self, kinds: list[str]) -> None:
        table = self.settings.qualified.queue_table
        while True:
            await asyncio.sleep(min(self.poll_interval_s, 0.1))
            async with self._producer():
                rows = await self.queries.driver.fetch(
                    f"SELECT count(*) AS n FROM {table} WHERE entrypoint = ANY($1) "
                    "AND status IN ('queued', 'picked')",
                    kinds,
                )
            if _int(rows[0]["n"]) == 0:
                self.stop()
                return

    async def _run(
        self, handlers: Mapping[str, Handler], concurrency: int, mode: types.QueueExecutionMode
    ) -> None:
        # The worker has a connection of its own: pgqueuer LISTENs on it.
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        qm = QueueManager(self._make_queries(conn), channel=types.Channel(self.settings.channel))
        for kind, handler in handlers.items():
            qm.entrypoint(kind)(self._adapter(kind, handler))
        self._qm = qm
        if self._stop_requested:
            qm.shutdown.set()
        batch = max(1, concurrency // 2)
        try:
            await qm.run(
                dequeue_timeout=timedelta(seconds=self.poll_interval_s),
                batch_size=batch,
                mode=mode,
                max_concurrent_tasks=max(concurrency, 2 * batch),
                heartbeat_timeout=timedelta(seconds=self.lock_timeout_s),
                log_aggregation_interval=timedelta(0),
            )
        finally:
            self._qm = None
            self._stop_requested = False
            with contextlib.suppress(Exception):
                await conn.close()

    def _adapter(self, kind: str, handler: Handler) -> Any:
        stats = self.stats

        async def run_one(job: models.Job) -> None:
            data = orjson.loads(job.payload or b"{}")
            group = (job.headers or {}).get(GROUP_HEADER)
            item = Job(
                id=str(job.id),
                kind=kind,
                payload=data.get("p", {}),
                priority=priority_of(job.priority),
                group=group if isinstance(group, str) else None,
                attempts=max(1, job.attempts + 1),
                enqueued_at=float(data.get("t", 0.0)),
            )
            try:
                await handler(item)
                stats.completed += 1
            except Exception:
                stats.failed += 1
                log.exception("queue item %s (%s) failed; dropped", item.id, kind)
            stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1

        return run_one
