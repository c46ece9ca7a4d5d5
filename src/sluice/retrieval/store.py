"""`VectorStoreDB`: stores, files, chunks (with vectors) and file batches in SQL.

One code path for SQLite (embedded: a file under `state_dir`) and PostgreSQL (shared by
replicas). Every query is keyed by tenant where an object is looked up by id, so another
tenant's store is simply not found. Blocking: call through `asyncio.to_thread` (the service
does). `version` on the store row is bumped in the same transaction as any change of its
chunks or file attributes; a replica compares it to its in-memory index before searching.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from sluice.retrieval.index import IndexedChunk
from sluice.state import engines, migrations
from sluice.state.tables import (
    vector_store_batches,
    vector_store_chunks,
    vector_store_files,
    vector_stores,
)


@dataclass(frozen=True, slots=True)
class StoreRow:
    id: str
    tenant: str
    name: str | None
    metadata: dict[str, Any]
    expires_after: dict[str, Any] | None
    created_at: float
    last_active_at: float
    version: int
    expired_at: float | None = None  # set once, when the store expired (sluice.retrieval.expiry)


@dataclass(frozen=True, slots=True)
class FileRow:
    store_id: str
    file_id: str
    tenant: str
    filename: str
    status: str
    last_error: dict[str, Any] | None
    attributes: dict[str, Any]
    chunking: dict[str, Any]
    batch_id: str | None
    usage_bytes: int
    created_at: float


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: str
    store_id: str
    tenant: str
    file_ids: list[str]
    cancelled: bool
    created_at: float


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _store(row: Any) -> StoreRow:
    return StoreRow(
        row.id,
        row.tenant,
        row.name,
        orjson.loads(row.meta),
        orjson.loads(row.expires_after) if row.expires_after else None,
        row.created_at,
        row.last_active_at,
        int(row.version),
        row.expired_at,
    )


def _file(row: Any) -> FileRow:
    return FileRow(
        row.store_id,
        row.file_id,
        row.tenant,
        row.filename,
        row.status,
        orjson.loads(row.last_error) if row.last_error else None,
        orjson.loads(row.attributes),
        orjson.loads(row.chunking),
        row.batch_id,
        int(row.usage_bytes),
        row.created_at,
    )


class VectorStoreDB:
    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.engine: Engine = engines.acquire(url)
        self.clock = clock  # wall-clock epoch seconds (tests move it)

    def migrate(self) -> None:
        migrations.upgrade(self.url, "retrieval")

    def close(self) -> None:
        engines.release(self.engine)

    # --- stores ---------------------------------------------------------------------------

    def create_store(self, row: StoreRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(vector_stores).values(
                    id=row.id,
                    tenant=row.tenant,
                    name=row.name,
                    meta=_json(row.metadata),
                    expires_after=_json(row.expires_after) if row.expires_after else None,
                    created_at=row.created_at,
                    last_active_at=row.last_active_at,
                    version=0,
                )
            )

    def count_stores(self, tenant: str) -> int:
        with self.engine.connect() as conn:
            q = select(func.count()).select_from(vector_stores)
            return int(conn.execute(q.where(vector_stores.c.tenant == tenant)).scalar_one())

    def get_store(self, tenant: str, store_id: str) -> StoreRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(vector_stores).where(
                    vector_stores.c.id == store_id, vector_stores.c.tenant == tenant
                )
            ).first()
        return _store(row) if row is not None else None

    def store_version(self, store_id: str) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(vector_stores.c.version).where(vector_stores.c.id == store_id)
            ).scalar()
        return int(value) if value is not None else None

    def list_stores(self, tenant: str, limit: int, desc: bool) -> list[StoreRow]:
        order = vector_stores.c.created_at.desc() if desc else vector_stores.c.created_at.asc()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(vector_stores)
                .where(vector_stores.c.tenant == tenant)
                .order_by(order, vector_stores.c.id)
                .limit(limit)
            ).all()
        return [_store(r) for r in rows]

    def update_store(
        self, tenant: str, store_id: str, values: dict[str, Any], touch: bool = True
    ) -> bool:
        out: dict[str, Any] = {"last_active_at": self.clock()} if touch else {}
        if "name" in values:
            out["name"] = values["name"]
        if "metadata" in values:
            out["meta"] = _json(values["metadata"])
        if "expires_after" in values:
            out["expires_after"] = (
                _json(values["expires_after"]) if values["expires_after"] else None
            )
        with self.engine.begin() as conn:
            result = conn.execute(
                update(vector_stores)
                .where(vector_stores.c.id == store_id, vector_stores.c.tenant == tenant)
                .values(**out)
            )
        return bool(result.rowcount)

    def delete_store(self, tenant: str, store_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(vector_stores).where(
                    vector_stores.c.id == store_id, vector_stores.c.tenant == tenant
                )
            )
            if not result.rowcount:
                return False
            for table in (vector_store_chunks, vector_store_files, vector_store_batches):
                conn.execute(delete(table).where(table.c.store_id == store_id))
        return True

    def _bump(self, conn: Connection, store_id: str) -> None:
        conn.execute(
            update(vector_stores)
            .where(vector_stores.c.id == store_id)
            .values(version=vector_stores.c.version + 1, last_active_at=self.clock())
        )

    def touch(self, store_id: str, now: float, every_s: float) -> None:
        """Move a live store's `last_active_at` to `now` if it is older than `every_s`."""
        with self.engine.begin() as conn:
            conn.execute(
                update(vector_stores)
                .where(
                    vector_stores.c.id == store_id,
                    vector_stores.c.expired_at.is_(None),
                    vector_stores.c.last_active_at < now - every_s,
                )
                .values(last_active_at=now)
            )

    def stores_with_expiry(self) -> list[StoreRow]:
        """Every store that has `expires_after` and has not expired yet (the sweep's input)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(vector_stores).where(
                    vector_stores.c.expires_after.is_not(None),
                    vector_stores.c.expired_at.is_(None),
                )
            ).all()
        return [_store(r) for r in rows]

    def expire_store(self, store_id: str, at: float) -> int:
        """Mark a store expired (once) and free its chunks and vectors; the chunks deleted."""
        with self.engine.begin() as conn:
            conn.execute(
                update(vector_stores)
                .where(vector_stores.c.id == store_id, vector_stores.c.expired_at.is_(None))
                .values(expired_at=at)
            )
            result = conn.execute(
                delete(vector_store_chunks).where(vector_store_chunks.c.store_id == store_id)
            )
            self._bump_version(conn, store_id)
        return int(result.rowcount or 0)

    def _bump_version(self, conn: Connection, store_id: str) -> None:
        conn.execute(
            update(vector_stores)
            .where(vector_stores.c.id == store_id)
            .values(version=vector_stores.c.version + 1)
        )

    # --- files ----------------------------------------------------------------------------

    def add_file(self, row: FileRow) -> bool:
        """Insert (or restart) a file's row as in_progress; False if the store is gone."""
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(vector_stores.c.id).where(
                    vector_stores.c.id == row.store_id, vector_stores.c.tenant == row.tenant
                )
            ).first()
            if exists is None:
                return False
            conn.execute(
                delete(vector_store_files).where(
                    vector_store_files.c.store_id == row.store_id,
                    vector_store_files.c.file_id == row.file_id,
                )
            )
            conn.execute(
                insert(vector_store_files).values(
                    store_id=row.store_id,
                    file_id=row.file_id,
                    tenant=row.tenant,
                    filename=row.filename,
                    status=row.status,
                    last_error=None,
                    attributes=_json(row.attributes),
                    chunking=_json(row.chunking),
                    batch_id=row.batch_id,
                    usage_bytes=0,
                    created_at=row.created_at,
                )
            )
        return True

    def get_file(self, tenant: str, store_id: str, file_id: str) -> FileRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(vector_store_files).where(
                    vector_store_files.c.store_id == store_id,
                    vector_store_files.c.file_id == file_id,
                    vector_store_files.c.tenant == tenant,
                )
            ).first()
        return _file(row) if row is not None else None

    def list_files(
        self, tenant: str, store_id: str, status: str | None = None, batch_id: str | None = None
    ) -> list[FileRow]:
        q = select(vector_store_files).where(
            vector_store_files.c.store_id == store_id, vector_store_files.c.tenant == tenant
        )
        if status:
            q = q.where(vector_store_files.c.status == status)
        if batch_id:
            q = q.where(vector_store_files.c.batch_id == batch_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(vector_store_files.c.created_at)).all()
        return [_file(r) for r in rows]

    def stale_files(self, older_than: float) -> list[FileRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(vector_store_files).where(
                    vector_store_files.c.status == "in_progress",
                    vector_store_files.c.created_at < older_than,
                )
            ).all()
        return [_file(r) for r in rows]

    def finish_file(
        self,
        row: FileRow,
        chunks: Sequence[IndexedChunk],
        vectors: np.ndarray,
        usage_bytes: int,
    ) -> bool:
        """Write a file's chunks and mark it completed, in one transaction; False when the
        file was removed (or re-added) meanwhile."""
        with self.engine.begin() as conn:
            current = conn.execute(
                select(vector_store_files.c.created_at).where(
                    vector_store_files.c.store_id == row.store_id,
                    vector_store_files.c.file_id == row.file_id,
                    vector_store_files.c.status == "in_progress",
                )
            ).scalar()
            if current is None or current != row.created_at:
                return False
            conn.execute(
                delete(vector_store_chunks).where(
                    vector_store_chunks.c.store_id == row.store_id,
                    vector_store_chunks.c.file_id == row.file_id,
                )
            )
            if chunks:
                conn.execute(
                    insert(vector_store_chunks),
                    [
                        {
                            "id": c.id,
                            "store_id": row.store_id,
                            "file_id": row.file_id,
                            "seq": c.seq,
                            "text": c.text,
                            "heading": c.heading,
                            "tokens": c.tokens,
                            "sentences": _json(list(c.sentences)),
                            "vector": np.asarray(v, dtype="<f4").tobytes(),
                        }
                        for c, v in zip(chunks, vectors, strict=True)
                    ],
                )
            conn.execute(
                update(vector_store_files)
                .where(
                    vector_store_files.c.store_id == row.store_id,
                    vector_store_files.c.file_id == row.file_id,
                )
                .values(status="completed", usage_bytes=usage_bytes)
            )
            self._bump(conn, row.store_id)
        return True

    def fail_file(self, row: FileRow, code: str, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(vector_store_files)
                .where(
                    vector_store_files.c.store_id == row.store_id,
                    vector_store_files.c.file_id == row.file_id,
                    vector_store_files.c.created_at == row.created_at,
                    vector_store_files.c.status == "in_progress",
                )
                .values(status="failed", last_error=_json({"code": code, "message": message[:500]}))
            )

    def cancel_files(self, store_id: str, batch_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(vector_store_files)
                .where(
                    vector_store_files.c.store_id == store_id,
                    vector_store_files.c.batch_id == batch_id,
                    vector_store_files.c.status == "in_progress",
                )
                .values(status="cancelled")
            )
            conn.execute(
                update(vector_store_batches)
                .where(vector_store_batches.c.id == batch_id)
                .values(cancelled=True)
            )

    def update_attributes(
        self, tenant: str, store_id: str, file_id: str, attributes: dict[str, Any]
    ) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(vector_store_files)
                .where(
                    vector_store_files.c.store_id == store_id,
                    vector_store_files.c.file_id == file_id,
                    vector_store_files.c.tenant == tenant,
                )
                .values(attributes=_json(attributes))
            )
            if result.rowcount:
                self._bump(conn, store_id)
        return bool(result.rowcount)

    def delete_file(self, tenant: str, store_id: str, file_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(vector_store_files).where(
                    vector_store_files.c.store_id == store_id,
                    vector_store_files.c.file_id == file_id,
                    vector_store_files.c.tenant == tenant,
                )
            )
            if not result.rowcount:
                return False
            conn.execute(
                delete(vector_store_chunks).where(
                    vector_store_chunks.c.store_id == store_id,
                    vector_store_chunks.c.file_id == file_id,
                )
            )
            self._bump(conn, store_id)
        return True

    def load_chunks(self, store_id: str) -> tuple[int, list[IndexedChunk], np.ndarray]:
        """(version, chunks, vectors) of a store's completed files, read in one transaction."""
        with self.engine.begin() as conn:
            version = conn.execute(
                select(vector_stores.c.version).where(vector_stores.c.id == store_id)
            ).scalar()
            files = {
                r.file_id: r
                for r in conn.execute(
                    select(vector_store_files).where(
                        vector_store_files.c.store_id == store_id,
                        vector_store_files.c.status == "completed",
                    )
                )
            }
            rows = conn.execute(
                select(vector_store_chunks)
                .where(vector_store_chunks.c.store_id == store_id)
                .order_by(vector_store_chunks.c.file_id, vector_store_chunks.c.seq)
            ).all()
        chunks, vectors = [], []
        for r in rows:
            f = files.get(r.file_id)
            if f is None:
                continue
            chunks.append(
                IndexedChunk(
                    r.id,
                    r.file_id,
                    f.filename,
                    r.seq,
                    r.text,
                    r.heading,
                    r.tokens,
                    orjson.loads(f.attributes),
                    tuple(orjson.loads(r.sentences)),
                )
            )
            vectors.append(np.frombuffer(r.vector, dtype="<f4"))
        matrix = (
            np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, 384), np.float32)
        )
        return int(version or 0), chunks, matrix

    # --- batches --------------------------------------------------------------------------

    def create_batch(self, row: BatchRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(vector_store_batches).values(
                    id=row.id,
                    store_id=row.store_id,
                    tenant=row.tenant,
                    file_ids=_json(row.file_ids),
                    cancelled=False,
                    created_at=row.created_at,
                )
            )

    def get_batch(self, tenant: str, store_id: str, batch_id: str) -> BatchRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(vector_store_batches).where(
                    vector_store_batches.c.id == batch_id,
                    vector_store_batches.c.store_id == store_id,
                    vector_store_batches.c.tenant == tenant,
                )
            ).first()
        if r is None:
            return None
        return BatchRow(
            r.id, r.store_id, r.tenant, orjson.loads(r.file_ids), bool(r.cancelled), r.created_at
        )
