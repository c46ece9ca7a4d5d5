"""What Sluice knows about each deployment right now: health, load, latency, limits."""

from __future__ import annotations

import random
import time

from sluice.config import BreakerConfig, LoadBalancing
from sluice.providers.base import Deployment
from sluice.reliability.breaker import CircuitBreaker
from sluice.types import RateLimitInfo

_EWMA_ALPHA = 0.2


class DeploymentState:
    __slots__ = ("breaker", "cooldown_until", "dep", "ewma_ms", "in_flight", "rng")

    def __init__(self, dep: Deployment, breaker: BreakerConfig, rng: random.Random) -> None:
        self.dep = dep
        never = 2**31  # a switched-off breaker never trips
        self.breaker = CircuitBreaker(
            window_s=breaker.window_s,
            min_calls=breaker.min_calls if breaker.enabled else never,
            error_rate=breaker.error_rate,
            consecutive_failures=breaker.consecutive_failures if breaker.enabled else never,
            open_s=breaker.open_s,
            half_open_probes=breaker.half_open_probes,
        )
        self.in_flight = 0
        self.ewma_ms: float | None = None
        self.cooldown_until = 0.0  # resting on the provider's word (429, exhausted limits)
        self.rng = rng

    @property
    def id(self) -> str:
        return self.dep.id

    def has_slot(self) -> bool:
        cap = self.dep.max_concurrency
        return cap is None or self.in_flight < cap

    def resting(self, now: float) -> bool:
        return now < self.cooldown_until

    def rest_until(self, until: float) -> None:
        self.cooldown_until = max(self.cooldown_until, until)

    def observe_latency(self, ms: float) -> None:
        self.ewma_ms = (
            ms if self.ewma_ms is None else (_EWMA_ALPHA * ms + (1 - _EWMA_ALPHA) * self.ewma_ms)
        )

    def observe_ratelimit(self, info: RateLimitInfo | None, headroom: float) -> None:
        """Slow down before the 429: rest when the provider says we are nearly out."""
        if info is None:
            return
        now = time.monotonic()
        for limit, remaining, reset in (
            (info.limit_requests, info.remaining_requests, info.reset_requests_s),
            (info.limit_tokens, info.remaining_tokens, info.reset_tokens_s),
        ):
            if limit and remaining is not None and reset and remaining <= headroom * limit:
                self.rest_until(now + reset)


def order(
    states: list[DeploymentState],
    strategy: LoadBalancing,
    rng: random.Random,
    *,
    panic: bool = False,
) -> list[DeploymentState]:
    """Candidates in the order to try them, by strategy. Deployments with an open breaker
    are left out — in panic (too little of the plan healthy) they come last instead."""
    live = _ranked([s for s in states if s.breaker.available()], strategy, rng)
    if not panic:
        return live
    ejected = [s for s in states if not s.breaker.available()]
    ejected.sort(key=lambda s: s.breaker.remaining_open_s())  # the soonest back first
    return live + ejected


def _ranked(
    live: list[DeploymentState], strategy: LoadBalancing, rng: random.Random
) -> list[DeploymentState]:
    if len(live) <= 1:
        return live
    if strategy == "weighted":
        # Efraimidis-Spirakis: a weighted random permutation in one sort.
        keys = {s.id: rng.random() ** (1.0 / s.dep.weight) for s in live}
        ranked = sorted(live, key=lambda s: -keys[s.id])
    elif strategy == "latency_ewma":
        # Unknown latency first, so a new deployment gets measured.
        ranked = sorted(live, key=lambda s: (s.ewma_ms or 0.0, rng.random()))
    else:
        ranked = sorted(live, key=lambda s: (s.in_flight / s.dep.weight, rng.random()))
    return ranked
