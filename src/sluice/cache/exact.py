"""Exact cache stage: an identical deterministic request gets the stored answer.

Only requests that should give the same answer twice are cached by default: temperature
exactly 0 (a missing temperature means the provider's default, which is not 0), and no tool
results in the conversation (their content is often live data). A caller steers it per call
with the `x-sluice-cache` header or `metadata.cache`:

- `no-store`: neither read nor write;
- `no-cache` / `refresh`: do not read, do write (the fresh answer replaces the stored one).

Response header `x-sluice-cache`: `exact` (served from the cache, with `x-sluice-cache-age`
in whole seconds), `miss` (asked upstream; stored if it completed), `stale` (the upstream
plan failed and an expired entry within `stale_if_error_s` was served) or `bypass` (not
cacheable, or `no-store`). `x-sluice-cache-key` names the entry (an opaque digest, usable
with `POST /admin/cache/purge {"entry_id": ...}`). A streamed miss is stored only once the
stream has ended normally with a finish; a cut or failed stream is never stored. A hit is
replayed as a stream when the request streams. A cache that fails (Redis down) is logged
and counted and the request goes on as a miss.

Per route (the public model name asked for) `routes:` may turn the cache off, change the TTL
or add a namespace version. Entries are tagged with their route and tenant so they can be
purged by either (`purge`); `stats_json` reports counts, sizes and savings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sluice.cache.backends import (
    CacheBackend,
    TaggedBackend,
    decode_blob_cost,
    decode_response_blob,
    encode_response_blob,
)
from sluice.cache.key import cache_key
from sluice.collect import WatchedStream
from sluice.config import ExactCacheConfig
from sluice.cost.compute import compute_cost
from sluice.cost.prices import Price
from sluice.errors import ServiceUnavailableError, UpstreamError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.replay import events_from_response
from sluice.types import ChatRequest, ChatResponse, ToolResultPart

log = logging.getLogger("sluice.cache")

HEADER = "x-sluice-cache"
AGE_HEADER = "x-sluice-cache-age"
KEY_HEADER = "x-sluice-cache-key"
KEY_PREFIX = "exact:"
TAG = "exact"  # every exact entry carries it (plus route:<name> and tenant:<id>)
_DIRECTIVES = frozenset({"no-store", "no-cache", "refresh"})


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    stores: int = 0
    stale: int = 0  # expired entries served because the upstream plan failed
    errors: int = 0  # backend failures and unreadable entries
    purged: int = 0
    saved_input_tokens: int = 0  # usage of the answers served from the cache
    saved_output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """The exact-cache settings that apply to one route."""

    enabled: bool
    ttl_s: float
    namespace: str


def tenant_of(ctx: CallContext) -> str:
    """The tenant whose entries a call may see: its identity's (set by the auth stage)."""
    return ctx.identity.tenant


def replay_safe(req: ChatRequest, nondeterministic: bool, tool_results: bool) -> bool:
    """Whether a stored answer may be given again (both caches use it): temperature exactly
    0 unless `nondeterministic` is allowed, and no tool results (often live data) unless
    `tool_results` is."""
    if not nondeterministic and req.temperature != 0:
        return False  # None (the provider's default) is not 0
    return tool_results or not any(
        isinstance(part, ToolResultPart) for msg in req.messages for part in msg.parts
    )


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
        price_of_model: Callable[[str], Price | None] = lambda model: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.backend = backend
        self.stats = CacheStats()
        self.saved_usd = Decimal(0)  # what the answers served would have cost upstream
        # The price of the deployment that would serve a model (what a hit saved).
        self.price_of_model = price_of_model
        self._clock = clock  # wall clock: store times are compared across processes
        self._models = None if config.models is None else frozenset(config.models)
        self._default = RoutePolicy(True, config.ttl_s, config.namespace)
        self._routes = {
            name: RoutePolicy(
                r.enabled,
                r.ttl_s or config.ttl_s,
                config.namespace if r.namespace is None else f"{config.namespace}/{r.namespace}",
            )
            for name, r in config.routes.items()
        }

    cache_kind = "exact"

    def policy(self, route: str) -> RoutePolicy:
        return self._routes.get(route, self._default)

    def cacheable(self, req: ChatRequest) -> bool:
        cfg = self.config
        if self._models is not None and req.model not in self._models:
            return False
        return replay_safe(req, cfg.cache_nondeterministic, cfg.cache_tool_results)

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        if not self.config.enabled:
            return await nxt(ctx)
        req = ctx.request
        route = route_of(ctx)
        policy = self.policy(route)
        directive = cache_directive(req)
        key = None
        if policy.enabled and directive != "no-store" and self.cacheable(req):
            try:
                key = KEY_PREFIX + cache_key(req, tenant_of(ctx), policy.namespace)
            except (TypeError, ValueError):
                log.warning("request %s: no cache key (unencodable field)", req.meta.request_id)
        if key is None:
            self.stats.bypasses += 1
            ctx.response_headers[HEADER] = "bypass"
            set_cache_status(ctx, "bypass")
            return await nxt(ctx)
        ctx.response_headers[KEY_HEADER] = key.removeprefix(KEY_PREFIX)
        stale: tuple[ChatResponse, float, Decimal | None] | None = None
        if directive is None:
            found = await self._lookup(key, req)
            if found is not None:
                if self._clock() - found[1] < policy.ttl_s:
                    return self._serve(ctx, "exact", *found)
                stale = found  # expired, kept only for stale-if-error
        self.stats.misses += 1
        ctx.response_headers[HEADER] = "miss"
        set_cache_status(ctx, "miss")
        tags = (TAG, f"route:{route}", f"tenant:{tenant_of(ctx)}")
        try:
            result = await nxt(ctx)
        except (UpstreamError, ServiceUnavailableError):
            if stale is None:
                raise
            self.stats.misses -= 1
            return self._serve(ctx, "stale", *stale)
        if isinstance(result, ChatResponse):
            if ctx.degraded and stale is not None:  # a real old answer beats the stand-in
                ctx.degraded = False
                self.stats.misses -= 1
                return self._serve(ctx, "stale", *stale)
            if _storable(ctx, result):
                await self.store(key, result, policy, tags, _cost(ctx))
            return result

        async def store_if_whole(resp: ChatResponse, completed: bool) -> None:
            if completed and _storable(ctx, resp):  # never a cut or failed stream
                await self.store(key, resp, policy, tags, _cost(ctx))

        return WatchedStream(result, store_if_whole)

    def _serve(
        self,
        ctx: CallContext,
        status: str,
        resp: ChatResponse,
        stored_at: float,
        first_cost: Decimal | None = None,
    ) -> Result:
        if status == "stale":
            self.stats.stale += 1
        else:
            self.stats.hits += 1
        self.stats.saved_input_tokens += resp.usage.input_tokens
        self.stats.saved_output_tokens += resp.usage.output_tokens
        # Saved: what the answer cost the first time (stored with it); entries stored
        # before that was kept are priced at the requested model's price.
        saved = first_cost
        if saved is None:
            saved = compute_cost(resp.usage, self.price_of_model(ctx.request.model))
        if saved is not None:
            self.saved_usd += saved
        ctx.cache_saved_usd = saved
        ctx.response_headers[HEADER] = status
        ctx.response_headers[AGE_HEADER] = str(int(max(0.0, self._clock() - stored_at)))
        set_cache_status(ctx, status)
        ctx.last_response = resp
        return events_from_response(resp) if ctx.request.stream else resp

    async def _lookup(
        self, key: str, req: ChatRequest
    ) -> tuple[ChatResponse, float, Decimal | None] | None:
        try:
            blob = await self.backend.get(key)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("request %s: cache read failed: %r", req.meta.request_id, exc)
            return None
        if blob is None:
            return None
        try:
            resp, stored_at = decode_response_blob(blob)
        except ValueError as exc:
            self.stats.errors += 1
            log.warning("cache entry %s unreadable, ignored: %s", key, exc)
            return None
        return resp, stored_at, decode_blob_cost(blob)

    async def store(
        self,
        key: str,
        resp: ChatResponse,
        policy: RoutePolicy | None = None,
        tags: tuple[str, ...] = (TAG,),
        cost_usd: Decimal | None = None,
    ) -> None:
        policy = policy or self._default
        blob = encode_response_blob(resp, self._clock(), cost_usd)
        keep_s = policy.ttl_s + self.config.stale_if_error_s
        try:
            if isinstance(self.backend, TaggedBackend):
                await self.backend.set_tagged(key, blob, keep_s, tags)
            else:
                await self.backend.set(key, blob, keep_s)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("cache write failed: %r", exc)
        else:
            self.stats.stores += 1

    # --- operations (Purgeable) ---------------------------------------------------------

    async def purge(
        self,
        entry_id: str | None = None,
        route: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """Delete one entry, a route's or a tenant's entries (at most one selector), or with
        none every exact entry; how many were deleted."""
        if sum(v is not None for v in (entry_id, route, tenant)) > 1:
            raise ValueError("purge by one of entry_id, route or tenant at a time")
        backend = self._tagged()
        if entry_id is not None:
            removed = int(await backend.pop(KEY_PREFIX + entry_id))
        elif route is not None:
            removed = await backend.purge_tag(f"route:{route}")
        elif tenant is not None:
            removed = await backend.purge_tag(f"tenant:{tenant}")
        else:
            removed = await backend.purge_tag(TAG)
        self.stats.purged += removed
        return removed

    async def stats_json(self) -> dict[str, Any]:
        """Entries and bytes (from the backend), and this process's counters."""
        entries, size = await self._tagged().tag_usage(TAG)
        counts = asdict(self.stats)
        looked = self.stats.hits + self.stats.misses
        return {
            "entries": entries,
            "bytes": size,
            **counts,
            "saved_usd": str(self.saved_usd),
            "hit_rate": self.stats.hits / looked if looked else 0.0,
            "miss_rate": self.stats.misses / looked if looked else 0.0,
        }

    def _tagged(self) -> TaggedBackend:
        if not isinstance(self.backend, TaggedBackend):
            raise TypeError(f"{type(self.backend).__name__} cannot purge or count entries")
        return self.backend


def _cost(ctx: CallContext) -> Decimal | None:
    return ctx.cost_usd if ctx.cost_known else None


def route_of(ctx: CallContext) -> str:
    """The route an entry belongs to: the routing stage's name, else the model asked for."""
    return ctx.route or ctx.request.model


def _storable(ctx: CallContext, resp: ChatResponse) -> bool:
    # A degraded answer stands in for a failure; a filtered one is not the model's answer;
    # a semantic hit answered a different question (it stays in the semantic cache only).
    return (
        not ctx.degraded
        and resp.finish_reason != "content_filter"
        and ctx.cache_status not in ("semantic", "normalized")
    )
