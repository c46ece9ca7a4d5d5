"""Backoff, retry budget, circuit breaker, balancing order and slots, in isolation."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest

from sluice.config import BreakerConfig, TimeoutConfig
from sluice.errors import RateLimitError
from sluice.providers.base import Deployment
from sluice.reliability.backoff import full_jitter, retry_delay
from sluice.reliability.breaker import BreakerState, CircuitBreaker
from sluice.reliability.budget import RetryBudget
from sluice.reliability.slots import SlotPool
from sluice.reliability.state import DeploymentState, order
from sluice.types import RateLimitInfo


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dep(name: str, weight: float = 1.0, cap: int | None = None) -> Deployment:
    return Deployment(name, "p", name, (name,), TimeoutConfig(), None, None, None, weight, cap)


def state(name: str, weight: float = 1.0, cap: int | None = None) -> DeploymentState:
    return DeploymentState(dep(name, weight, cap), BreakerConfig(), random.Random(1))


def test_full_jitter_is_bounded_and_spread() -> None:
    rng = random.Random(7)
    for attempt in range(6):
        ceiling = min(8.0, 0.25 * 2**attempt)
        waits = [full_jitter(attempt, 0.25, 8.0, rng) for _ in range(2000)]
        assert min(waits) >= 0 and max(waits) <= ceiling
        assert statistics.pstdev(waits) > ceiling / 5  # uniform: stdev ≈ 0.29 x ceiling


def test_retry_after_is_a_floor() -> None:
    rng = random.Random(1)
    for _ in range(200):
        assert retry_delay(0, 3.0, base_s=0.25, cap_s=8, rng=rng) >= 3.0
        assert retry_delay(0, None, base_s=0.25, cap_s=8, rng=rng) <= 0.25


def test_retry_budget_caps_retries_at_a_share_of_requests() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, window_s=60, min_retries=3, clock=clock)
    for _ in range(100):
        budget.record_request()
    spent = sum(budget.try_spend() for _ in range(100))
    assert spent == 20
    clock.now += 61  # the window slides past everything
    assert budget.snapshot() == {"requests": 0, "retries": 0}
    assert sum(budget.try_spend() for _ in range(10)) == 3  # the floor at low traffic


def state_of(b: CircuitBreaker) -> BreakerState:
    """Read through a call, so the type checker does not narrow a changing property."""
    return b.state


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(
        window_s=60,
        min_calls=10,
        error_rate=0.5,
        consecutive_failures=5,
        open_s=30,
        half_open_probes=1,
        clock=clock,
    )


def test_breaker_opens_on_error_rate_then_half_opens_then_closes() -> None:
    clock = Clock()
    b = breaker(clock)
    for i in range(10):  # 50% errors over 10 calls, never 5 in a row
        (b.record_failure if i % 2 else b.record_success)()
    assert state_of(b) is BreakerState.OPEN and not b.allow()
    clock.now += 29
    assert state_of(b) is BreakerState.OPEN
    clock.now += 1
    assert state_of(b) is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow()  # one probe at a time
    b.record_success()
    assert state_of(b) is BreakerState.CLOSED and b.allow()


def test_breaker_opens_on_consecutive_failures_and_reopens_on_failed_probe() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(5):
        b.record_failure()
    assert state_of(b) is BreakerState.OPEN
    clock.now += 30
    assert b.allow()
    b.record_failure()
    assert state_of(b) is BreakerState.OPEN and b.times_opened == 2


def test_breaker_stays_closed_below_min_calls() -> None:
    b = breaker(Clock())
    for _ in range(4):
        b.record_failure()
    assert state_of(b) is BreakerState.CLOSED


def test_order_least_inflight_and_open_breakers_left_out() -> None:
    a, b, c = state("a"), state("b"), state("c")
    a.in_flight, b.in_flight, c.in_flight = 5, 1, 3
    assert [s.id for s in order([a, b, c], "least_inflight", random.Random(0))] == ["b", "c", "a"]
    for _ in range(5):
        b.breaker.record_failure()
    assert [s.id for s in order([a, b, c], "least_inflight", random.Random(0))] == ["c", "a"]


def test_order_weighted_follows_weights() -> None:
    heavy, light = state("heavy", weight=9), state("light", weight=1)
    rng = random.Random(3)
    firsts = [order([heavy, light], "weighted", rng)[0].id for _ in range(5000)]
    assert 0.87 < firsts.count("heavy") / 5000 < 0.93


def test_order_latency_ewma_prefers_fast_and_measures_unknown() -> None:
    fast, slow, new = state("fast"), state("slow"), state("new")
    fast.observe_latency(100)
    slow.observe_latency(900)
    assert [s.id for s in order([slow, fast, new], "latency_ewma", random.Random(0))] == [
        "new",
        "fast",
        "slow",
    ]


def test_exhausted_provider_limits_put_a_deployment_to_rest() -> None:
    tired, fresh = state("tired"), state("fresh")
    tired.observe_ratelimit(
        RateLimitInfo(limit_requests=100, remaining_requests=1, reset_requests_s=20), headroom=0.02
    )
    fresh.observe_ratelimit(
        RateLimitInfo(limit_requests=100, remaining_requests=50, reset_requests_s=20), headroom=0.02
    )
    assert [s.id for s in order([tired, fresh], "least_inflight", random.Random(0))] == [
        "fresh",
        "tired",
    ]


async def test_slots_serve_waiters_by_priority_then_arrival() -> None:
    pool = SlotPool(max_waiting=10, max_wait_s=5)
    s = state("s", cap=1)
    assert pool.try_acquire(s) and not pool.try_acquire(s)
    served: list[str] = []

    async def wait(name: str, priority: int) -> None:
        got = await pool.wait_for_any([s], priority)
        served.append(name)
        pool.release(got)

    tasks = [
        asyncio.create_task(wait("batch", 2)),
        asyncio.create_task(wait("default", 1)),
        asyncio.create_task(wait("interactive", 0)),
    ]
    await asyncio.sleep(0.01)
    assert pool.waiting == 3
    pool.release(s)
    await asyncio.gather(*tasks)
    assert served == ["interactive", "default", "batch"]
    assert s.in_flight == 0


async def test_slots_queue_is_bounded_and_times_out_with_retry_after() -> None:
    pool = SlotPool(max_waiting=1, max_wait_s=0.05)
    s = state("s", cap=1)
    assert pool.try_acquire(s)
    first = asyncio.create_task(pool.wait_for_any([s], 1))
    await asyncio.sleep(0.01)
    with pytest.raises(RateLimitError) as full:
        await pool.wait_for_any([s], 1)
    assert full.value.code == "queue_full" and full.value.headers["retry-after"] == "1"
    with pytest.raises(RateLimitError) as late:
        await first
    assert late.value.code == "queue_timeout"
    assert s.in_flight == 1 and pool.waiting == 0
