"""Stored Responses API answers, per tenant: SQLite embedded, PostgreSQL shared by replicas.

`ResponseStore` is the small interface the front end needs (put, get, delete); the one
implementation is SQLAlchemy Core over one table (`sluice_responses` unless told
otherwise), keyed by (tenant, id) so one tenant can never read, continue or delete
another's answer: it is simply not found. Each row holds the `response` object (what
`GET /v1/responses/{id}` returns) and the conversation items that led to it (what a call
with `previous_response_id` continues from). Rows older than `ttl_s` are neither returned
nor kept: expired rows are purged at start and every `_PURGE_EVERY` writes.

A write of this process still in flight is awaited by a read of the same id, so a client
that continues a conversation the instant the stream ends never misses its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    Column,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from sluice.state import engines

log = logging.getLogger("sluice.responses")

_PURGE_EVERY = 500
_WRITE_WAIT_S = 10.0
MAX_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    tenant: str
    created_at: float
    response: dict[str, Any]
    items: list[dict[str, Any]]  # the conversation: input items, then the output items
    input_start: int = 0  # where this call's own input begins in `items` (input_items)

    @property
    def own_input(self) -> list[dict[str, Any]]:
        """The input items of this call alone (not the conversation it continued)."""
        end = len(self.items) - len(self.response.get("output") or [])
        return self.items[self.input_start : max(self.input_start, end)]


class ResponseStore(Protocol):
    async def start(self) -> None: ...

    def reserve(self, tenant: str, response_id: str) -> None:
        """A write of this id is coming: reads of it wait for `put` (or `release`)."""
        ...

    def release(self, tenant: str, response_id: str) -> None: ...

    async def put(self, stored: StoredResponse) -> None: ...

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, tenant: str, response_id: str) -> bool: ...

    async def close(self) -> None: ...


def _engine(url: str) -> Engine:
    """The process's shared engine for `url` (sluice.state: one per database, SQLite files
    in WAL mode, their directory made on first use)."""
    return engines.acquire(url)


class SqlResponseStore:
    """Satisfies `ResponseStore`. Blocking SQL runs in worker threads."""

    def __init__(self, url: str, *, table_name: str = "sluice_responses", ttl_s: float) -> None:
        self.engine = _engine(url)
        self.ttl_s = ttl_s
        self.metadata = MetaData()
        self.table = Table(
            table_name,
            self.metadata,
            Column("tenant", String(255), primary_key=True),
            Column("id", String(MAX_ID_CHARS), primary_key=True),
            Column("created_at", Double(), nullable=False, index=True),
            Column("response", Text(), nullable=False),
            Column("items", Text(), nullable=False),
            Column("input_start", Integer(), nullable=False),
        )
        self._writes = 0
        self._pending: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def start(self) -> None:
        await asyncio.to_thread(self._create)
        await asyncio.to_thread(self._purge)

    def _create(self) -> None:
        try:
            self.metadata.create_all(self.engine)
        except SQLAlchemyError:
            # Another replica created it between our check and our CREATE (PostgreSQL
            # reports the race as a unique violation): fine if the table is there now.
            self.metadata.create_all(self.engine)

    def _purge(self) -> None:
        cutoff = time.time() - self.ttl_s
        with self.engine.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.created_at < cutoff))

    def reserve(self, tenant: str, response_id: str) -> None:
        if (tenant, response_id) not in self._pending:
            self._pending[(tenant, response_id)] = asyncio.get_running_loop().create_future()

    def release(self, tenant: str, response_id: str) -> None:
        done = self._pending.pop((tenant, response_id), None)
        if done is not None and not done.done():
            done.set_result(None)

    async def put(self, stored: StoredResponse) -> None:
        self.reserve(stored.tenant, stored.id)
        try:
            await asyncio.to_thread(self._insert, stored)
        finally:
            self.release(stored.tenant, stored.id)
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            await asyncio.to_thread(self._purge)

    def _insert(self, stored: StoredResponse) -> None:
        row = (
            stored.tenant,
            stored.id,
            stored.created_at,
            orjson.dumps(stored.response).decode(),
            orjson.dumps(stored.items).decode(),
            stored.input_start,
        )
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self._insert_sql, row)

    @cached_property
    def _insert_sql(self) -> str:
        """The INSERT in the driver's own parameter style, built once: the statement runs
        once per stored answer, and SQLAlchemy's compile-and-bind costs more than the write
        (see `sluice bench frontends`)."""
        quote = self.engine.dialect.identifier_preparer
        names = ", ".join(quote.quote(c.name) for c in self.table.columns)
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join([marker] * len(self.table.columns))
        return f"INSERT INTO {quote.format_table(self.table)} ({names}) VALUES ({marks})"

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        if len(response_id) > MAX_ID_CHARS:
            return None
        pending = self._pending.get((tenant, response_id))
        if pending is not None:
            with contextlib.suppress(TimeoutError):  # a stuck write must not hang readers
                await asyncio.wait_for(asyncio.shield(pending), _WRITE_WAIT_S)
        return await asyncio.to_thread(self._select, tenant, response_id)

    def _select(self, tenant: str, response_id: str) -> StoredResponse | None:
        t = self.table
        stmt = select(t.c.created_at, t.c.response, t.c["items"], t.c.input_start).where(
            t.c.tenant == tenant, t.c.id == response_id, t.c.created_at >= time.time() - self.ttl_s
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        created, response, items, start = row
        return StoredResponse(
            response_id, tenant, float(created), orjson.loads(response), orjson.loads(items), start
        )

    async def delete(self, tenant: str, response_id: str) -> bool:
        if len(response_id) > MAX_ID_CHARS:
            return False
        return await asyncio.to_thread(self._delete, tenant, response_id)

    def _delete(self, tenant: str, response_id: str) -> bool:
        t = self.table
        with self.engine.begin() as conn:
            done = conn.execute(delete(t).where(t.c.tenant == tenant, t.c.id == response_id))
        return bool(done.rowcount)

    async def close(self) -> None:
        await asyncio.to_thread(engines.release, self.engine)
