"""`Gateway`: everything a request needs, built once at startup from the config.

The composition root. It builds what the stages depend on (runtime, auth, executor, prices,
recorder, cache backends), asks `build_stages(config, deps)` for the pipeline (its order is
documented in `sluice.stages.build`), composes it around the plan executor, and registers
every long-lived part with one `Supervisor` (start order, health, orderly stop). The HTTP
surface around it is `sluice.server` and `sluice.web`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TypeVar

from sluice.cache.backends import CacheBackend, MemoryBackend, RedisBackend
from sluice.cache.exact import ExactCacheStage
from sluice.cache.persist import SqliteMirror
from sluice.cache.purgeable import Purgeable
from sluice.cache.semantic.stage import SemanticCacheStage
from sluice.config import CacheConfig, SluiceConfig
from sluice.context.stage import TokenPolicyStage
from sluice.embed import get_embedder
from sluice.eval.live import LiveEvalStage
from sluice.files.store import FileStore
from sluice.governance.runtime import Governance
from sluice.governance.stage import GovernanceStage
from sluice.identity import Identity
from sluice.observe.recorder import Recorder
from sluice.observe.tracing import Tracing
from sluice.pipeline.context import (
    CURRENT_CALL,
    CallContext,
    Handler,
    Result,
    Stage,
    add_child_cost,
    compose,
)
from sluice.providers.base import Deployment
from sluice.providers.forwarding import HeaderFilter
from sluice.reliability.executor import PlanExecutor
from sluice.retrieval.service import RetrievalService
from sluice.routing.stage import RouterStage
from sluice.runtime import Runtime
from sluice.stages.build import Prices, StageDeps, build_stages
from sluice.stages.settle import SettleStage
from sluice.supervisor import Supervisor
from sluice.types import ChatRequest, ChatResponse

__all__ = ["Gateway", "build_stages", "cache_backend", "traced"]

_S = TypeVar("_S")


def cache_backend(config: CacheConfig) -> CacheBackend:
    """Where cached answers and idempotency records live (shared by both stages)."""
    if config.backend == "redis":
        return RedisBackend(config.redis_url, config.key_prefix)
    return MemoryBackend(config.max_entries, config.max_bytes)


def traced(stage: Stage, tracing: Tracing) -> Stage:
    """The stage inside a span named after it (used only when tracing is on)."""
    name = f"sluice.stage.{type(stage).__name__.removesuffix('Stage').lower()}"

    async def run(ctx: CallContext, nxt: Handler) -> Result:
        with tracing.span(name):
            return await stage(ctx, nxt)

    return run


def _find(stages: list[Stage], kind: type[_S]) -> _S | None:
    return next((s for s in stages if isinstance(s, kind)), None)


class Gateway:
    """Everything a request needs, built once at startup."""

    def __init__(self, config: SluiceConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.runtime = runtime or Runtime.build(config)
        self.tracing = Tracing(config.observability.tracing)
        self.governance = Governance.build(config.governance)  # raises without a pepper
        self.executor = PlanExecutor(
            self.runtime, config.reliability, config.models, tracing=self.tracing
        )
        self.settle = SettleStage(self.runtime)
        self.prices = Prices(config, self.runtime, self.settle)
        self.recorder = Recorder(
            config.observability, self.prices.of_deployment, self.prices.of_model
        )
        # Metric labels take only values the config names (anything else counts as `other`).
        names = frozenset({*self.runtime.by_model, *config.models, *config.routes})
        deployments = frozenset(d.id for d in config.deployments)
        self.recorder.metrics.allow_values(route=names, model=names, deployment=deployments)
        self.cache_backend = cache_backend(config.cache)
        self.cache_mirror: SqliteMirror | None = None
        if config.cache.persist_path and isinstance(self.cache_backend, MemoryBackend):
            self.cache_mirror = SqliteMirror(config.cache.persist_path, self.cache_backend)
        deps = StageDeps(
            runtime=self.runtime,
            auth=self.governance.auth,
            executor=self.executor,
            settle=self.settle,
            prices=self.prices,
            metrics=self.recorder.metrics,
            cache_backend=self.cache_backend,
            sessions_backend=self._sessions_backend(config.cache),
            helper_call=self._helper_call,
            classifier_call=self._route_classifier_call,
            deployments_behind=self._deployments_behind,
            pipeline_call=self._pipeline_call,
            finish_call=self.recorder.finish,
            retrieval=lambda: self.retrieval,
        )
        self.stages: list[Stage] = build_stages(config, deps)
        self.handler: Handler = compose(
            [traced(s, self.tracing) for s in self.stages] if self.tracing.enabled else self.stages,
            self.executor,
        )
        # The stages other parts of the gateway read (admin API, metrics, /v1/sluice/usage).
        self.limits = _find(self.stages, GovernanceStage)
        self.tokens = _find(self.stages, TokenPolicyStage)
        self.semantic = _find(self.stages, SemanticCacheStage)
        self.router = _find(self.stages, RouterStage)
        live = _find(self.stages, LiveEvalStage)
        self.live_eval = live.live if live is not None else None  # shadow + online eval
        # Caches the admin API purges and reports on (`sluice.cache.purgeable.Purgeable`).
        self.caches: list[Purgeable] = [
            s for s in self.stages if isinstance(s, ExactCacheStage | SemanticCacheStage)
        ]
        self.forwarded = HeaderFilter(
            p for cfg in config.providers.values() for p in cfg.forward_headers
        )
        # Uploaded files (/v1/files; batches and retrieval read them): one store per gateway.
        files = config.files
        self.files = FileStore(files.store_url, files.blob_dir) if files.enabled else None
        # Vector stores (/v1/vector_stores; grounded chat reads them): sluice.retrieval.
        self.retrieval: RetrievalService | None = None
        if config.retrieval.enabled:
            self.retrieval = RetrievalService(
                config.retrieval, self.files, lambda: get_embedder(config.embedding)
            )
        self.supervisor = self._supervise()
        self.ready = True
        self.active_calls = 0  # chat calls being answered (server.drain waits for them)
        self.streaming: set[asyncio.Task[object]] = set()  # streams a drain timeout may cut

    def _supervise(self) -> Supervisor:
        """Every long-lived part, in start order (they stop in reverse)."""
        sup = Supervisor()
        sup.add("tracing", stop=lambda: asyncio.to_thread(self.tracing.shutdown))  # flushes
        sup.add("providers", stop=self.runtime.close)  # upstream connection pools
        if self.limits is not None:
            sup.add("limits", stop=self.limits.close)  # counter backend, ledger writer
        sup.add("cache_backend", stop=self.cache_backend.close)
        # Key store migrations first; then the key-change listener.
        sup.add("governance", self.governance.start, self.governance.close)
        sup.add("recorder", self.recorder.start, self.recorder.close)  # the record sink
        if self.files is not None:
            sup.add("files", self.files.start, self.files.close)
        if self.retrieval is not None:
            sup.add("retrieval", self.retrieval.start, self.retrieval.close)
        if self.cache_mirror is not None:
            sup.add("cache_mirror", self.cache_mirror.start, self.cache_mirror.close)
        if self.semantic is not None:  # embedding model, stored entries, store listener
            sup.add("semantic_cache", self.semantic.start, self.semantic.close)
        if self.router is not None:  # routes' embedding model, off the request path
            sup.add("router", self.router.prepare)
        if self.live_eval is not None:  # shadow / online-eval store and workers
            sup.add("live_eval", self.live_eval.start, self.live_eval.close)
        return sup

    async def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """The caller's identity from its request headers (anonymous: auth off); raises
        401/503. The one check every data-plane route shares."""
        return await self.governance.auth.authenticate(headers)

    async def _helper_call(self, child: CallContext) -> Result:
        """A model call made on behalf of the call being served (a routing classifier, the
        semantic cache's judge): to the plan executor, costed, and charged to that call, so
        its record and its budgets include it."""
        parent = CURRENT_CALL.get()
        if parent is not None:
            child.identity = parent.identity  # made for, and charged to, the same caller
            child.on_settled = parent.on_settled
        result = await self.settle(child, self.executor)
        if parent is not None:
            add_child_cost(parent, child)
        return result

    async def _pipeline_call(self, ctx: CallContext) -> Result:
        """A call Sluice makes on its own (a shadow mirror, an online judge): the whole
        pipeline, as the identity already on `ctx.credentials` (sluice.eval.live)."""
        return await self.handler(ctx)

    async def _route_classifier_call(self, req: ChatRequest) -> ChatResponse:
        """A routing classifier's model call (not streamed)."""
        result = await self._helper_call(CallContext(req))
        assert isinstance(result, ChatResponse)
        return result

    def _deployments_behind(self, name: str) -> list[Deployment]:
        """A model's deployments; for a route, those of all its targets (the token policy
        runs before routing decides, so it budgets for the smallest window it may get)."""
        route = self.config.routes.get(name)
        if route is None:
            return self.runtime.deployments_for(name)
        return [d for target in route.targets for d in self.runtime.by_model.get(target, [])]

    def _sessions_backend(self, config: CacheConfig) -> CacheBackend:
        """Sessions share Redis with the cache; in memory they get their own LRU, so cache
        pressure never evicts a conversation."""
        if config.backend == "redis":
            return self.cache_backend
        return MemoryBackend(config.max_entries, config.max_bytes)

    async def start(self) -> None:
        """Work that needs the running loop: migrations, the record sink, the cache file,
        the embedding model and stored semantic entries (`Supervisor.start`)."""
        await self.supervisor.start()

    async def close(self) -> None:
        self.ready = False
        await self.supervisor.stop()

    def render_metrics(self) -> bytes:
        """Prometheus text; gauges of live state are read at scrape time."""
        metrics = self.recorder.metrics
        for dep_id, state in self.executor.breaker_states().items():
            metrics.set_breaker_state(dep_id, state)
        if self.tokens is not None:
            for model, ratio in self.tokens.calibration.ratios().items():
                metrics.set_token_estimate_ratio(model, ratio)
        metrics.in_flight.set(sum(s.in_flight for s in self.executor.states.values()))
        metrics.queue_depth.set(self.executor.slots.waiting)
        return metrics.render()
