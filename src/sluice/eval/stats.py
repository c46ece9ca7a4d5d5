"""Summary statistics for eval runs: a seeded bootstrap CI and per-target summaries."""

from __future__ import annotations

import random
from collections.abc import Sequence
from statistics import fmean

from sluice.observe.store import percentile

BOOTSTRAP_RESAMPLES = 2000
SEED = 17  # the same results always give the same interval


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float] | None:
    """The percentile-bootstrap confidence interval of the mean (None for no values). Seeded,
    so a report is reproducible."""
    if not values:
        return None
    if len(values) == 1:
        return values[0], values[0]
    rng = random.Random(SEED)
    n = len(values)
    means = sorted(fmean(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2 * 100
    low, high = percentile(means, tail), percentile(means, 100 - tail)
    assert low is not None and high is not None
    return low, high


def latency_percentiles(latencies: Sequence[float]) -> tuple[float | None, float | None]:
    ordered = sorted(latencies)
    return percentile(ordered, 50), percentile(ordered, 95)
