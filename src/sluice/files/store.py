"""`FileStore`: tenant-owned uploaded files, the store behind `/v1/files` and batches.

Every read and write is keyed by (tenant, id), so another tenant's file is simply not
found: the same answer as an id that never existed. Metadata is one row of `sluice_files`
(`sluice.state.tables`). The bytes:

- SQLite (embedded): a file `<blob_dir>/<tenant digest>/<id>`, written to a temporary name
  and renamed before the row is inserted, so a row never names a half-written file; a
  crash between the two leaves an orphan file, never a broken row.
- PostgreSQL (shared): the `content` column, so any replica can serve any file.

Blocking work (SQL, disk) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from sqlalchemy import delete, insert, select

from sluice.state import engines, migrations
from sluice.state.tables import files as files_table

Purpose = Literal["batch", "batch_output", "assistants", "user_data"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
UPLOAD_PURPOSES = ("batch", "assistants", "user_data")  # batch_output is Sluice's own
MAX_ID_CHARS = 64
MAX_LIST = 10_000


@dataclass(frozen=True, slots=True)
class FileObject:
    """OpenAI's File object."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"
    object: str = "file"

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "status_details": None,
            "expires_at": None,
        }


FilePage = tuple[list[FileObject], bool]  # a page of files, and whether more follow


def _bad_id(file_id: str) -> bool:
    """Not an id this store could hold (too long, or a NUL, which PostgreSQL refuses)."""
    return len(file_id) > MAX_ID_CHARS or "\x00" in file_id


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


class FileStore:
    """Satisfies the interface batches and retrieval use: create, get, content, list,
    delete (all async). `start()` migrates the `files` branch; `close()` lets go of the
    engine."""

    def __init__(self, url: str, blob_dir: str | Path) -> None:
        self.url = url
        self.engine = engines.acquire(url)
        self.on_disk = self.engine.dialect.name == "sqlite"
        self.blob_dir = Path(blob_dir)

    async def start(self) -> None:
        await asyncio.to_thread(migrations.upgrade, self.url, "files")

    async def close(self) -> None:
        await asyncio.to_thread(engines.release, self.engine)

    # --- writes -------------------------------------------------------------------------

    async def create(self, tenant: str, filename: str, purpose: str, data: bytes) -> FileObject:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        now = time.time()
        obj = FileObject(new_file_id(), len(data), int(now), filename, purpose)
        await asyncio.to_thread(self._insert, tenant, obj, data, now)
        return obj

    def _blob_path(self, tenant: str, file_id: str) -> Path:
        digest = hashlib.sha256(tenant.encode()).hexdigest()[:32]  # any tenant name is safe
        return self.blob_dir / digest / file_id

    def _insert(self, tenant: str, obj: FileObject, data: bytes, now: float) -> None:
        row: dict[str, Any] = {
            "tenant": tenant,
            "id": obj.id,
            "filename": obj.filename,
            "purpose": obj.purpose,
            "bytes": obj.bytes,
            "created_at": now,
            "status": obj.status,
            "content": None if self.on_disk else data,
        }
        if self.on_disk:
            path = self._blob_path(tenant, obj.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
        with self.engine.begin() as conn:
            conn.execute(insert(files_table).values(**row))

    async def delete(self, tenant: str, file_id: str) -> bool:
        if _bad_id(file_id):
            return False
        return await asyncio.to_thread(self._delete, tenant, file_id)

    def _delete(self, tenant: str, file_id: str) -> bool:
        t = files_table
        with self.engine.begin() as conn:
            done = conn.execute(delete(t).where(t.c.tenant == tenant, t.c.id == file_id))
        if done.rowcount and self.on_disk:
            with contextlib.suppress(FileNotFoundError):
                self._blob_path(tenant, file_id).unlink()
        return bool(done.rowcount)

    # --- reads --------------------------------------------------------------------------

    async def get(self, tenant: str, file_id: str) -> FileObject | None:
        if _bad_id(file_id):
            return None
        return await asyncio.to_thread(self._get, tenant, file_id)

    def _get(self, tenant: str, file_id: str) -> FileObject | None:
        t = files_table
        stmt = select(*_META).where(t.c.tenant == tenant, t.c.id == file_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _obj(row)

    async def content(self, tenant: str, file_id: str) -> bytes | None:
        if _bad_id(file_id):
            return None
        return await asyncio.to_thread(self._content, tenant, file_id)

    def _content(self, tenant: str, file_id: str) -> bytes | None:
        t = files_table
        stmt = select(t.c.content).where(t.c.tenant == tenant, t.c.id == file_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        if not self.on_disk:
            return bytes(row[0] or b"")
        try:
            return self._blob_path(tenant, file_id).read_bytes()
        except FileNotFoundError:
            return None

    async def list(
        self,
        tenant: str,
        purpose: str | None = None,
        limit: int = 10_000,
        after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> FilePage:
        """A page of the tenant's files (newest first unless `order="asc"`), and whether
        more follow. `after` is a file id (OpenAI's cursor)."""
        limit = max(1, min(limit, MAX_LIST))
        return await asyncio.to_thread(self._list, tenant, purpose, limit, after, order)

    def _list(
        self, tenant: str, purpose: str | None, limit: int, after: str | None, order: str
    ) -> FilePage:
        t = files_table
        stmt = select(*_META).where(t.c.tenant == tenant)
        if purpose is not None:
            stmt = stmt.where(t.c.purpose == purpose)
        with self.engine.connect() as conn:
            if after is not None:
                cursor = conn.execute(
                    select(t.c.created_at).where(t.c.tenant == tenant, t.c.id == after)
                ).first()
                if cursor is not None:
                    key = (t.c.created_at, t.c.id)
                    stmt = stmt.where(
                        (key[0] < cursor[0]) | ((key[0] == cursor[0]) & (key[1] < after))
                        if order == "desc"
                        else (key[0] > cursor[0]) | ((key[0] == cursor[0]) & (key[1] > after))
                    )
            if order == "desc":
                stmt = stmt.order_by(t.c.created_at.desc(), t.c.id.desc())
            else:
                stmt = stmt.order_by(t.c.created_at.asc(), t.c.id.asc())
            rows = conn.execute(stmt.limit(limit + 1)).all()
        return [_obj(r) for r in rows[:limit]], len(rows) > limit


_META = (
    files_table.c.id,
    files_table.c.bytes,
    files_table.c.created_at,
    files_table.c.filename,
    files_table.c.purpose,
    files_table.c.status,
)


def _obj(row: Any) -> FileObject:
    return FileObject(
        id=row[0],
        bytes=int(row[1]),
        created_at=int(row[2]),
        filename=row[3],
        purpose=row[4],
        status=row[5],
    )
