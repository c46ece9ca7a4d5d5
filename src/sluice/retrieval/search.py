"""Search over a tenant's vector stores: per-store in-memory `CollectionIndex` (reloaded when
the store's version in the database moved: another replica, or this one, changed it), then
filters → BM25 + dense → RRF → optional rerank (budgeted) → sentence windows.

`SearchMixin` is the search half of `RetrievalService` (sluice.retrieval.service): it uses the
service's database, embedder, config and its `_live_store` (tenant + expiry check).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluice.errors import InvalidRequestError
from sluice.retrieval import rerank as rerank_mod
from sluice.retrieval.checks import ranking
from sluice.retrieval.chunking import window
from sluice.retrieval.config import RetrievalConfig
from sluice.retrieval.expiry import TOUCH_EVERY_S
from sluice.retrieval.filters import FilterError, compile_filter
from sluice.retrieval.index import CollectionIndex, Hit, IndexedChunk
from sluice.retrieval.store import StoreRow, VectorStoreDB

if TYPE_CHECKING:
    from sluice.embed.base import Embedder

MAX_QUERY_CHARS = 4000
MAX_RESULTS = 50
MAX_STORES_PER_SEARCH = 10


@dataclass(slots=True)
class SearchResult:
    """One hit as the service returns it (web turns it into OpenAI's result object)."""

    store_id: str
    chunk: IndexedChunk
    score: float
    text: str  # the chunk widened by its sentence window
    rerank_score: float | None = None


@dataclass(slots=True)
class SearchOutcome:
    results: list[SearchResult]
    reranked: bool = False
    rerank_skipped: bool = False
    embed_tokens: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


class SearchMixin:
    config: RetrievalConfig
    db: VectorStoreDB
    indexes: dict[str, CollectionIndex]
    _index_locks: dict[str, asyncio.Lock]
    _reranker: rerank_mod.Reranker | None

    @property
    def embedder(self) -> Embedder:
        raise NotImplementedError

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def _live_store(self, tenant: str, store_id: str) -> StoreRow:
        raise NotImplementedError

    async def index_for(self, store_id: str) -> CollectionIndex:
        """The store's in-memory index, reloaded if the database holds a newer version."""
        lock = self._index_locks.setdefault(store_id, asyncio.Lock())
        async with lock:
            version = await self._run(self.db.store_version, store_id)
            if version is None:  # deleted (a search that raced the delete): cache nothing
                self.indexes.pop(store_id, None)
                self._index_locks.pop(store_id, None)
                return CollectionIndex()
            index = self.indexes.get(store_id)
            if index is not None and index.version == version:
                return index
            loaded_version, chunks, vectors = await self._run(self.db.load_chunks, store_id)
            fresh = CollectionIndex()
            if chunks:
                await asyncio.to_thread(fresh.add, chunks, vectors)
                await asyncio.to_thread(fresh.prepare)
            fresh.version = loaded_version
            self.indexes[store_id] = fresh
            return fresh

    def reranker(self) -> rerank_mod.Reranker | None:
        if not self.config.rerank or not rerank_mod.available():
            return None
        if self._reranker is None:
            self._reranker = rerank_mod.get_reranker()
        return self._reranker

    async def search(
        self,
        tenant: str,
        store_ids: Sequence[str],
        query: str,
        max_results: int = 10,
        filters: Any = None,
        ranking_options: Any = None,
    ) -> SearchOutcome:
        """Hybrid search over the caller's stores (another tenant's id: 404)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("query must be a non-empty string", param="query")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequestError("query is too long", param="query")
        if (
            not isinstance(max_results, int)
            or isinstance(max_results, bool)  # `true` is not a number of results
            or not 1 <= max_results <= MAX_RESULTS
        ):
            raise InvalidRequestError(
                "max_num_results must be between 1 and 50", param="max_num_results"
            )
        if not store_ids or len(store_ids) > MAX_STORES_PER_SEARCH:
            raise InvalidRequestError("name 1-10 vector stores", param="vector_store_ids")
        try:
            predicate = compile_filter(filters)
        except FilterError as exc:
            raise InvalidRequestError(str(exc), param="filters") from None
        threshold, use_rerank = ranking(ranking_options)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        indexes = []
        for store_id in dict.fromkeys(store_ids):
            row = await self._live_store(tenant, store_id)
            now = self.db.clock()
            if row.last_active_at < now - TOUCH_EVERY_S:  # use keeps it alive (expires_after)
                await self._run(self.db.touch, store_id, now, TOUCH_EVERY_S)
            indexes.append((store_id, await self.index_for(store_id)))
        timings["index_ms"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        qvec = (await self.embedder.embed([query]))[0]
        timings["embed_ms"] = (time.perf_counter() - t1) * 1000
        t2 = time.perf_counter()
        depth = max(max_results, self.config.rerank_top)
        hits: list[tuple[str, Hit]] = []
        for store_id, index in indexes:
            found = await asyncio.to_thread(
                index.search, query, qvec, depth, predicate=predicate, rrf_k=self.config.rrf_k
            )
            hits.extend((store_id, h) for h in found)
        hits.sort(key=lambda sh: (-sh[1].score, sh[1].chunk.id))
        timings["search_ms"] = (time.perf_counter() - t2) * 1000
        outcome = SearchOutcome([], embed_tokens=len(query.split()), timings_ms=timings)
        reranker = self.reranker() if use_rerank else None
        if reranker is not None and len(hits) > 1:
            t3 = time.perf_counter()
            by_id = {h.chunk.id: sid for sid, h in hits}
            ordered, skipped = await reranker.arerank(
                query, [h for _, h in hits], self.config.rerank_top, self.config.rerank_budget_ms
            )
            hits = [(by_id[h.chunk.id], h) for h in ordered]
            outcome.reranked, outcome.rerank_skipped = not skipped, skipped
            timings["rerank_ms"] = (time.perf_counter() - t3) * 1000
        index_of = dict(indexes)
        for store_id, hit in hits[:max_results]:
            if hit.score < threshold:
                continue
            before, after = index_of[store_id].neighbours(hit.chunk)
            text = window(before, hit.chunk.text, after, self.config.sentence_window)
            outcome.results.append(
                SearchResult(store_id, hit.chunk, round(hit.score, 6), text, hit.rerank_score)
            )
        return outcome

    @staticmethod
    def result_object(result: SearchResult) -> dict[str, Any]:
        return {
            "file_id": result.chunk.file_id,
            "filename": result.chunk.filename,
            "score": result.score,
            "attributes": result.chunk.attributes,
            "content": [{"type": "text", "text": result.text}],
        }
