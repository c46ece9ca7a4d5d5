"""`BatchStore`: batches and their items in SQL (SQLite embedded, PostgreSQL shared).

Delivery is the work queue's (`sluice.queue`: at least once, leases, priorities); this
store keeps each item's state and its one result. `take` marks an item `running` when the
queue hands it to a worker (None if it already has a result or its batch stopped); its
result is written by the one conditional UPDATE that moves it from `running` to a final
state (`finish`): a second delivery of the same item finds it final and its result is
dropped, so each (batch, custom_id) has exactly one result — the output files are built
from these rows, never appended to as items finish. Blocking SQL runs in worker threads.

The same UPDATE keeps the item's spend-ledger row (`charge`, see `sluice.state.charges`):
a result is never kept without its charge, nor charged without being kept. `settle_charges`
then copies due charges into the ledger (keyed by the item: a second copy is a no-op) and
clears them; whoever clears one runs its follow-up (`after_charge`: a forwarded item's call
record and budget counters). The runner calls it in every housekeeping round (results of
the last half second, a few hundred rows a statement), for a redelivered item that already
has its result (its worker died between the two), and when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, tuple_, update

from sluice.batch.model import (
    ACTIVE,
    Batch,
    Claim,
    Counts,
    NewItem,
    Status,
    identity_from_json,
)
from sluice.identity import Identity
from sluice.state import charges, engines, migrations
from sluice.state.tables import batch_items as items_t
from sluice.state.tables import batches as batches_t

T = TypeVar("T")
AfterCharge = Callable[[dict[str, Any]], Awaitable[None]]
log = logging.getLogger("sluice.batch")
MAX_ID_CHARS = 64
CHARGE_SWEEP = 500  # held charges settled per round
_CLOSE_WAIT_S = 10.0


def _forget(pending: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        pending.discard(future)
        if not future.cancelled():
            future.exception()  # retrieved: a cancelled caller's error is not logged twice

    return done


_INSERT_CHUNK = 500


class BatchStore:
    def __init__(
        self,
        url: str,
        *,
        ledger_url: str | None = None,
        migrate_ledger: bool = True,
        after_charge: AfterCharge | None = None,
    ) -> None:
        """`ledger_url`: the spend ledger's database (None: no ledger is kept, items hold
        no charge; `migrate_ledger`: bring its tables up first, as the ledger itself
        does); `after_charge(after)`: a held charge's follow-up, once it is settled."""
        self.url = url
        self.engine = engines.acquire(url)
        self.ledger_url = ledger_url
        self.migrate_ledger = migrate_ledger
        self.after_charge = after_charge
        self._ledger: Engine | None = None
        self._threads: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        await self._thread(migrations.upgrade, self.url, "batch")
        if self.ledger_url and self._ledger is None:
            if self.migrate_ledger:
                await self._thread(migrations.upgrade, self.ledger_url, "governance")
            self._ledger = engines.acquire(self.ledger_url)

    async def close(self) -> None:
        """Release the engine once no store call is still running in a thread. A caller
        cancelled mid-call (the runner's housekeeping, at shutdown) leaves its thread
        running with a connection checked out; disposing of the engine under it left that
        connection to be garbage-collected open (an unraisable ResourceWarning)."""
        if self._threads:
            await asyncio.wait(set(self._threads), timeout=_CLOSE_WAIT_S)
        if self._ledger is not None:
            ledger, self._ledger = self._ledger, None
            await asyncio.to_thread(engines.release, ledger)
        await asyncio.to_thread(engines.release, self.engine)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread, tracked until the thread is done (a thread cannot
        be cancelled: a cancelled caller stops waiting, `close` still waits for it)."""
        future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._threads.add(future)
        future.add_done_callback(_forget(self._threads))
        return await asyncio.shield(future)

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Work on this store's engine done elsewhere (the runner's output files)."""
        return await self._thread(fn)

    # --- batches ------------------------------------------------------------------------

    async def create(self, batch: Batch, identity: dict[str, Any], items: list[NewItem]) -> None:
        await self._thread(self._create, batch, identity, items)

    def _create(self, batch: Batch, identity: dict[str, Any], items: list[NewItem]) -> None:
        row = {
            "id": batch.id,
            "tenant": batch.tenant,
            "wire": batch.wire,
            "mode": batch.mode,
            "endpoint": batch.endpoint,
            "status": batch.status,
            "input_file_id": batch.input_file_id,
            "output_file_id": None,
            "error_file_id": None,
            "completion_window": batch.completion_window,
            "created_at": batch.created_at,
            "expires_at": batch.expires_at,
            "times": batch.times,
            "total": batch.total,
            "meta": batch.metadata or {},
            "errors": batch.errors,
            "identity": identity,
            "provider_batch": batch.provider,
        }
        rows = [
            {
                "batch_id": batch.id,
                "idx": item.idx,
                "custom_id": item.custom_id,
                "body": orjson.dumps(item.body).decode(),
                "state": "pending",
                "lease_until": None,
                "attempts": 0,
                "result": None,
                "finished_at": None,
            }
            for item in items
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(batches_t).values(**row))
            for start in range(0, len(rows), _INSERT_CHUNK):
                conn.execute(insert(items_t), rows[start : start + _INSERT_CHUNK])

    async def get(self, tenant: str, batch_id: str, wire: str) -> Batch | None:
        if len(batch_id) > MAX_ID_CHARS:
            return None
        return await self._thread(self._get, tenant, batch_id, wire)

    def _get(self, tenant: str | None, batch_id: str, wire: str | None) -> Batch | None:
        t = batches_t
        stmt = select(t).where(t.c.id == batch_id)
        if tenant is not None:
            stmt = stmt.where(t.c.tenant == tenant)
        if wire is not None:
            stmt = stmt.where(t.c.wire == wire)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
            if row is None:
                return None
            return _batch(row, _counts(conn, batch_id))

    async def get_any(self, batch_id: str) -> Batch | None:
        """A batch whatever its tenant (the runner and operators only)."""
        return await self._thread(self._get, None, batch_id, None)

    async def creator(self, batch_id: str) -> Identity | None:
        """Who made the batch, as resolved then (forwarded items are charged to it)."""
        return await self._thread(self._creator, batch_id)

    def _creator(self, batch_id: str) -> Identity | None:
        stmt = select(batches_t.c.identity).where(batches_t.c.id == batch_id)
        with self.engine.connect() as conn:
            found = conn.execute(stmt).scalar_one_or_none()
        return None if found is None else identity_from_json(found)

    async def page(
        self, tenant: str, wire: str, limit: int, after: str | None
    ) -> tuple[list[Batch], bool]:
        return await self._thread(self._list, tenant, wire, limit, after)

    def _list(
        self, tenant: str, wire: str, limit: int, after: str | None
    ) -> tuple[list[Batch], bool]:
        t = batches_t
        stmt = select(t).where(t.c.tenant == tenant, t.c.wire == wire)
        with self.engine.connect() as conn:
            if after:
                cursor = conn.execute(
                    select(t.c.created_at).where(t.c.tenant == tenant, t.c.id == after)
                ).first()
                if cursor is not None:
                    stmt = stmt.where(
                        or_(
                            t.c.created_at < cursor[0],
                            and_(t.c.created_at == cursor[0], t.c.id < after),
                        )
                    )
            stmt = stmt.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit + 1)
            rows = conn.execute(stmt).mappings().all()
            found = [_batch(r, _counts(conn, r["id"])) for r in rows[:limit]]
        return found, len(rows) > limit

    async def recent(self, limit: int = 20) -> list[Batch]:
        """The newest batches of every tenant (the dashboard)."""
        return await self._thread(self._recent, limit)

    def _recent(self, limit: int) -> list[Batch]:
        t = batches_t
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(t).order_by(t.c.created_at.desc()).limit(limit))
                .mappings()
                .all()
            )
            return [_batch(r, _counts(conn, r["id"])) for r in rows]

    async def transition(
        self, batch_id: str, old: tuple[Status, ...], new: Status, **fields: Any
    ) -> bool:
        """Move the batch from one of `old` to `new` (stamping `<new>_at`); False when it
        was not in `old` (another worker or replica got there first)."""
        return await self._thread(self._transition, batch_id, old, new, fields)

    def _transition(
        self, batch_id: str, old: tuple[Status, ...], new: Status, fields: dict[str, Any]
    ) -> bool:
        t = batches_t
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.status, t.c.times).where(t.c.id == batch_id)).first()
            if row is None or row[0] not in old:
                return False
            times = {**(row[1] or {}), f"{new}_at": time.time()}
            done = conn.execute(
                update(t)
                .where(t.c.id == batch_id, t.c.status == row[0])
                .values(status=new, times=times, **fields)
            )
            return bool(done.rowcount)

    async def active(self) -> list[Batch]:
        """Batches the runner still has work for (in progress, cancelling, finalizing)."""
        return await self._thread(self._active)

    def _active(self) -> list[Batch]:
        t = batches_t
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.status.in_(ACTIVE))).mappings().all()
            return [_batch(r, _counts(conn, r["id"])) for r in rows]

    async def set_provider(
        self, batch_id: str, value: dict[str, Any], expect: dict[str, Any] | None
    ) -> bool:
        """Replace a forwarded batch's provider state if it is still `expect` (so two
        replicas never both submit it)."""
        return await self._thread(self._set_provider, batch_id, value, expect)

    def _set_provider(
        self, batch_id: str, value: dict[str, Any], expect: dict[str, Any] | None
    ) -> bool:
        t = batches_t
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.provider_batch).where(t.c.id == batch_id)).first()
            if row is None or row[0] != expect:
                return False
            conn.execute(update(t).where(t.c.id == batch_id).values(provider_batch=value))
        return True

    async def start_all(self, batch_id: str) -> list[tuple[int, str, dict[str, Any]]]:
        """Every pending item, now `running` (forward mode hands them over at once)."""
        return await self._thread(self._start_all, batch_id)

    def _start_all(self, batch_id: str) -> list[tuple[int, str, dict[str, Any]]]:
        i = items_t
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(i.c.idx, i.c.custom_id, i.c.body)
                .where(i.c.batch_id == batch_id, i.c.state.in_(("pending", "running")))
                .order_by(i.c.idx)
            ).all()
            conn.execute(
                update(i)
                .where(i.c.batch_id == batch_id, i.c.state == "pending")
                .values(state="running", attempts=i.c.attempts + 1)
            )
        return [(int(idx), cid, orjson.loads(body)) for idx, cid, body in rows]

    async def index_of(self, batch_id: str) -> dict[str, int]:
        """custom_id -> idx of a batch's items."""
        return await self._thread(self._index_of, batch_id)

    def _index_of(self, batch_id: str) -> dict[str, int]:
        i = items_t
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(i.c.custom_id, i.c.idx).where(i.c.batch_id == batch_id)
            ).all()
        return {cid: int(idx) for cid, idx in rows}

    # --- items: the queue ---------------------------------------------------------------

    async def take(self, batch_id: str, idx: int, lease_s: float) -> Claim | None:
        """Mark one item running for the worker the queue gave it to; None when it has its
        result already (a redelivery) or its batch no longer runs (cancelled, expired)."""
        return await self._thread(self._take, batch_id, idx, lease_s)

    def _take(self, batch_id: str, idx: int, lease_s: float) -> Claim | None:
        i, b = items_t, batches_t
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(i.c.custom_id, i.c.body, i.c.attempts, b.c.wire, b.c.identity)
                .join(b, b.c.id == i.c.batch_id)
                .where(
                    i.c.batch_id == batch_id,
                    i.c.idx == idx,
                    i.c.state.in_(("pending", "running")),
                    b.c.status == "in_progress",
                )
            ).first()
            if row is None:
                return None
            custom_id, body, attempts, wire, identity = row
            took = conn.execute(
                update(i)
                .where(i.c.batch_id == batch_id, i.c.idx == idx, i.c.attempts == attempts)
                .values(state="running", lease_until=now + lease_s, attempts=attempts + 1)
            )
            if not took.rowcount:
                return None
        return Claim(
            batch_id, idx, custom_id, body, attempts + 1, wire, identity_from_json(identity)
        )

    async def unfinished(self, batch_id: str) -> list[int]:
        """The items of a batch without a result (re-enqueued at start, deduplicated)."""
        return await self._thread(self._unfinished, batch_id)

    def _unfinished(self, batch_id: str) -> list[int]:
        i = items_t
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(i.c.idx)
                .where(i.c.batch_id == batch_id, i.c.state.in_(("pending", "running")))
                .order_by(i.c.idx)
            ).all()
        return [int(r[0]) for r in rows]

    async def finish(
        self,
        batch_id: str,
        idx: int,
        state: str,
        result: dict[str, Any] | None,
        charge: str | None = None,
    ) -> bool:
        """Write an item's one result, and its held charge (`sluice.state.charges`) in the
        same transaction; False when it already has one (both are dropped then) or was
        stopped while it ran (its result is dropped, its charge still held)."""
        return await self._thread(self._finish, batch_id, idx, state, result, charge)

    def _finish(
        self,
        batch_id: str,
        idx: int,
        state: str,
        result: dict[str, Any] | None,
        charge: str | None,
    ) -> bool:
        i = items_t
        with self.engine.begin() as conn:
            done = conn.execute(
                update(i)
                .where(i.c.batch_id == batch_id, i.c.idx == idx, i.c.state == "running")
                .values(
                    state=state,
                    result=orjson.dumps(result).decode(),
                    finished_at=time.time(),
                    lease_until=None,
                    charge=charge if self.ledger_url else None,
                )
            )
            if not done.rowcount and charge is not None and self.ledger_url:
                # Stopped (expired or cancelled) while it ran: no result is kept, but its
                # call was made and paid for. Its charge is held on the item like a kept
                # one (the sweep moves it, keyed by the item: still never twice). An item
                # already final with a result keeps its own charge: a re-run adds nothing.
                conn.execute(
                    update(i)
                    .where(
                        i.c.batch_id == batch_id,
                        i.c.idx == idx,
                        i.c.state.in_(("expired", "cancelled")),
                        i.c.result.is_(None),
                        i.c.charge.is_(None),
                    )
                    .values(charge=charge)
                )
        return bool(done.rowcount)

    async def settle_charges(self, batch_id: str | None = None, idx: int | None = None) -> int:
        """Copy held charges into the spend ledger and clear them: one item's, or up to
        `CHARGE_SWEEP` of any batch. Each cleared here has its `after_charge` run. Returns
        how many were due (`CHARGE_SWEEP`: there may be more)."""
        if self._ledger is None:
            return 0
        due, cleared = await self._thread(self._settle_charges, batch_id, idx)
        for after in cleared:
            if after is not None and self.after_charge is not None:
                try:
                    await self.after_charge(after)
                except Exception:  # the ledger has it: only a record or a counter is missed
                    log.exception("a settled charge's follow-up failed")
        return due

    def _settle_charges(
        self, batch_id: str | None, idx: int | None
    ) -> tuple[int, list[dict[str, Any] | None]]:
        i, ledger = items_t, self._ledger
        assert ledger is not None
        stmt = select(i.c.batch_id, i.c.idx, i.c.charge).where(i.c.charge.is_not(None))
        if batch_id is not None:
            stmt = stmt.where(i.c.batch_id == batch_id)
        if idx is not None:
            stmt = stmt.where(i.c.idx == idx)
        with self.engine.connect() as conn:
            due = conn.execute(stmt.limit(CHARGE_SWEEP)).all()
        if not due:
            return 0, []
        charges.write(ledger, [row[2] for row in due])  # keyed by item: never twice
        held = {(b_id, n): charge for b_id, n, charge in due}
        with self.engine.begin() as conn:  # RETURNING: the ones this call cleared (a
            gone = conn.execute(  # sweeper racing it clears the others)
                update(i)
                .where(tuple_(i.c.batch_id, i.c.idx).in_(list(held)), i.c.charge.is_not(None))
                .values(charge=None)
                .returning(i.c.batch_id, i.c.idx)
            ).all()
        return len(due), [charges.decode(held[(b_id, n)])[1] for b_id, n in gone]

    async def release(self, batch_id: str, idx: int) -> None:
        """Give a claimed item back unrun (shutdown): another worker takes it at once."""
        await self._thread(self._release, batch_id, idx)

    def _release(self, batch_id: str, idx: int) -> None:
        i = items_t
        with self.engine.begin() as conn:
            conn.execute(
                update(i)
                .where(i.c.batch_id == batch_id, i.c.idx == idx, i.c.state == "running")
                .values(state="pending", lease_until=None, attempts=i.c.attempts - 1)
            )

    async def settle_unfinished(self, batch_id: str, state: str, running_too: bool) -> int:
        """Mark the items not yet run (and the running ones, if `running_too`) `state`."""
        return await self._thread(self._settle_unfinished, batch_id, state, running_too)

    def _settle_unfinished(self, batch_id: str, state: str, running_too: bool) -> int:
        i = items_t
        states = ("pending", "running") if running_too else ("pending",)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(i)
                .where(i.c.batch_id == batch_id, i.c.state.in_(states))
                .values(state=state, finished_at=time.time(), lease_until=None)
            )
        return int(done.rowcount)

    def iter_items(self, batch_id: str) -> Iterator[tuple[int, str, str, dict[str, Any] | None]]:
        """(idx, custom_id, state, result) in input order (blocking: call in a thread)."""
        i = items_t
        stmt = (
            select(i.c.idx, i.c.custom_id, i.c.state, i.c.result)
            .where(i.c.batch_id == batch_id)
            .order_by(i.c.idx)
        )
        with self.engine.connect() as conn:
            for idx, custom_id, state, result in conn.execute(stmt):
                yield idx, custom_id, state, None if result is None else orjson.loads(result)

    async def items(self, batch_id: str) -> list[tuple[int, str, str, dict[str, Any] | None]]:
        return await self._thread(lambda: list(self.iter_items(batch_id)))

    async def queue_stats(self) -> tuple[int, int, float | None]:
        """(pending items, running items, creation time of the oldest pending one's batch)."""
        return await self._thread(self._queue_stats)

    def _queue_stats(self) -> tuple[int, int, float | None]:
        i, b = items_t, batches_t
        with self.engine.connect() as conn:
            by_state: dict[str, int] = dict(
                conn.execute(
                    select(i.c.state, func.count())
                    .join(b, b.c.id == i.c.batch_id)
                    .where(b.c.status.in_(ACTIVE), i.c.state.in_(("pending", "running")))
                    .group_by(i.c.state)
                ).all()
            )
            oldest = conn.execute(
                select(func.min(b.c.created_at)).where(b.c.status == "in_progress")
            ).scalar()
        return int(by_state.get("pending", 0)), int(by_state.get("running", 0)), oldest


def _counts(conn: Connection, batch_id: str) -> Counts:
    i = items_t
    rows = conn.execute(
        select(i.c.state, func.count()).where(i.c.batch_id == batch_id).group_by(i.c.state)
    ).all()
    return Counts.of({state: int(n) for state, n in rows})


def _batch(row: Any, counts: Counts) -> Batch:
    return Batch(
        id=row["id"],
        tenant=row["tenant"],
        wire=row["wire"],
        mode=row["mode"],
        endpoint=row["endpoint"],
        status=row["status"],
        completion_window=row["completion_window"],
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        total=int(row["total"]),
        times=dict(row["times"] or {}),
        input_file_id=row["input_file_id"],
        output_file_id=row["output_file_id"],
        error_file_id=row["error_file_id"],
        metadata=row["meta"] or None,
        errors=row["errors"],
        counts=counts,
        provider=row["provider_batch"],
    )
