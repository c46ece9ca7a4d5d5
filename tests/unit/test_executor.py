"""The plan executor with scripted fake providers: retries, fallbacks, budgets, deadlines."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from sluice.collect import StreamCollector
from sluice.config import parse_config
from sluice.errors import (
    InvalidRequestError,
    ServiceUnavailableError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from sluice.pipeline.context import CallContext
from sluice.providers.base import Deployment
from sluice.reliability.executor import PlanExecutor
from sluice.replay import events_from_response
from sluice.runtime import Runtime
from sluice.types import (
    CallMeta,
    ChatRequest,
    ChatResponse,
    EventStream,
    Message,
    TextPart,
)

Outcome = Callable[[], Any]  # returns a ChatResponse or raises


def ok(text: str = "fine") -> Outcome:
    return lambda: ChatResponse("r", "m", [TextPart(text)])


def fail(status: int, retry_after: float | None = None, message: str = "boom") -> Outcome:
    def outcome() -> ChatResponse:
        raise UpstreamStatusError(message, upstream_status=status, retry_after_s=retry_after)

    return outcome


def refused() -> ChatResponse:
    raise UpstreamConnectError("refused")


@dataclass
class FakeProvider:
    """Answers per deployment from a script (the last outcome repeats)."""

    scripts: dict[str, list[Outcome]]
    calls: list[tuple[str, float]] = field(default_factory=list)
    delay_s: float = 0.0

    def _next(self, dep: Deployment) -> Outcome:
        self.calls.append((dep.id, time.monotonic()))
        script = self.scripts[dep.id]
        return script.pop(0) if len(script) > 1 else script[0]

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        outcome = self._next(dep)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        result: ChatResponse = outcome()
        return result

    async def stream(self, req: ChatRequest, dep: Deployment) -> EventStream:
        resp = self._next(dep)()
        async for event in events_from_response(resp):
            yield event

    async def close(self) -> None: ...


CONFIG = """
providers: {p: {kind: openai}}
deployments:
  - {id: a1, provider: p, model: m, serves: [main], context_window: 1000}
  - {id: a2, provider: p, model: m, serves: [main], context_window: 1000}
  - {id: big, provider: p, model: m, serves: [big], context_window: 100000}
  - {id: b1, provider: p, model: m, serves: [backup]}
models:
  main: {fallbacks: [big, backup]}
  lonely: {deployments: [b1], degrade: {message: "We are busy, try again soon."}}
reliability:
  retry: {max_retries: 2, base_s: 0.01, cap_s: 0.05, budget_min_retries: 1000}
  breaker: {min_calls: 4, consecutive_failures: 3, open_s: 60}
"""


NO_BREAKER = "\n  breaker: {enabled: false}\n"


def executor(
    scripts: dict[str, list[Outcome]], extra: str = "", **kw: Any
) -> tuple[PlanExecutor, FakeProvider]:
    config = parse_config(CONFIG + extra)
    runtime = Runtime.build(config)
    fake = FakeProvider({k: list(v) for k, v in scripts.items()})
    runtime.providers = {"p": fake}
    sleeps: list[float] = kw.pop("sleeps", [])

    async def sleep(s: float) -> None:
        sleeps.append(s)
        await asyncio.sleep(0)

    ex = PlanExecutor(
        runtime,
        config.reliability,
        config.models,
        rng=random.Random(5),
        sleep=kw.pop("sleep", sleep),
    )
    return ex, fake


def ctx(
    model: str = "main",
    text: str = "hi",
    stream: bool = False,
    headers: dict[str, str] | None = None,
    max_tokens: int | None = None,
) -> CallContext:
    req = ChatRequest(
        model,
        [Message("user", [TextPart(text)])],
        stream=stream,
        max_tokens=max_tokens,
        meta=CallMeta(headers=headers or {}),
    )
    return CallContext(req)


async def test_retries_same_deployment_then_succeeds() -> None:
    sleeps: list[float] = []
    ex, fake = executor({"a1": [fail(503), fail(500), ok()], "a2": [ok()]}, sleeps=sleeps)
    c = ctx()
    ex.states["a2"].in_flight = 10  # least-inflight puts a1 first
    resp = await ex(c)
    assert isinstance(resp, ChatResponse)
    assert [d for d, _ in fake.calls] == ["a1", "a1", "a1"]
    assert c.attempts == 3 and not c.fallback and c.deployment and c.deployment.id == "a1"
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_caller_errors_are_never_retried_or_fallen_back(status: int) -> None:
    ex, fake = executor({"a1": [fail(status)], "a2": [ok()], "big": [ok()], "b1": [ok()]})
    with pytest.raises(UpstreamStatusError):
        await ex(ctx())
    assert len(fake.calls) == 1


async def test_exhausted_deployments_fall_back_to_next_model() -> None:
    ex, _ = executor(
        {"a1": [fail(500)], "a2": [refused], "big": [fail(502)], "b1": [ok("from backup")]}
    )
    c = ctx()
    resp = await ex(c)
    assert isinstance(resp, ChatResponse) and resp.parts == [TextPart("from backup")]
    assert c.fallback and c.deployment and c.deployment.id == "b1"
    assert c.attempts == 3 + 3 + 3 + 1


async def test_retry_after_is_honoured_and_long_ones_move_on() -> None:
    sleeps: list[float] = []
    ex, _ = executor({"a1": [fail(429, retry_after=2.0), ok()], "a2": [ok()]}, sleeps=sleeps)
    ex.states["a2"].in_flight = 10
    await ex(ctx())
    assert sleeps and sleeps[0] >= 2.0
    sleeps.clear()
    ex2, fake2 = executor({"a1": [fail(429, retry_after=120)], "a2": [ok()]}, sleeps=sleeps)
    ex2.states["a2"].in_flight = 10
    c = ctx()
    await ex2(c)
    assert [d for d, _ in fake2.calls] == ["a1", "a2"] and not sleeps
    assert ex2.states["a1"].resting(time.monotonic())  # it rests until the provider's time


async def test_resting_deployments_are_skipped_and_a_lone_one_gives_429() -> None:
    from sluice.errors import RateLimitError

    ex, fake = executor({"b1": [fail(429, retry_after=30)]})
    with pytest.raises(UpstreamStatusError):
        await ex(ctx("backup"))  # the provider's 429 (its retry-after is too long to wait)
    calls = len(fake.calls)
    with pytest.raises(RateLimitError) as info:
        await ex(ctx("backup"))  # Sluice now waits as asked instead of calling again
    assert len(fake.calls) == calls
    assert 25 <= int(info.value.headers["retry-after"]) <= 30


async def test_retry_budget_stops_a_retry_storm() -> None:
    ex, fake = executor(
        {"a1": [fail(500)], "a2": [fail(500)], "big": [fail(500)], "b1": [fail(500)]}, NO_BREAKER
    )
    ex.budget = type(ex.budget)(ratio=0.1, window_s=60, min_retries=0)
    for _ in range(20):
        with pytest.raises(UpstreamError):
            await ex(ctx())
    retries = len(fake.calls) - 20 * 4  # 4 deployments tried once each per request
    assert retries <= 0.1 * 20 + 1


async def test_context_overflow_falls_through_to_a_bigger_window() -> None:
    ex, fake = executor(
        {"a1": [ok("small")], "a2": [ok("small")], "big": [ok("big")], "b1": [ok()]}
    )
    c = ctx(text="word " * 2000)  # ~2000 tokens: over a1/a2's 1000-token windows
    resp = await ex(c)
    assert isinstance(resp, ChatResponse) and resp.parts == [TextPart("big")]
    assert [d for d, _ in fake.calls] == ["big"] and c.fallback


async def test_upstream_context_error_moves_to_the_next_deployment() -> None:
    too_long = fail(400, message="This model's maximum context length is 8192 tokens")
    ex, _ = executor({"a1": [too_long], "a2": [too_long], "big": [ok("big")], "b1": [ok()]})
    resp = await ex(ctx())
    assert isinstance(resp, ChatResponse) and resp.parts == [TextPart("big")]


async def test_nothing_fits_is_a_clear_400() -> None:
    ex, _ = executor({"a1": [ok()], "a2": [ok()], "big": [ok()], "b1": [ok()]}, "\n")
    ex._plans = {}  # no fallbacks: only the small windows of "main"
    with pytest.raises(InvalidRequestError) as info:
        await ex(ctx(text="word " * 2000))
    assert info.value.code == "context_length_exceeded"


async def test_breakers_open_and_then_fail_fast_with_503() -> None:
    """With the panic threshold off, an ejected plan fails fast; `retry-after` is the
    breaker's remaining open time (60 s here), not 1."""
    ex, fake = executor(
        {"b1": [fail(500)]},
        "\n  breaker: {consecutive_failures: 3, open_s: 60, panic_threshold: 0}\n",
    )
    ex._cfg = ex._cfg.model_copy(
        update={"retry": ex._cfg.retry.model_copy(update={"max_retries": 0})}
    )
    for _ in range(3):  # three consecutive failures open the breaker
        with pytest.raises(UpstreamError):
            await ex(ctx("backup"))
    calls = len(fake.calls)
    with pytest.raises(ServiceUnavailableError) as info:
        await ex(ctx("backup"))
    assert len(fake.calls) == calls  # refused without calling upstream
    assert 55 <= int(info.value.headers["retry-after"]) <= 60


async def test_panic_tries_an_ejected_plan_instead_of_failing_fast() -> None:
    ex, _ = executor({"b1": [fail(500), fail(500), fail(500), ok("back")]})
    ex._cfg = ex._cfg.model_copy(
        update={"retry": ex._cfg.retry.model_copy(update={"max_retries": 0})}
    )
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await ex(ctx("backup"))
    assert ex.breaker_states()["b1"] == "open"
    resp = await ex(ctx("backup"))  # the whole plan is ejected: panic, try it anyway
    assert isinstance(resp, ChatResponse) and resp.parts == [TextPart("back")]


async def test_ejection_share_keeps_half_of_a_models_deployments_serving() -> None:
    ex, _ = executor({"a1": [fail(500)], "a2": [fail(500)]})
    for dep in ("a1", "a2"):
        for _ in range(3):
            ex._record_failure(ex.states[dep], UpstreamStatusError("x", upstream_status=500))
    states = ex.breaker_states()
    assert sorted([states["a1"], states["a2"]]) == ["closed", "open"]  # 1 of 2 at most


async def test_the_callers_deadline_never_counts_against_a_deployment() -> None:
    ex, fake = executor({"b1": [ok()]}, sleep=asyncio.sleep)
    fake.delay_s = 0.2
    for _ in range(6):  # a tenant with a 10 ms deadline on a healthy, slower upstream
        with pytest.raises(UpstreamTimeoutError):
            await ex(ctx("backup", headers={"x-sluice-timeout-ms": "10"}))
    assert ex.breaker_states()["b1"] == "closed"
    assert isinstance(await ex(ctx("backup")), ChatResponse)  # another caller is served


async def test_degrade_answer_when_the_plan_fails() -> None:
    ex, _ = executor({"b1": [fail(503)]})
    c = ctx("lonely")
    resp = await ex(c)
    assert isinstance(resp, ChatResponse) and c.degraded
    assert resp.parts == [TextPart("We are busy, try again soon.")]
    stream = await ex(ctx("lonely", stream=True))
    assert not isinstance(stream, ChatResponse)
    collector = StreamCollector()
    async for event in stream:
        collector.add(event)
    assert collector.response().parts == [TextPart("We are busy, try again soon.")]


async def test_stream_failure_before_first_byte_is_retried() -> None:
    ex, _ = executor({"a1": [fail(503), ok("streamed")], "a2": [ok()]})
    ex.states["a2"].in_flight = 10
    stream = await ex(ctx(stream=True))
    assert not isinstance(stream, ChatResponse)
    collector = StreamCollector()
    async for event in stream:
        collector.add(event)
    assert collector.response().parts == [TextPart("streamed")]
    assert ex.states["a1"].in_flight == 0  # the slot came back when the stream ended


async def test_abandoned_stream_gives_its_slot_back() -> None:
    ex, _ = executor({"a1": [ok()], "a2": [ok()]})
    stream = await ex(ctx(stream=True))
    assert not isinstance(stream, ChatResponse)
    assert sum(s.in_flight for s in ex.states.values()) == 1
    await stream.aclose()  # never iterated
    assert sum(s.in_flight for s in ex.states.values()) == 0


async def test_request_deadline_gives_504() -> None:
    ex, fake = executor(
        {"a1": [ok()], "a2": [ok()], "big": [ok()], "b1": [ok()]}, sleep=asyncio.sleep
    )
    fake.delay_s = 1.0
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        await ex(ctx(headers={"x-sluice-timeout-ms": "150"}))
    assert time.monotonic() - started < 0.6


async def test_bad_timeout_header_is_a_400() -> None:
    ex, _ = executor({"a1": [ok()]})
    with pytest.raises(InvalidRequestError):
        await ex(ctx(headers={"x-sluice-timeout-ms": "soon"}))


async def test_concurrent_retries_are_spread_not_synchronised() -> None:
    """40 requests fail at the same moment; their retries follow full jitter in [0, 200 ms)
    instead of arriving together."""
    ex, fake = executor({"b1": [ok()]}, NO_BREAKER, sleep=asyncio.sleep)
    ex._cfg = ex._cfg.model_copy(
        update={"retry": ex._cfg.retry.model_copy(update={"base_s": 0.2, "cap_s": 0.2})}
    )
    fake.scripts = {"b1": [fail(503)] * 40 + [ok()]}
    await asyncio.gather(*(ex(ctx("backup")) for _ in range(40)))
    t0 = fake.calls[0][1]
    retry_times = sorted(t - t0 for _, t in fake.calls[40:])
    assert len(retry_times) == 40
    assert retry_times[-1] - retry_times[0] > 0.1, "retries should spread over the window"
    assert len({int(t / 0.02) for t in retry_times}) >= 5, "no single burst of retries"
