"""`build_stages(config, deps)`: the pipeline's stages, in order, decided in one place.

    auth → guardrails → live eval → idempotency → limits and budgets → agent guard
    → grounding (retrieval; chunks checked for injection) → token policy → exact cache
    → semantic cache → router
    → structured output → mid-stream failover → settle → (the plan executor)

- Auth first: everything after it keys on `ctx.identity`.
- Guardrails right after auth: a blocked request costs nothing further, and every later
  stage (live evaluation and the caches too) sees the masked request
  (sluice.guardrails.stage).
- Idempotency before limits: a replay costs nothing and is not a new agent step.
- Limits and budgets before any work is done.
- Token policy before the caches: the cache key must cover what is really sent (a
  session's history, the default max_tokens, a truncated conversation).
- Exact cache outside structured output: only validated answers are stored; the semantic
  cache right after it: a question that means the same gets the stored answer.
- Routing before structured output: a cascade sees validation failures and escalates.
- Settle right around the executor: every upstream answer (repairs, escalations) is costed.

A stage that is switched off is not in the list at all (zero cost). Every stage gets what it
needs in its constructor (`StageDeps`); nothing is wired into a stage after it is built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sluice.cache.backends import CacheBackend
from sluice.cache.exact import ExactCacheStage
from sluice.cache.idempotency import IdempotencyStage
from sluice.cache.semantic.build import semantic_stage
from sluice.config import SluiceConfig
from sluice.context.sessions import SessionStore
from sluice.context.stage import TokenPolicyStage
from sluice.cost.prices import Price
from sluice.eval.live import build_live_stage
from sluice.governance.auth import Authenticator
from sluice.governance.stage import build_governance
from sluice.guardrails.stage import GuardStage, load_injection_detector
from sluice.observe.metrics import Metrics
from sluice.pipeline.context import CallContext, Result, Stage
from sluice.providers.base import Deployment
from sluice.reliability.executor import PlanExecutor
from sluice.reliability.midstream import MidstreamFailoverStage
from sluice.retrieval.judge import SupportJudge
from sluice.retrieval.service import RetrievalService
from sluice.retrieval.stage import GroundingStage
from sluice.routing.stage import RouterStage, build_routers
from sluice.routing.targets import targets_of
from sluice.runtime import Runtime
from sluice.stages.auth import AuthStage
from sluice.stages.guards import AgentGuardStage
from sluice.stages.retrieval_screen import InjectionScreen, wants_document_screen
from sluice.stages.settle import SettleStage
from sluice.stages.structured import StructuredOutputStage
from sluice.types import ChatRequest, ChatResponse


class Prices:
    """Prices by deployment (what settle charges) and by public model or route (cache
    savings, budget reservations)."""

    def __init__(self, config: SluiceConfig, runtime: Runtime, settle: SettleStage) -> None:
        self._routes = config.routes
        self._by_model = runtime.by_model
        self.of_deployment = settle.price_of

    def of_model(self, model: str) -> Price | None:
        """The price of the deployment that would serve `model` first. For a route, its
        dearest target's: routing has not decided yet when budgets reserve the worst case."""
        route = self._routes.get(model)
        names = route.targets if route else [model]
        prices = [p for name in names if (p := self._first(name)) is not None]
        return max(prices, key=lambda p: (p.output, p.input)) if prices else None

    def _first(self, model: str) -> Price | None:
        deployments = self._by_model.get(model)
        return self.of_deployment(deployments[0].id) if deployments else None


@dataclass(frozen=True, slots=True)
class StageDeps:
    """What the stages need from the rest of the gateway, all built before them."""

    runtime: Runtime
    auth: Authenticator
    executor: PlanExecutor
    settle: SettleStage
    prices: Prices
    metrics: Metrics
    cache_backend: CacheBackend  # cached answers and idempotency records
    sessions_backend: CacheBackend  # conversation sessions
    # A model call made on behalf of the call being served (semantic cache judge).
    helper_call: Callable[[CallContext], Awaitable[Result]]
    # A routing classifier's call (not streamed), charged to the call being routed.
    classifier_call: Callable[[ChatRequest], Awaitable[ChatResponse]]
    # A model's deployments; for a route, those of all its targets.
    deployments_behind: Callable[[str], list[Deployment]]
    # A call Sluice makes on its own (shadow mirror, online judge) through the whole
    # pipeline, and the recorder's `finish` that gives it its own call record (sluice.eval).
    pipeline_call: Callable[[CallContext], Awaitable[Result]] | None = None
    finish_call: Callable[..., None] | None = None
    # The gateway's vector stores, for grounded chat (None: retrieval off).
    retrieval: Callable[[], RetrievalService | None] = lambda: None


def build_stages(config: SluiceConfig, deps: StageDeps) -> list[Stage]:
    """The stages in the order the module docstring gives; those switched off left out."""
    cache = config.cache
    stages: list[Stage] = [AuthStage(deps.auth)]
    # Retrieved chunks are checked by the guard stage's injection detector (one in memory).
    guards = config.guardrails
    detector = (
        load_injection_detector(guards.injection_classifier)
        if wants_document_screen(guards)
        else None
    )
    if config.guardrails.enabled:
        stages.append(
            GuardStage(
                config.guardrails,
                ask=deps.classifier_call,
                count=deps.metrics.guard_verdict,
                injection=detector,
            )
        )
    # Live evaluation after auth and guardrails: it sees the request as sent upstream
    # (masked, never a blocked one), and acts only once the answer is complete
    # (sluice.eval.live).
    if deps.pipeline_call is not None and deps.finish_call is not None:
        records = config.observability.records
        live = build_live_stage(
            config.routes,
            deps.metrics.registry,
            {*deps.runtime.by_model, *config.models, *config.routes},
            deps.pipeline_call,
            deps.finish_call,
            records.store_url if records.enabled else None,
        )
        if live is not None:
            stages.append(live)
    if cache.idempotency.enabled:
        stages.append(IdempotencyStage(cache.idempotency, deps.cache_backend))
    if config.limits.enabled:
        models = {*deps.runtime.by_model, *config.routes}
        stages.append(
            build_governance(config.limits, deps.prices.of_model, models, metrics=deps.metrics)
        )
    guard = AgentGuardStage(config.reliability.agent, deps.prices.of_model)
    if guard.enabled:
        stages.append(guard)
    if config.retrieval.enabled:  # grounded chat: the context is in what caches key on
        windows = {name: t.context_window for name, t in targets_of(config).items()}
        judge_cfg = config.retrieval.support_judge
        stages.append(
            GroundingStage(
                deps.retrieval,
                lambda model: windows.get(model),
                screen=(
                    InjectionScreen(config.guardrails, detector, deps.classifier_call)
                    if detector is not None
                    else None
                ),
                judge=(
                    SupportJudge(judge_cfg, deps.classifier_call) if judge_cfg.enabled else None
                ),
                count=deps.metrics.guard_verdict,
            )
        )
    policies = {
        **{name: plan.policy for name, plan in config.models.items()},
        **{name: route.policy for name, route in config.routes.items()},
    }
    sessions = SessionStore(deps.sessions_backend)
    stages.append(TokenPolicyStage(policies, deps.deployments_behind, sessions))
    if cache.exact.enabled:
        exact = ExactCacheStage(
            cache.exact, deps.cache_backend, price_of_model=deps.prices.of_model
        )
        stages.append(exact)
    semantic = semantic_stage(cache.semantic, deps.helper_call)
    if semantic is not None:
        stages.append(semantic)
    router = RouterStage(build_routers(config, deps.classifier_call))
    if router.routers:
        stages.append(router)
    structured = config.reliability.structured_output
    stages.append(StructuredOutputStage(structured.max_repairs, deps.executor.plan_length))
    # Mid-stream failover outside settle: each attempt of a resumed stream is charged.
    stages.append(MidstreamFailoverStage(config.models, deps.executor.has_alternative))
    stages.append(deps.settle)
    return stages
