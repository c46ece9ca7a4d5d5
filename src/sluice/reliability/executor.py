"""The plan executor: the pipeline's terminal stage.

A public model maps to a plan: its deployments (load-balanced, breakers consulted,
concurrency-capped), then its fallback models in order, then an optional degrade answer.
Each deployment gets up to 1 + `max_retries` attempts with full-jitter backoff, within the
global retry budget and the request's deadline. Caller errors (400/413/422) end the plan at
once; everything else moves on. Streams are only returned once their first event arrived,
so any failure before the first byte is retried or falls back transparently (after it,
`sluice.reliability.midstream` continues the stream elsewhere).

Outlier detection: a deployment whose breaker is open is skipped — unless less than
`panic_threshold` of the plan is healthy, when ejected deployments are tried anyway (after
the healthy ones) rather than failing every call fast. The caller's own deadline,
cancellation and 4xx never count against a deployment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sluice.config import ModelPlanConfig, ReliabilityConfig, TimeoutConfig
from sluice.errors import (
    InvalidRequestError,
    SluiceError,
    UpstreamError,
    UpstreamMalformedError,
    UpstreamStatusError,
)
from sluice.observe.tracing import Tracing
from sluice.pipeline.context import Attempt, CallContext, Result
from sluice.providers.base import Deployment
from sluice.reliability.backoff import retry_delay
from sluice.reliability.breaker import BREAKER_NAMES, BreakerStateName
from sluice.reliability.budget import RetryBudget
from sluice.reliability.guarded import GuardedStream, bounded
from sluice.reliability.outcomes import (
    all_open_error,
    context_error,
    final_error,
    is_caller_deadline,
    is_caller_error,
    is_context_overflow,
    resting_error,
)
from sluice.reliability.slots import SlotPool
from sluice.reliability.state import DeploymentState, order
from sluice.replay import events_from_response
from sluice.runtime import Runtime
from sluice.tokens import estimate_request_tokens, request_tokens_at_most
from sluice.types import (
    ChatRequest,
    ChatResponse,
    StreamStart,
    TextPart,
)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class _ModelFailed(Exception):
    """Internal: this model of the plan cannot serve the request; try the next one."""

    def __init__(self, error: SluiceError) -> None:
        super().__init__(error.message)
        self.error = error


class PlanExecutor:
    def __init__(
        self,
        runtime: Runtime,
        config: ReliabilityConfig,
        plans: dict[str, ModelPlanConfig],
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        tracing: Tracing | None = None,
    ) -> None:
        self._runtime = runtime
        self._tracing = tracing if tracing is not None and tracing.enabled else None
        self._cfg = config
        self._plans = plans
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.states = {
            dep.id: DeploymentState(dep, config.breaker, self._rng)
            for dep in runtime.deployments.values()
        }
        for state in self.states.values():
            state.breaker.may_eject = self._may_eject_fn(state)
        self.budget = RetryBudget(
            config.retry.budget_ratio,
            config.retry.budget_window_s,
            config.retry.budget_min_retries,
        )
        self.slots = SlotPool(config.queue.max_waiting, config.queue.max_wait_s)

    # --- plan ------------------------------------------------------------------------

    def _deployments(self, model: str) -> list[DeploymentState]:
        plan = self._plans.get(model)
        if plan is not None and plan.deployments is not None:
            return [self.states[d] for d in plan.deployments]
        return [self.states[d.id] for d in self._runtime.deployments_for(model)]

    def _may_eject_fn(self, state: DeploymentState) -> Callable[[], bool]:
        """Envoy's max ejection percent: at most `max_ejection_share` of each model's
        deployments out at once — though one may always be."""
        share = self._cfg.breaker.max_ejection_share
        pools = [
            [self.states[d.id] for d in deps]
            for deps in self._runtime.by_model.values()
            if any(d.id == state.id for d in deps)
        ]

        def may_eject() -> bool:
            for pool in pools:
                out = sum(1 for s in pool if not s.breaker.available())
                if out and (out + 1) / len(pool) > share:
                    return False
            return True

        return may_eject

    def chain(self, model: str) -> list[str]:
        plan = self._plans.get(model)
        return [model, *(plan.fallbacks if plan else [])]

    def has_alternative(self, ctx: CallContext, exclude: set[str]) -> bool:
        """Has the plan a deployment outside `exclude` (for mid-stream failover)?"""
        for model in self.chain(ctx.request.model)[ctx.skip_models :]:
            try:
                states = self._deployments(model)
            except SluiceError:
                continue
            if any(s.id not in exclude for s in states):
                return True
        return False

    def _panicking(self, chain: list[str]) -> bool:
        """Less than `panic_threshold` of the plan's deployments are healthy."""
        threshold = self._cfg.breaker.panic_threshold
        if threshold <= 0:
            return False
        states: dict[str, DeploymentState] = {}
        for model in chain:
            try:
                states.update((s.id, s) for s in self._deployments(model))
            except SluiceError:
                continue
        if not states:
            return False
        healthy = sum(1 for s in states.values() if s.breaker.available())
        return healthy / len(states) < threshold

    async def __call__(self, ctx: CallContext) -> Result:
        req = ctx.request
        plan = self._plans.get(req.model)
        if plan is None or plan.deployments is None:
            self._runtime.deployments_for(req.model)  # 404 for an unknown model, up front
        if ctx.rewrite_for is None:  # a mid-stream continuation is not a new request
            self.budget.record_request()
        deadline = _deadline(req.meta.headers)
        need = _Need(req)
        chain = self.chain(req.model)
        panic = self._panicking(chain)
        failures: list[SluiceError] = []
        tried: set[str] = set()
        for index, model in enumerate(chain):
            if index < ctx.skip_models:
                continue
            ctx.fallback = index > 0
            try:
                return await self._serve_model(ctx, model, deadline, need, panic, tried)
            except _ModelFailed as failed:
                failures.append(failed.error)
        last_resort = not panic and self._cfg.breaker.panic_threshold > 0
        if last_resort and (result := await self._last_resort(ctx, chain, deadline, need, tried)):
            return result
        if plan is not None and plan.degrade is not None:
            return self._degraded(ctx, plan.degrade.message)
        raise final_error(failures)

    async def _last_resort(
        self,
        ctx: CallContext,
        chain: list[str],
        deadline: float | None,
        need: _Need,
        tried: set[str],
    ) -> Result | None:
        """Every healthy deployment of the plan failed this call: before giving up, try the
        ejected ones too (a breaker opened by a run of bad luck must not turn into a failed
        call). None when there is none, or they failed as well. Off with the panic
        threshold (`panic_threshold: 0`: ejected means skipped)."""
        if deadline is not None and time.monotonic() >= deadline:
            return None
        saved = ctx.exclude_deployments
        ctx.exclude_deployments = saved | tried
        try:
            for index, model in enumerate(chain):
                if index < ctx.skip_models:
                    continue
                ejected = [
                    s
                    for s in self._deployments(model)
                    if s.id not in ctx.exclude_deployments and not s.breaker.available()
                ]
                if not ejected:
                    continue
                ctx.fallback = index > 0
                try:
                    return await self._serve_model(ctx, model, deadline, need, True, tried)
                except _ModelFailed:
                    continue
        finally:
            ctx.exclude_deployments = saved
        return None

    def _degraded(self, ctx: CallContext, message: str) -> Result:
        ctx.degraded = True
        resp = ChatResponse(
            id=f"degraded-{ctx.request.meta.request_id}",
            model=ctx.request.model,
            parts=[TextPart(message)],
            created=int(time.time()),
        )
        return events_from_response(resp) if ctx.request.stream else resp

    async def _serve_model(
        self,
        ctx: CallContext,
        model: str,
        deadline: float | None,
        need: _Need,
        panic: bool,
        tried_all: set[str],
    ) -> Result:
        states = [s for s in self._deployments(model) if s.id not in ctx.exclude_deployments]
        if not states:
            raise _ModelFailed(all_open_error(model, self._deployments(model)))
        fitting = [s for s in states if not s.dep.context_window or need.fits(s.dep.context_window)]
        if not fitting:
            raise _ModelFailed(context_error(model, need.tokens, states))
        plan = self._plans.get(model)
        strategy = (plan.load_balancing if plan else None) or self._cfg.load_balancing
        candidates = order(fitting, strategy, self._rng, panic=panic)
        if not candidates:
            raise _ModelFailed(all_open_error(model, fitting))
        now = time.monotonic()
        awake = [c for c in candidates if not c.resting(now)]
        if not awake:  # the provider asked us to wait: don't send what would be a 429
            raise _ModelFailed(resting_error(model, candidates, now))
        candidates = awake
        tried: set[str] = set()
        last: SluiceError | None = None
        while remaining := [c for c in candidates if c.id not in tried]:
            state = await self.slots.wait_for_any(remaining, _priority(ctx), _time_left(deadline))
            tried.add(state.id)
            if not state.breaker.allow() and not panic:
                self.slots.release(state)
                continue
            tried_all.add(state.id)
            try:
                return await self._attempts(ctx, state, deadline, panic)
            except UpstreamError as err:
                if is_caller_error(err):
                    raise
                last = err
        raise _ModelFailed(last or all_open_error(model, fitting))

    # --- attempts on one deployment -----------------------------------------------------

    async def _attempts(
        self, ctx: CallContext, state: DeploymentState, deadline: float | None, panic: bool
    ) -> Result:
        """Holds a slot on entry; every exit path gives it back (streams: when they end)."""
        retry = self._cfg.retry
        attempt = 0
        while True:
            ctx.attempts += 1
            started, wall = time.perf_counter(), time.time()
            try:
                result = await self._call(ctx, state, deadline)
            except UpstreamError as err:
                ctx.attempt_log.append(
                    Attempt(state.id, wall, _ms_since(started), err.http_status, err.code)
                )
                self.slots.release(state)
                if is_caller_deadline(err, deadline):
                    state.breaker.release_probe()  # the caller's clock ran out, not the upstream
                    raise
                self._record_failure(state, err)
                if not self._should_retry(err, attempt, state, deadline, panic):
                    raise
                delay = retry_delay(
                    attempt,
                    err.retry_after_s,
                    base_s=retry.base_s,
                    cap_s=retry.cap_s,
                    rng=self._rng,
                )
                await self._sleep(delay)
                attempt += 1
                await self.slots.wait_for_any([state], _priority(ctx), _time_left(deadline))
                if not state.breaker.allow() and not panic:
                    self.slots.release(state)
                    raise
                continue
            except BaseException:
                self.slots.release(state)
                state.breaker.release_probe()
                raise
            ctx.attempt_log.append(Attempt(state.id, wall, _ms_since(started), 200))
            return result

    def _should_retry(
        self,
        err: UpstreamError,
        attempt: int,
        state: DeploymentState,
        deadline: float | None,
        panic: bool,
    ) -> bool:
        retry = self._cfg.retry
        if not err.retryable or attempt >= retry.max_retries:
            return False
        if err.retry_after_s is not None and err.retry_after_s > retry.max_retry_after_s:
            return False  # the provider wants a long rest: another deployment, not a wait
        if deadline is not None and time.monotonic() + (err.retry_after_s or 0) >= deadline:
            return False
        if not state.breaker.available() and not panic:
            return False
        return self.budget.try_spend()

    def record_failure(self, state: DeploymentState, err: UpstreamError) -> None:
        """A failure after the first byte (streams), from `GuardedStream`."""
        self._record_failure(state, err)

    def _record_failure(self, state: DeploymentState, err: UpstreamError) -> None:
        if isinstance(err, UpstreamStatusError) and err.upstream_status == 429:
            state.rest_until(time.monotonic() + (err.retry_after_s or 1.0))
            state.breaker.release_probe()
        elif is_caller_error(err) or is_context_overflow(err):
            state.breaker.release_probe()
        else:
            state.breaker.record_failure()

    def _record_success(self, state: DeploymentState, started: float) -> None:
        state.breaker.record_success()
        state.observe_latency((time.perf_counter() - started) * 1000)

    async def _call(
        self, ctx: CallContext, state: DeploymentState, deadline: float | None
    ) -> Result:
        if self._tracing is None:
            return await self._call_upstream(ctx, state, deadline)
        # The attempt's span covers the call up to the answer (streams: the first event).
        with self._tracing.span(
            "sluice.attempt",
            **{
                "sluice.deployment": state.id,
                "sluice.attempt": ctx.attempts,
                "gen_ai.request.model": state.dep.model,
            },
        ) as span:
            ctx.request.meta.traceparent = self._tracing.traceparent()
            try:
                return await self._call_upstream(ctx, state, deadline)
            except UpstreamError as err:
                if span is not None:
                    span.set_attribute("error.type", err.code or type(err).__name__)
                raise

    async def _call_upstream(
        self, ctx: CallContext, state: DeploymentState, deadline: float | None
    ) -> Result:
        req = ctx.request
        if ctx.rewrite_for is not None:  # a continuation, shaped for this provider kind
            req = ctx.rewrite_for(self._runtime.provider_kind(state.dep))
        dep = _within_deadline(state.dep, deadline)
        provider = self._runtime.provider_for(state.dep)
        ctx.deployment = state.dep
        started = time.perf_counter()
        if not req.stream:
            resp = await bounded(provider.complete(req, dep), deadline, dep.id)
            self.slots.release(state)
            self._record_success(state, started)
            state.observe_ratelimit(resp.ratelimit, self._cfg.throttle_headroom)
            return resp
        events = provider.stream(req, dep)
        try:
            first = await bounded(anext(events), deadline, dep.id)
        except StopAsyncIteration:
            raise UpstreamMalformedError(
                f"upstream {dep.id} sent an empty stream", deployment=dep.id
            ) from None
        except BaseException:
            await events.aclose()
            raise
        self._record_success(state, started)
        if isinstance(first, StreamStart):
            state.observe_ratelimit(first.ratelimit, self._cfg.throttle_headroom)
        return GuardedStream(first, events, self, state, deadline)

    def plan_length(self, model: str) -> int:
        plan = self._plans.get(model)
        return 1 + (len(plan.fallbacks) if plan else 0)

    def breaker_states(self) -> dict[str, BreakerStateName]:
        """Each deployment's breaker, as `/readyz` and `/metrics` show it."""
        return {s.id: BREAKER_NAMES[s.breaker.state] for s in self.states.values()}


# --- helpers ---------------------------------------------------------------------------


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _deadline(headers: dict[str, str]) -> float | None:
    raw = headers.get("x-sluice-timeout-ms")
    if raw is None:
        return None
    try:
        ms = float(raw)
    except ValueError:
        raise InvalidRequestError(
            "x-sluice-timeout-ms must be a number of milliseconds", param="x-sluice-timeout-ms"
        ) from None
    if not 0 < ms <= 3_600_000:
        raise InvalidRequestError(
            "x-sluice-timeout-ms must be between 1 and 3600000", param="x-sluice-timeout-ms"
        )
    return time.monotonic() + ms / 1000


def _time_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _within_deadline(dep: Deployment, deadline: float | None) -> Deployment:
    left = _time_left(deadline)
    if left is None or left >= dep.timeouts.total_s:
        return dep
    t = dep.timeouts
    left = max(left, 0.001)
    bounded = TimeoutConfig(
        connect_s=min(t.connect_s, left),
        ttft_s=min(t.ttft_s, left),
        idle_s=min(t.idle_s, left),
        total_s=left,
    )
    return dataclasses.replace(dep, timeouts=bounded)


_PRIORITIES = {"interactive": 0, "default": 1, "batch": 2}


def _priority(ctx: CallContext) -> int:
    raw = ctx.request.meta.headers.get("x-sluice-priority", "default").lower()
    if raw in _PRIORITIES:
        return _PRIORITIES[raw]
    return int(raw) if raw.isdigit() else 1


class _Need:
    """Prompt + max_tokens tokens, estimated only when a cheap upper bound does not already
    fit the context window (counting costs a few µs per request; the bound far less)."""

    __slots__ = ("_at_most", "_exact", "_req")

    def __init__(self, req: ChatRequest) -> None:
        self._req = req
        self._at_most: int | None = None
        self._exact: int | None = None

    @property
    def tokens(self) -> int:
        if self._exact is None:
            self._exact = estimate_request_tokens(self._req) + (self._req.max_tokens or 0)
        return self._exact

    def fits(self, window: int) -> bool:
        if self._at_most is None:
            self._at_most = request_tokens_at_most(self._req) + (self._req.max_tokens or 0)
        return self._at_most <= window or self.tokens <= window
