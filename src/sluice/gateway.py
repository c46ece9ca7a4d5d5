"""`Gateway`: everything a request needs, built once at startup from the config.

It assembles the pipeline (idempotency → limits and budgets → agent guard → token policy →
exact cache → semantic cache → router → structured output → settle → plan executor), the
recorder, governance and caches, and owns their start-up and shutdown. The HTTP surface
around it is `sluice.server`.
"""

from __future__ import annotations

import asyncio

from sluice.cache import admin as cache_admin
from sluice.cache.backends import CacheBackend, MemoryBackend, RedisBackend
from sluice.cache.exact import ExactCacheStage
from sluice.cache.idempotency import IdempotencyStage
from sluice.cache.persist import SqliteMirror
from sluice.cache.semantic.build import semantic_stage
from sluice.config import CacheConfig, SluiceConfig
from sluice.context.sessions import SessionStore
from sluice.context.stage import TokenPolicyStage
from sluice.cost.prices import Price
from sluice.governance.runtime import Governance
from sluice.governance.stage import GovernanceStage, build_governance
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
    traced,
)
from sluice.pipeline.guards import AgentGuardStage
from sluice.pipeline.settle import SettleStage
from sluice.pipeline.structured import StructuredOutputStage
from sluice.providers.base import Deployment
from sluice.providers.forwarding import HeaderFilter
from sluice.reliability.executor import PlanExecutor
from sluice.routing.stage import RouterStage, build_routers
from sluice.runtime import Runtime
from sluice.types import ChatRequest, ChatResponse


def cache_backend(config: CacheConfig) -> CacheBackend:
    """Where cached answers and idempotency records live (shared by both stages)."""
    if config.backend == "redis":
        return RedisBackend(config.redis_url, config.key_prefix)
    return MemoryBackend(config.max_entries, config.max_bytes)


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
        structured = StructuredOutputStage(
            config.reliability.structured_output.max_repairs, self.executor.plan_length
        )
        self.settle = SettleStage(self.runtime)
        guard = AgentGuardStage(config.reliability.agent, self._model_price)
        self.cache_backend = cache_backend(config.cache)
        cache = config.cache
        self.cache_mirror: SqliteMirror | None = None
        if cache.persist_path and isinstance(self.cache_backend, MemoryBackend):
            self.cache_mirror = SqliteMirror(cache.persist_path, self.cache_backend)
        front: list[Stage] = []
        # Idempotency first: a replay costs nothing and is not a new agent step.
        if cache.idempotency.enabled:
            front.append(IdempotencyStage(cache.idempotency, self.cache_backend))
        self.limits: GovernanceStage | None = None
        if config.limits.enabled:  # rate limits and budgets: before any work is done
            self.limits = build_governance(
                config.limits, self._model_price, {*self.runtime.by_model, *config.routes}
            )
            front.append(self.limits)
        if guard.enabled:
            front.append(guard)
        self.tokens = TokenPolicyStage(
            {
                **{name: plan.policy for name, plan in config.models.items()},
                **{name: route.policy for name, route in config.routes.items()},
            },
            self._deployments_behind,
            SessionStore(self._sessions_backend(config.cache)),
        )
        # Token policy before the cache: the cache key must cover what is really sent (a
        # session's history, the default max_tokens, a truncated conversation).
        front.append(self.tokens)
        # Caches the admin API purges and reports on (`sluice.cache.admin.Purgeable`).
        self.caches: list[cache_admin.Purgeable] = []
        if cache.exact.enabled:  # outside structured output: only validated answers stored
            exact = ExactCacheStage(cache.exact, self.cache_backend)
            exact.price_of_model = self._model_price
            front.append(exact)
            self.caches.append(exact)
        # Right after the exact cache: a question that means the same gets the stored answer.
        self.semantic = semantic_stage(cache.semantic, self._helper_call)
        if self.semantic is not None:
            front.append(self.semantic)
            self.caches.append(self.semantic)
        # Routing before structured output: a cascade sees validation failures and escalates.
        self.router = RouterStage(build_routers(config, self._route_classifier_call))
        routing: list[Stage] = [self.router] if self.router.routers else []
        self.stages: list[Stage] = [*front, *routing, structured, self.settle]
        self.handler: Handler = compose(
            [traced(s, self.tracing) for s in self.stages] if self.tracing.enabled else self.stages,
            self.executor,
        )
        self.recorder = Recorder(config.observability, self.settle.price_of, self._model_price)
        names = frozenset({*self.runtime.by_model, *config.models, *config.routes})
        deployments = frozenset(d.id for d in config.deployments)
        self.recorder.metrics.allow_values(route=names, model=names, deployment=deployments)
        if self.limits is not None:
            self.limits.metrics = self.recorder.metrics
            if self.limits.ledger is not None:  # rows the ledger table refused (parked)
                self.limits.ledger.on_dead_letter = self.recorder.metrics.dead_lettered("ledger")
        self.forwarded = HeaderFilter(
            p for cfg in config.providers.values() for p in cfg.forward_headers
        )
        self.ready = True
        self.active_calls = 0  # chat calls being answered (server.drain waits for them)
        self.streaming: set[asyncio.Task[object]] = set()  # streams a drain timeout may cut

    async def _helper_call(self, child: CallContext) -> Result:
        """A model call made on behalf of the call being served (a routing classifier, the
        semantic cache's judge): to the plan executor, costed, and charged to that call, so
        its record and its budgets include it."""
        parent = CURRENT_CALL.get()
        if parent is not None:
            child.on_settled = parent.on_settled
        result = await self.settle(child, self.executor)
        if parent is not None:
            add_child_cost(parent, child)
        return result

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

    def _model_price(self, model: str) -> Price | None:
        """The price of the deployment that would serve `model` first (cache savings, budget
        reservations). For a route, its dearest target's: routing has not decided yet when
        budgets reserve the worst case."""
        route = self.config.routes.get(model)
        prices = [p for name in (route.targets if route else [model]) if (p := self._first(name))]
        return max(prices, key=lambda p: (p.output, p.input)) if prices else None

    def _first(self, model: str) -> Price | None:
        deployments = self.runtime.by_model.get(model)
        return self.settle.price_of(deployments[0].id) if deployments else None

    async def start(self) -> None:
        """Work that needs the running loop: migrations, the record sink, the cache file,
        the embedding model and stored semantic entries."""
        await self.governance.start()  # Alembic migrations of the key store
        await self.recorder.start()
        if self.cache_mirror is not None:
            await self.cache_mirror.start()
        if self.semantic is not None:
            await self.semantic.start()
        await self.router.prepare()  # routes' embedding model, off the request path

    async def close(self) -> None:
        self.ready = False
        await self.recorder.close()
        await self.governance.close()
        if self.cache_mirror is not None:
            await self.cache_mirror.close()
        await self.cache_backend.close()
        if self.semantic is not None:
            await self.semantic.close()
        if self.limits is not None:
            await self.limits.close()
        await self.runtime.close()
        await asyncio.to_thread(self.tracing.shutdown)  # flushes spans; blocking I/O

    def render_metrics(self) -> bytes:
        """Prometheus text; gauges of live state are read at scrape time."""
        metrics = self.recorder.metrics
        for dep_id, state in self.executor.breaker_states().items():
            metrics.set_breaker_state(dep_id, state)
        for model, ratio in self.tokens.calibration.ratios().items():
            metrics.set_token_estimate_ratio(model, ratio)
        metrics.in_flight.set(sum(s.in_flight for s in self.executor.states.values()))
        metrics.queue_depth.set(self.executor.slots.waiting)
        return metrics.render()
