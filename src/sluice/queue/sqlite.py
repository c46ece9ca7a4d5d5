"""The embedded queue: one table (`sluice_queue`) in a SQLite file under `state_dir`.

Why a table and not a library here: the embedded mode must need nothing running, and the
well-kept queue libraries all need a server (PostgreSQL, Redis). One table with leases is
the whole mechanism, small enough to read in one sitting:

- pick: ONE `UPDATE ... WHERE id IN (SELECT ... ORDER BY priority DESC, enqueued_at LIMIT n)
  RETURNING *` (a single statement holds SQLite's write lock, so two processes on one file
  never pick the same row), taking rows that are `queued` or whose lease ran out;
- lease: a picked row carries `lease_until`; the worker renews it every third of
  `lock_timeout_s` while the handler runs; a killed worker stops renewing and the row is
  picked again (`attempts` + 1) — at least once;
- done: the row is deleted by the worker holding it (a handler that raised too: logged,
  counted, dropped);
- cancel: the group's rows not held by a live worker are deleted.

All database work runs in a thread (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from sluice.queue.base import Handler, Job, Priority, QueueStats, priority_of
from sluice.state import engines, migrations
from sluice.state.tables import queue_items as q

log = logging.getLogger("sluice.queue")


def _forget(running: dict[str, asyncio.Task[None]], item_id: str, _task: object) -> None:
    running.pop(item_id, None)


class SqlQueue:
    """The `Queue` protocol on one SQL table (SQLite; see the module docstring)."""

    backend = "sqlite"

    def __init__(self, url: str, *, lock_timeout_s: float = 30.0, poll_interval_s: float = 0.5):
        self.url = url
        self.lock_timeout_s = lock_timeout_s
        self.poll_interval_s = poll_interval_s
        self.worker_id = uuid.uuid4().hex
        self.stats = QueueStats()
        self._engine: Engine | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("SqlQueue.start() was not called")
        return self._engine

    async def start(self) -> None:
        if self._engine is not None:
            return
        await asyncio.to_thread(migrations.upgrade, self.url, "queue")
        self._engine = engines.acquire(self.url)

    async def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engines.release(engine)

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
        body = orjson.dumps(payload).decode()
        item_id = await asyncio.to_thread(
            self._insert, kind, body, int(priority), dedupe_key, group, max(0.0, delay_s)
        )
        self._wake.set()
        return item_id

    def _insert(
        self,
        kind: str,
        body: str,
        priority: int,
        dedupe_key: str | None,
        group: str | None,
        delay_s: float = 0.0,
    ) -> str:
        item_id = uuid.uuid4().hex
        row = {
            "id": item_id,
            "kind": kind[:64],
            "payload": body,
            "priority": priority,
            "dedupe_key": dedupe_key,
            "group_id": group,
            "status": "queued",
            "worker": None,
            "lease_until": 0.0,
            "attempts": 0,
            # a delayed item is "enqueued" in the future: not picked before then
            "enqueued_at": time.time() + delay_s,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(q).values(row))
            return item_id
        except IntegrityError:
            if dedupe_key is None:
                raise
            with self.engine.connect() as conn:
                found = conn.execute(select(q.c.id).where(q.c.dedupe_key == dedupe_key)).scalar()
            if found is None:  # the twin finished between the two statements: add ours
                return self._insert(kind, body, priority, dedupe_key, group, delay_s)
            return str(found)

    async def enqueue_many(
        self,
        kind: str,
        items: Sequence[tuple[dict[str, Any], str | None]],
        priority: Priority = Priority.BATCH,
        *,
        group: str | None = None,
    ) -> int:
        now = time.time()
        rows = [
            {
                "id": uuid.uuid4().hex,
                "kind": kind[:64],
                "payload": orjson.dumps(payload).decode(),
                "priority": int(priority),
                "dedupe_key": key,
                "group_id": group,
                "status": "queued",
                "worker": None,
                "lease_until": 0.0,
                "attempts": 0,
                "enqueued_at": now + i * 1e-6,  # keeps the given order within a priority
            }
            for i, (payload, key) in enumerate(items)
        ]
        if not rows:
            return 0

        def insert_all() -> int:
            stmt = sqlite_insert(q).on_conflict_do_nothing(index_elements=["dedupe_key"])
            with self.engine.begin() as conn:
                result = conn.execute(stmt, rows)
            return int(result.rowcount or 0)

        added = await asyncio.to_thread(insert_all)
        self._wake.set()
        return added

    async def cancel_group(self, group: str) -> int:
        return await asyncio.to_thread(self._cancel, group)

    def _cancel(self, group: str) -> int:
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(q).where(
                    q.c.group_id == group,
                    or_(q.c.status == "queued", q.c.lease_until < now),
                )
            )
        return int(result.rowcount or 0)

    # --- observation -------------------------------------------------------------------

    async def depth_by_priority(self) -> dict[str, int]:
        def count() -> dict[str, int]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(q.c.priority, func.count()).group_by(q.c.priority)).all()
            out = {p.name.lower(): 0 for p in Priority}
            for prio, n in rows:
                name = priority_of(int(prio)).name.lower()
                out[name] += int(n)
            return out

        return await asyncio.to_thread(count)

    async def oldest_age_s(self) -> float:
        def oldest() -> float:
            with self.engine.connect() as conn:
                first = conn.execute(select(func.min(q.c.enqueued_at))).scalar()
            return 0.0 if first is None else max(0.0, time.time() - float(first))

        return await asyncio.to_thread(oldest)

    # --- worker side --------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self, handlers: Mapping[str, Handler], concurrency: int = 8) -> None:
        await self._loop(handlers, concurrency, drain=False)

    async def drain(self, handlers: Mapping[str, Handler], concurrency: int = 8) -> None:
        await self._loop(handlers, concurrency, drain=True)

    async def _loop(
        self, handlers: Mapping[str, Handler], concurrency: int, *, drain: bool
    ) -> None:
        kinds = list(handlers)
        running: dict[str, asyncio.Task[None]] = {}
        self._stopping.clear()
        renew = asyncio.create_task(self._renew_leases(running))
        try:
            while not self._stopping.is_set():
                free = concurrency - len(running)
                picked = await asyncio.to_thread(self._pick, kinds, free) if free > 0 else []
                for job in picked:
                    task = asyncio.create_task(self._execute(job, handlers[job.kind]))
                    running[job.id] = task
                    task.add_done_callback(functools.partial(_forget, running, job.id))
                if picked and len(running) < concurrency:
                    continue  # more may be waiting
                idle = drain and not running and not picked
                if idle and not await asyncio.to_thread(self._count, kinds):
                    return  # nothing waiting, nothing held by another worker either
                await self._wait(running, drain=drain)
            if running:
                await asyncio.gather(*running.values(), return_exceptions=True)
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            if running:  # cancelled: hand the held items back at once, not after the lease
                tasks = list(running.values())
                ids = list(running)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.shield(asyncio.to_thread(self._release, ids))

    async def _wait(self, running: dict[str, asyncio.Task[None]], *, drain: bool) -> None:
        """Until an item finishes, an enqueue here wakes us, or the poll interval passes."""
        self._wake.clear()
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        waiters |= set(running.values())
        timeout = min(self.poll_interval_s, 0.1) if drain else self.poll_interval_s
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                if w not in running.values():
                    w.cancel()

    def _pick(self, kinds: list[str], limit: int) -> list[Job]:
        now = time.time()
        # waiting, or held by another worker whose lease ran out (never our own items:
        # we are alive, a late renewal here must not run an item twice in one process)
        claimable = or_(
            and_(q.c.status == "queued", q.c.enqueued_at <= now),  # delayed: not yet
            and_(q.c.lease_until < now, q.c.worker != self.worker_id),
        )
        candidates = (
            select(q.c.id)
            .where(q.c.kind.in_(kinds), claimable)
            .order_by(q.c.priority.desc(), q.c.enqueued_at)
            .limit(limit)
            .scalar_subquery()
        )
        stmt = (
            update(q)
            .where(q.c.id.in_(candidates), claimable)
            .values(
                status="picked",
                worker=self.worker_id,
                lease_until=now + self.lock_timeout_s,
                attempts=q.c.attempts + 1,
            )
            .returning(
                q.c.id,
                q.c.kind,
                q.c.payload,
                q.c.priority,
                q.c.group_id,
                q.c.attempts,
                q.c.enqueued_at,
            )
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        jobs = [
            Job(
                id=str(r.id),
                kind=str(r.kind),
                payload=orjson.loads(r.payload),
                priority=priority_of(int(r.priority)),
                group=r.group_id,
                attempts=int(r.attempts),
                enqueued_at=float(r.enqueued_at),
            )
            for r in rows
        ]
        jobs.sort(key=lambda j: (-int(j.priority), j.enqueued_at))
        return jobs

    async def _execute(self, job: Job, handler: Handler) -> None:
        try:
            await handler(job)
            self.stats.completed += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.failed += 1
            log.exception("queue item %s (%s) failed; dropped", job.id, job.kind)
        self.stats.by_kind[job.kind] = self.stats.by_kind.get(job.kind, 0) + 1
        await asyncio.to_thread(self._finish, job.id)

    def _count(self, kinds: list[str]) -> int:
        with self.engine.connect() as conn:
            n = conn.execute(select(func.count()).where(q.c.kind.in_(kinds))).scalar()
        return int(n or 0)

    def _finish(self, item_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(q).where(q.c.id == item_id, q.c.worker == self.worker_id))

    def _release(self, ids: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(q)
                .where(q.c.id.in_(ids), q.c.worker == self.worker_id)
                .values(status="queued", worker=None, lease_until=0.0)
            )

    async def _renew_leases(self, running: dict[str, asyncio.Task[None]]) -> None:
        while True:
            await asyncio.sleep(self.lock_timeout_s / 3)
            ids = list(running)
            if ids:
                await asyncio.to_thread(self._renew, ids)

    def _renew(self, ids: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(q)
                .where(q.c.id.in_(ids), q.c.worker == self.worker_id)
                .values(lease_until=time.time() + self.lock_timeout_s)
            )
