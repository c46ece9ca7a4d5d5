"""`RetrievalService`: vector stores for one gateway — ingest, index, search — in OpenAI's shapes.

- Objects and errors are the Vector Stores API's (`vector_store`, `vector_store.file`,
  `vector_store.file_batch`, `vector_store.search_results.page`); the web layer only maps
  HTTP to these calls.
- Ingest runs as a task per file: read the upload (`sluice.files`, the caller's tenant),
  extract text, chunk, embed off the event loop, then write chunks + vectors and mark the file
  `completed` in one transaction (or `failed` with `last_error`). A file left `in_progress` by
  a killed process is picked up again at start (ingest is idempotent: delete + insert).
- Search: `SearchMixin` (sluice.retrieval.search); validation of inputs: `checks`.
- `expires_after`: enforced as OpenAI does (sluice.retrieval.expiry); a sweep every
  `SWEEP_EVERY_S` frees expired stores' chunks even when nobody touches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.embed.base import EmbedderUnavailableError
from sluice.errors import InvalidRequestError, SluiceError
from sluice.retrieval import rerank as rerank_mod
from sluice.retrieval.checks import (
    MAX_NAME_CHARS,
    check_chunking,
    check_expires,
    check_file_ids,
    check_metadata,
    new_id,
    not_found,
)
from sluice.retrieval.chunking import chunk_text
from sluice.retrieval.config import RetrievalConfig
from sluice.retrieval.expiry import expired_error, expires_at, is_expired
from sluice.retrieval.extract import ExtractError, extract_text
from sluice.retrieval.filters import FilterError, validate_attributes
from sluice.retrieval.index import CollectionIndex, IndexedChunk
from sluice.retrieval.search import SearchMixin, SearchOutcome, SearchResult
from sluice.retrieval.store import BatchRow, FileRow, StoreRow, VectorStoreDB

if TYPE_CHECKING:
    from sluice.embed.base import Embedder
    from sluice.files.store import FileStore

log = logging.getLogger("sluice.retrieval")

STALE_INGEST_S = 60.0
# Ingest embeds a file's chunks this many at a time, on the service's own ingest thread (not
# the embedder's executor, which queries use): a 20 MB upload embedded in one call on the
# shared executor (~12k chunks) held every tenant's query embedding behind it for minutes,
# and its activations (batch x heads x seq^2) ran to tens of GB.
EMBED_BATCH = 32
# Files ingested at once per gateway; the rest wait their turn (50k tiny files queue as
# pending tasks instead of 50k concurrent reads + embeds).
MAX_CONCURRENT_INGESTS = 4
# How often this process looks for stores whose expires_after ran out (and frees them).
SWEEP_EVERY_S = 600.0


class RetrievalService(SearchMixin):
    def __init__(
        self,
        config: RetrievalConfig,
        files: FileStore | None,
        embedder: Callable[[], Embedder],
        url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.files = files
        self._embedder_factory = embedder
        self.clock = clock  # wall-clock epoch seconds: expiry and last_active_at (tests move it)
        self.db = VectorStoreDB(url or config.store_url, clock)
        self._sweeper: asyncio.Task[None] | None = None
        self.indexes: dict[str, CollectionIndex] = {}
        self._index_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reranker: rerank_mod.Reranker | None = None
        self._ingest_slots = asyncio.Semaphore(MAX_CONCURRENT_INGESTS)
        self._ingest_embed = ThreadPoolExecutor(1, thread_name_prefix="sluice-ingest-embed")

    @property
    def embedder(self) -> Embedder:
        return self._embedder_factory()

    async def start(self) -> None:
        await asyncio.to_thread(self.db.migrate)
        stale = await asyncio.to_thread(self.db.stale_files, self.clock() - STALE_INGEST_S)
        for row in stale:  # left in_progress by a process that died: ingest again
            self._spawn(row)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_expired()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed sweep is retried next time, never fatal
                log.warning("vector store expiry sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(SWEEP_EVERY_S)

    async def sweep_expired(self) -> list[str]:
        """Mark every store whose `expires_after` ran out expired and free its chunks and
        vectors; the ids expired now."""
        now, done = self.clock(), []
        for row in await self._run(self.db.stores_with_expiry):
            if is_expired(row, now):
                await self._expire(row)
                done.append(row.id)
        return done

    async def _expire(self, row: StoreRow) -> None:
        at = expires_at(row)
        when = at if at is not None else self.clock()
        freed = await self._run(self.db.expire_store, row.id, when)
        self.indexes.pop(row.id, None)
        self._index_locks.pop(row.id, None)
        log.info("vector store %s expired: %d chunks freed", row.id, freed)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._ingest_embed.shutdown(wait=False, cancel_futures=True)
        self.db.close()

    # --- stores ---------------------------------------------------------------------------

    async def _store(self, tenant: str, store_id: str) -> StoreRow:
        row = await self._run(self.db.get_store, tenant, store_id)
        if row is None:
            raise not_found("vector store", store_id)
        return row  # type: ignore[no-any-return]

    async def _live_store(self, tenant: str, store_id: str) -> StoreRow:
        """The caller's store, refused (400 vector_store_expired) once it has expired; its
        chunks are freed right then if the sweep has not done it yet."""
        row = await self._store(tenant, store_id)
        if is_expired(row, self.clock()):
            if row.expired_at is None:
                await self._expire(row)
            raise expired_error(store_id)
        return row

    async def store_object(self, row: StoreRow) -> dict[str, Any]:
        files = await self._run(self.db.list_files, row.tenant, row.id)
        counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
        for f in files:
            counts[f.status] = counts.get(f.status, 0) + 1
        counts["total"] = len(files)
        at = expires_at(row)
        status = "in_progress" if counts["in_progress"] else "completed"
        if is_expired(row, self.clock()):
            status = "expired"
        return {
            "id": row.id,
            "object": "vector_store",
            "created_at": int(row.created_at),
            "name": row.name,
            "usage_bytes": sum(f.usage_bytes for f in files),
            "file_counts": counts,
            "status": status,
            "expires_after": row.expires_after,
            "expires_at": int(at) if at is not None else None,
            "last_active_at": int(row.last_active_at),
            "metadata": row.metadata,
        }

    async def create_store(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
            raise InvalidRequestError(
                "name must be a string of at most 256 characters", param="name"
            )
        expires = check_expires(body.get("expires_after"))
        metadata = check_metadata(body.get("metadata"))
        file_ids = check_file_ids(body.get("file_ids"))
        chunking = check_chunking(body.get("chunking_strategy"), self.config.chunk_max_tokens)
        if await self._run(self.db.count_stores, tenant) >= self.config.max_stores_per_tenant:
            raise InvalidRequestError("too many vector stores for this tenant", param=None)
        now = self.clock()
        row = StoreRow(new_id("vs"), tenant, name, metadata, expires, now, now, 0)
        await self._run(self.db.create_store, row)
        for file_id in file_ids:
            await self.add_file(tenant, row.id, {"file_id": file_id, "chunking_strategy": chunking})
        return await self.store_object(row)

    async def list_stores(
        self, tenant: str, limit: int, order: str, after: str | None, before: str | None
    ) -> dict[str, Any]:
        rows = await self._run(self.db.list_stores, tenant, 10_000, order != "asc")
        return await self._page(rows, limit, after, before, self.store_object)

    async def _page(
        self,
        rows: Sequence[Any],
        limit: int,
        after: str | None,
        before: str | None,
        render: Callable[[Any], Any],
    ) -> dict[str, Any]:
        if not 1 <= limit <= 100:
            raise InvalidRequestError("limit must be between 1 and 100", param="limit")
        ids = [getattr(r, "id", None) or r.file_id for r in rows]
        start, end = 0, len(rows)
        if after is not None and after in ids:
            start = ids.index(after) + 1
        if before is not None and before in ids:
            end = ids.index(before)
        page = list(rows[start:end])[:limit]
        data = [await render(r) for r in page]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + len(page) < end,
        }

    async def get_store(self, tenant: str, store_id: str) -> dict[str, Any]:
        return await self.store_object(await self._store(tenant, store_id))

    async def update_store(
        self, tenant: str, store_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "name" in body:
            name = body["name"]
            if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
                raise InvalidRequestError(
                    "name must be a string of at most 256 characters", param="name"
                )
            values["name"] = name
        if "metadata" in body:
            values["metadata"] = check_metadata(body["metadata"])
        if "expires_after" in body:
            values["expires_after"] = check_expires(body["expires_after"])
        current = await self._store(tenant, store_id)
        live = not is_expired(current, self.clock())  # an expired store stays expired
        if not await self._run(self.db.update_store, tenant, store_id, values, live):
            raise not_found("vector store", store_id)
        return await self.get_store(tenant, store_id)

    async def delete_store(self, tenant: str, store_id: str) -> dict[str, Any]:
        if not await self._run(self.db.delete_store, tenant, store_id):
            raise not_found("vector store", store_id)
        self.indexes.pop(store_id, None)
        self._index_locks.pop(store_id, None)
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    # --- files ----------------------------------------------------------------------------

    @staticmethod
    def file_object(row: FileRow) -> dict[str, Any]:
        return {
            "id": row.file_id,
            "object": "vector_store.file",
            "usage_bytes": row.usage_bytes,
            "created_at": int(row.created_at),
            "vector_store_id": row.store_id,
            "status": row.status,
            "last_error": row.last_error,
            "chunking_strategy": row.chunking,
            "attributes": row.attributes,
        }

    async def add_file(
        self, tenant: str, store_id: str, body: dict[str, Any], batch_id: str | None = None
    ) -> dict[str, Any]:
        file_id = body.get("file_id")
        if not isinstance(file_id, str) or not 0 < len(file_id) <= 128:
            raise InvalidRequestError("file_id is required", param="file_id")
        try:
            attributes = validate_attributes(body.get("attributes"))
        except FilterError as exc:
            raise InvalidRequestError(str(exc), param="attributes") from None
        chunking = check_chunking(body.get("chunking_strategy"), self.config.chunk_max_tokens)
        await self._live_store(tenant, store_id)
        if self.files is None:
            raise InvalidRequestError("file uploads are disabled on this gateway", param="file_id")
        meta = await self.files.get(tenant, file_id)
        if meta is None:
            raise not_found("file", file_id)
        if meta.bytes > self.config.max_file_bytes:
            raise InvalidRequestError(
                "file is larger than retrieval.max_file_bytes", param="file_id"
            )
        row = FileRow(
            store_id,
            file_id,
            tenant,
            meta.filename,
            "in_progress",
            None,
            attributes,
            chunking,
            batch_id,
            0,
            self.clock(),
        )
        if not await self._run(self.db.add_file, row):
            raise not_found("vector store", store_id)
        self._spawn(row)
        return self.file_object(row)

    def _spawn(self, row: FileRow) -> None:
        task = asyncio.get_running_loop().create_task(self._ingest(row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ingest(self, row: FileRow) -> None:
        async with self._ingest_slots:
            # Cancelled, removed or re-added while it waited for a slot: nothing to do.
            current = await self._run(self.db.get_file, row.tenant, row.store_id, row.file_id)
            if (
                current is None
                or current.status != "in_progress"
                or current.created_at != row.created_at
            ):
                return
            await self._ingest_one(row)

    async def _embed_chunks(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), np.float32)
        loop, embedder = asyncio.get_running_loop(), self.embedder
        parts = [
            await loop.run_in_executor(
                self._ingest_embed, embedder.embed_sync, texts[i : i + EMBED_BATCH]
            )
            for i in range(0, len(texts), EMBED_BATCH)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    async def _ingest_one(self, row: FileRow) -> None:
        try:
            assert self.files is not None
            data = await self.files.content(row.tenant, row.file_id)
            if data is None:
                await self._run(self.db.fail_file, row, "invalid_file", "file not found")
                return
            text = await asyncio.to_thread(extract_text, data, row.filename)
            static = row.chunking.get("static", {})
            size = int(static.get("max_chunk_size_tokens", self.config.chunk_max_tokens))
            overlap_tokens = int(static.get("chunk_overlap_tokens", 0))
            pieces = await asyncio.to_thread(chunk_text, text, size, 1 if overlap_tokens else 0)
            chunks = [
                IndexedChunk(
                    f"{row.store_id}:{row.file_id}:{c.seq}",
                    row.file_id,
                    row.filename,
                    c.seq,
                    c.text,
                    c.heading,
                    c.tokens,
                    row.attributes,
                    c.sentences,
                )
                for c in pieces
            ]
            vectors = await self._embed_chunks([c.indexed_text for c in chunks])
            done = await self._run(self.db.finish_file, row, chunks, vectors, len(data))
            if not done:
                log.info("vector store file %s removed during ingest", row.file_id)
        except asyncio.CancelledError:
            raise
        except ExtractError as exc:
            await self._run(self.db.fail_file, row, "unsupported_file", str(exc))
        except EmbedderUnavailableError as exc:
            await self._run(self.db.fail_file, row, "server_error", str(exc))
        except Exception as exc:  # a failed file must say so, never stay in_progress
            log.warning("ingest of %s failed: %s", row.file_id, type(exc).__name__)
            await self._run(self.db.fail_file, row, "server_error", type(exc).__name__)

    async def wait_idle(self) -> None:
        """Wait for every ingest task of this process (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _file(self, tenant: str, store_id: str, file_id: str) -> FileRow:
        row = await self._run(self.db.get_file, tenant, store_id, file_id)
        if row is None:
            raise not_found("vector store file", file_id)
        return row  # type: ignore[no-any-return]

    async def get_file(self, tenant: str, store_id: str, file_id: str) -> dict[str, Any]:
        return self.file_object(await self._file(tenant, store_id, file_id))

    async def list_files(
        self,
        tenant: str,
        store_id: str,
        limit: int,
        order: str,
        after: str | None,
        before: str | None,
        status: str | None,
        batch_id: str | None = None,
    ) -> dict[str, Any]:
        await self._store(tenant, store_id)
        if status is not None and status not in ("in_progress", "completed", "failed", "cancelled"):
            raise InvalidRequestError("unknown status filter", param="filter")
        rows = await self._run(self.db.list_files, tenant, store_id, status, batch_id)
        if order != "asc":
            rows = list(reversed(rows))

        async def render(r: FileRow) -> dict[str, Any]:
            return self.file_object(r)

        return await self._page(rows, limit, after, before, render)

    async def update_file(
        self, tenant: str, store_id: str, file_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            attributes = validate_attributes(body.get("attributes"))
        except FilterError as exc:
            raise InvalidRequestError(str(exc), param="attributes") from None
        if not await self._run(self.db.update_attributes, tenant, store_id, file_id, attributes):
            raise not_found("vector store file", file_id)
        return await self.get_file(tenant, store_id, file_id)

    async def delete_file(self, tenant: str, store_id: str, file_id: str) -> dict[str, Any]:
        if not await self._run(self.db.delete_file, tenant, store_id, file_id):
            raise not_found("vector store file", file_id)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    async def file_content(self, tenant: str, store_id: str, file_id: str) -> dict[str, Any]:
        """The parsed chunks of a file (OpenAI's `GET .../files/{id}/content`)."""
        await self._file(tenant, store_id, file_id)
        index = await self.index_for(store_id)
        data = [{"type": "text", "text": c.text} for c in index.chunks if c.file_id == file_id]
        return {
            "object": "vector_store.file_content.page",
            "data": data,
            "has_more": False,
            "next_page": None,
        }

    # --- batches --------------------------------------------------------------------------

    async def create_batch(
        self, tenant: str, store_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        file_ids = check_file_ids(body.get("file_ids"))
        files = body.get("files")
        entries: list[dict[str, Any]] = [{"file_id": f} for f in file_ids]
        if isinstance(files, list):
            entries += [f for f in files if isinstance(f, dict)]
        if not entries or len(entries) > 500:
            raise InvalidRequestError("file_ids must name 1-500 files", param="file_ids")
        await self._live_store(tenant, store_id)
        batch = BatchRow(
            new_id("vsfb"),
            store_id,
            tenant,
            [str(e.get("file_id")) for e in entries],
            False,
            self.clock(),
        )
        await self._run(self.db.create_batch, batch)
        for entry in entries:
            await self.add_file(
                tenant,
                store_id,
                {
                    "attributes": body.get("attributes"),
                    "chunking_strategy": body.get("chunking_strategy"),
                    **entry,
                },
                batch_id=batch.id,
            )
        return await self.get_batch(tenant, store_id, batch.id)

    async def get_batch(self, tenant: str, store_id: str, batch_id: str) -> dict[str, Any]:
        batch = await self._run(self.db.get_batch, tenant, store_id, batch_id)
        if batch is None:
            raise not_found("vector store file batch", batch_id)
        files = await self._run(self.db.list_files, tenant, store_id, None, batch_id)
        counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
        for f in files:
            counts[f.status] = counts.get(f.status, 0) + 1
        counts["total"] = len(files)
        status = (
            "cancelled"
            if batch.cancelled
            else (
                "in_progress"
                if counts["in_progress"]
                else ("failed" if counts["failed"] and not counts["completed"] else "completed")
            )
        )
        return {
            "id": batch.id,
            "object": "vector_store.files_batch",
            "created_at": int(batch.created_at),
            "vector_store_id": store_id,
            "status": status,
            "file_counts": counts,
        }

    async def cancel_batch(self, tenant: str, store_id: str, batch_id: str) -> dict[str, Any]:
        await self.get_batch(tenant, store_id, batch_id)
        await self._run(self.db.cancel_files, store_id, batch_id)
        return await self.get_batch(tenant, store_id, batch_id)


__all__ = ["RetrievalService", "SearchOutcome", "SearchResult", "SluiceError"]
