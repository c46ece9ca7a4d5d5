"""Exponential backoff with full jitter, honouring what the provider asked for.

`wait = random(0, min(cap, base * 2**attempt))` spreads the retries of many concurrent
failures instead of synchronising them (AWS architecture blog, "Exponential Backoff And
Jitter"); a provider's `retry-after` is a floor: never retry sooner than it asked.
"""

from __future__ import annotations

import random


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `attempt` (0 = the first retry)."""
    return rng.uniform(0.0, min(cap_s, base_s * (2.0**attempt)))


def retry_delay(
    attempt: int,
    retry_after_s: float | None,
    *,
    base_s: float,
    cap_s: float,
    rng: random.Random,
) -> float:
    delay = full_jitter(attempt, base_s, cap_s, rng)
    if retry_after_s is not None and retry_after_s > delay:
        # A little jitter on top keeps clients that got the same retry-after apart.
        return retry_after_s + rng.uniform(0.0, min(base_s, retry_after_s * 0.1 + 0.001))
    return delay
