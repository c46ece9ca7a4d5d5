"""Where semantic entries live beyond one replica's memory.

- `MemoryStore`: nothing beyond this process (the default).
- `SqlStore`: every entry also written to a table (SQLAlchemy Core). With an SQLite file
  (`persist_path`) a restarted gateway reloads its cache.
- `PostgresStore`: the same table in PostgreSQL, shared by several replicas. Each replica keeps
  its own in-memory catalog (vectors are searched in memory; pgvector is not needed), loads
  the live rows at startup, and follows the others through LISTEN/NOTIFY: an insert, delete
  or purge is announced in the same transaction, so a replica hears it once it is committed.
  A listener that loses its connection reconnects and reloads, so missed notices heal.

Every store method that touches a database runs the blocking driver in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import orjson
import psycopg
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from sluice.cache.semantic.catalog import SemanticCatalog, SemanticEntry
from sluice.state import engines, migrations
from sluice.state.tables import semantic_table

log = logging.getLogger("sluice.cache.semantic")

T = TypeVar("T")


class SemanticStore(Protocol):
    async def open(self, catalog: SemanticCatalog) -> None:
        """Load the live entries into `catalog` and keep it in step with other replicas."""

    async def put(self, entry: SemanticEntry) -> None: ...

    async def delete(self, entry_id: str) -> None: ...

    async def purge(
        self, tenant: str | None, route: str | None, entry_id: str | None = None
    ) -> int:
        """Delete durably (every replica drops them too); returns rows deleted."""

    async def close(self) -> None: ...


class MemoryStore:
    """Entries live only in the catalog of this process."""

    async def open(self, catalog: SemanticCatalog) -> None:
        return None

    async def put(self, entry: SemanticEntry) -> None:
        return None

    async def delete(self, entry_id: str) -> None:
        return None

    async def purge(
        self, tenant: str | None, route: str | None, entry_id: str | None = None
    ) -> int:
        return 0

    async def close(self) -> None:
        return None


class SqlStore:
    """Entries written through to a table; loaded back at `open`."""

    def __init__(self, url: str, table: str) -> None:
        self.url = url
        self.engine: Engine = engines.acquire(url)  # shared with every store on this URL
        self.table = semantic_table(table)
        self._clock: Callable[[], float] = time.time
        self.catalog: SemanticCatalog | None = None
        self._pending: set[asyncio.Future[Any]] = set()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread. A cancelled caller does not stop the thread, so
        `close` waits for every call still running before it closes the connections."""
        future = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return await asyncio.shield(future)

    async def open(self, catalog: SemanticCatalog) -> None:
        self.catalog, self._clock = catalog, catalog.clock
        await self._run(self._migrate)
        await self.reload()

    def _migrate(self) -> None:
        """Create the table (or adopt one made before migrations): the `semantic` branch of
        `sluice.state.migrations`, under its replica lock."""
        migrations.upgrade(self.url, "semantic", table=self.table.name)

    async def reload(self) -> int:
        """Replace the catalog's content with the live rows (newest `max_entries`)."""
        catalog = self.catalog
        assert catalog is not None
        rows = await self._run(self._live_rows, catalog.max_entries)
        entries = [e for e in (self._entry(r, catalog.dim) for r in rows) if e is not None]
        catalog.purge()
        for entry in reversed(entries):  # oldest first: the newest end up most recent
            catalog.add(entry)
        return len(entries)

    def _live_rows(self, limit: int) -> list[Any]:
        t = self.table
        query = (
            select(t)
            .where(t.c.expires_at > self._clock())
            .order_by(t.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def _entry(self, row: Any, dim: int) -> SemanticEntry | None:
        vector = np.frombuffer(row.vector, dtype="<f4").astype(np.float32)
        if vector.shape[0] != dim:
            return None  # stored by another embedding model
        return SemanticEntry(
            id=row.id,
            tenant=row.tenant,
            route=row.route,
            scope=row.scope,
            question=row.question,
            vector=vector,
            blob=bytes(row.response),
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    async def put(self, entry: SemanticEntry) -> None:
        await self._run(self._insert, entry)

    def _insert(self, entry: SemanticEntry) -> None:
        values = {
            "id": entry.id,
            "tenant": entry.tenant,
            "route": entry.route,
            "scope": entry.scope,
            "question": entry.question,
            "vector": np.asarray(entry.vector, dtype="<f4").tobytes(),
            "response": entry.blob,
            "created_at": entry.created_at,
            "expires_at": entry.expires_at,
        }
        with self.engine.begin() as conn:
            conn.execute(self.table.insert().values(**values))
            self._announce(conn, {"op": "add", "id": entry.id})

    async def delete(self, entry_id: str) -> None:
        await self._run(self._delete_where, None, None, entry_id)

    async def purge(
        self, tenant: str | None, route: str | None, entry_id: str | None = None
    ) -> int:
        return await self._run(self._delete_where, tenant, route, entry_id)

    def _delete_where(self, tenant: str | None, route: str | None, entry_id: str | None) -> int:
        t = self.table
        stmt = delete(t)
        if entry_id is not None:
            stmt = stmt.where(t.c.id == entry_id)
        if tenant is not None:
            stmt = stmt.where(t.c.tenant == tenant)
        if route is not None:
            stmt = stmt.where(t.c.route == route)
        with self.engine.begin() as conn:
            count = conn.execute(stmt).rowcount
            if count:
                notice = {"op": "purge", "tenant": tenant, "route": route, "id": entry_id}
                self._announce(conn, notice)
            # Expired rows are never served; drop them while we are here.
            conn.execute(delete(t).where(t.c.expires_at <= self._clock()))
        return int(count)

    def _announce(self, conn: Any, notice: dict[str, Any]) -> None:
        """Tell the other replicas (PostgreSQL only)."""

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending))
        await self._run(engines.release, self.engine)


def channel_name(table: str) -> str:
    return f"sluice_semantic_{table}"[:63]


def psycopg_url(url: str) -> str:
    return engines.database_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


class PostgresStore(SqlStore):
    """A table shared by every replica; changes announced with NOTIFY, followed with LISTEN."""

    def __init__(self, url: str, table: str) -> None:
        super().__init__(url, table)
        self._url = psycopg_url(url)
        self.channel = channel_name(table)
        self.origin = uuid.uuid4().hex  # this replica: its own notices are ignored
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self.notices = 0  # applied notices from other replicas (tests, stats)

    async def open(self, catalog: SemanticCatalog) -> None:
        self.catalog, self._clock = catalog, catalog.clock
        await self._run(self._migrate)
        self._ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._listen_forever(), name="sluice-semantic-listen")
        await self._ready.wait()

    def _announce(self, conn: Any, notice: dict[str, Any]) -> None:
        payload = orjson.dumps({**notice, "origin": self.origin}).decode()
        conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (self.channel, payload))

    async def _listen_forever(self) -> None:
        assert self._ready is not None
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    await self.reload()  # after LISTEN: nothing committed later is missed
                    self._ready.set()
                    delay = 0.5
                    async for notice in conn.notifies():
                        await self._apply(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("semantic cache listener: %r; reconnecting in %.1fs", exc, delay)
                self._ready.set()  # serve from memory meanwhile; never block startup
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _apply(self, payload: str) -> None:
        catalog = self.catalog
        assert catalog is not None
        try:
            notice = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(notice, dict) or notice.get("origin") == self.origin:
            return
        self.notices += 1
        if notice.get("op") == "add":
            row = await self._run(self._row, str(notice.get("id")))
            entry = None if row is None else self._entry(row, catalog.dim)
            if entry is not None:
                catalog.add(entry)
        elif notice.get("op") == "purge":
            tenant, route, entry_id = notice.get("tenant"), notice.get("route"), notice.get("id")
            if entry_id is None:
                catalog.purge(tenant, route)
                return
            entry = catalog.get(str(entry_id))
            if (
                entry is not None
                and tenant in (None, entry.tenant)
                and route in (None, entry.route)
            ):
                catalog.remove(entry.id)

    def _row(self, entry_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(self.table).where(self.table.c.id == entry_id)).first()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().close()


def make_store(
    backend: str, postgres_url: str, table: str, persist_path: str | None
) -> SemanticStore:
    if backend == "postgres":
        return PostgresStore(postgres_url, table)
    if persist_path:
        return SqlStore(f"sqlite:///{persist_path}", table)
    return MemoryStore()
