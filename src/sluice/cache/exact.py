"""Exact cache stage: an identical deterministic request gets the stored answer.

Only requests that should give the same answer twice are cached by default: temperature
exactly 0 (a missing temperature means the provider's default, which is not 0), and no tool
results in the conversation (their content is often live data). A caller steers it per call
with the `x-sluice-cache` header or `metadata.cache`:

- `no-store`: neither read nor write;
- `no-cache` / `refresh`: do not read, do write (the fresh answer replaces the stored one).

Response header `x-sluice-cache`: `exact` (served from the cache, with `x-sluice-cache-age`
in whole seconds), `miss` (asked upstream; stored if it completed) or `bypass` (not
cacheable, or `no-store`). A streamed miss is stored only once the stream has ended
normally with a finish; a cut or failed stream is never stored. A hit is replayed as a
stream when the request streams. A cache that fails (Redis down) is logged and counted and
the request goes on as a miss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sluice.cache.backends import CacheBackend, decode_response_blob, encode_response_blob
from sluice.cache.key import cache_key
from sluice.collect import WatchedStream
from sluice.config import ExactCacheConfig
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.replay import events_from_response
from sluice.types import ChatRequest, ChatResponse, ToolResultPart

log = logging.getLogger("sluice.cache")

HEADER = "x-sluice-cache"
AGE_HEADER = "x-sluice-cache-age"
KEY_PREFIX = "exact:"
_DIRECTIVES = frozenset({"no-store", "no-cache", "refresh"})


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    stores: int = 0
    errors: int = 0  # backend failures and unreadable entries


def tenant_of(req: ChatRequest) -> str:
    return req.meta.tenant or "default"


def cache_directive(req: ChatRequest) -> str | None:
    """`no-store`, `no-cache`, `refresh` or None, from the header or `metadata.cache`."""
    value = req.meta.headers.get(HEADER)
    if value is None:
        given = req.meta.metadata.get("cache")
        value = given if isinstance(given, str) else None
    if value is None:
        return None
    value = value.strip().lower()
    return value if value in _DIRECTIVES else None


def set_cache_status(ctx: CallContext, status: str) -> None:
    ctx.cache_status = status


class ExactCacheStage:
    def __init__(
        self,
        config: ExactCacheConfig,
        backend: CacheBackend,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.backend = backend
        self.stats = CacheStats()
        self._clock = clock  # wall clock: store times are compared across processes
        self._models = None if config.models is None else frozenset(config.models)

    def cacheable(self, req: ChatRequest) -> bool:
        cfg = self.config
        if self._models is not None and req.model not in self._models:
            return False
        if not cfg.cache_nondeterministic and req.temperature != 0:
            return False  # None (the provider's default) is not 0
        return cfg.cache_tool_results or not any(
            isinstance(part, ToolResultPart) for msg in req.messages for part in msg.parts
        )

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        if not self.config.enabled:
            return await nxt(ctx)
        req = ctx.request
        directive = cache_directive(req)
        key = None
        if directive != "no-store" and self.cacheable(req):
            try:
                key = KEY_PREFIX + cache_key(req, tenant_of(req), self.config.namespace)
            except (TypeError, ValueError):
                log.warning("request %s: no cache key (unencodable field)", req.meta.request_id)
        if key is None:
            self.stats.bypasses += 1
            ctx.response_headers[HEADER] = "bypass"
            set_cache_status(ctx, "bypass")
            return await nxt(ctx)
        if directive is None:
            hit = await self._lookup(key, req)
            if hit is not None:
                resp, stored_at = hit
                self.stats.hits += 1
                ctx.response_headers[HEADER] = "exact"
                ctx.response_headers[AGE_HEADER] = str(int(max(0.0, self._clock() - stored_at)))
                set_cache_status(ctx, "exact")
                ctx.last_response = resp
                return events_from_response(resp) if req.stream else resp
        self.stats.misses += 1
        ctx.response_headers[HEADER] = "miss"
        set_cache_status(ctx, "miss")
        result = await nxt(ctx)
        if isinstance(result, ChatResponse):
            if _storable(ctx, result):
                await self.store(key, result)
            return result

        async def store_if_whole(resp: ChatResponse, completed: bool) -> None:
            if completed and _storable(ctx, resp):  # never a cut or failed stream
                await self.store(key, resp)

        return WatchedStream(result, store_if_whole)

    async def _lookup(self, key: str, req: ChatRequest) -> tuple[ChatResponse, float] | None:
        try:
            blob = await self.backend.get(key)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("request %s: cache read failed: %r", req.meta.request_id, exc)
            return None
        if blob is None:
            return None
        try:
            return decode_response_blob(blob)
        except ValueError as exc:
            self.stats.errors += 1
            log.warning("cache entry %s unreadable, ignored: %s", key, exc)
            return None

    async def store(self, key: str, resp: ChatResponse) -> None:
        try:
            await self.backend.set(
                key, encode_response_blob(resp, self._clock()), self.config.ttl_s
            )
        except Exception as exc:
            self.stats.errors += 1
            log.warning("cache write failed: %r", exc)
        else:
            self.stats.stores += 1


def _storable(ctx: CallContext, resp: ChatResponse) -> bool:
    # A degraded answer stands in for a failure; a filtered one is not the model's answer;
    # a semantic hit answered a different question (it stays in the semantic cache only).
    return (
        not ctx.degraded
        and resp.finish_reason != "content_filter"
        and ctx.cache_status != "semantic"
    )
