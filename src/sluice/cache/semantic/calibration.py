"""Turn a target false-hit rate into a verifier threshold (in the spirit of vCache).

The model card holds the decision scores (`decision.decision_score`) of every look-alike pair
in the calibration split — pairs built from a fifth of the *training* seed questions that
the verifier never trained on, and never the held-out test set. For a target rate `r` the
threshold is the lowest score at which the conformal bound (k + 1) / (n + 1) <= r holds, k
being the look-alikes at or above it: under exchangeability, a new look-alike from the same
distribution is served with probability <= r. With n ~ 1,800 look-alikes the smallest rate
the table can promise is ~0.06%; asking for less gives a threshold above every score.

The bound holds for look-alikes like the calibration ones; traffic unlike them (another
language, very long prompts) is why the held-out numbers in BENCHMARKS.md are reported too.
"""

from __future__ import annotations

import math
from functools import lru_cache

from sluice.cache.semantic.verifier import ModelCard

NEVER = 1.000001  # above every score: nothing is served semantically


def threshold_from_scores(negatives: tuple[float, ...], rate: float) -> float:
    """The lowest threshold whose conformal false-hit bound is <= `rate` (scores ascending)."""
    n = len(negatives)
    allowed = math.floor(rate * (n + 1) - 1)  # look-alikes that may sit at/above it
    if n == 0 or allowed < 0:
        return NEVER
    if allowed >= n:
        return 0.0
    highest_refused = negatives[n - allowed - 1]
    return min(NEVER, math.nextafter(highest_refused, math.inf))


@lru_cache(maxsize=64)
def _cached(card_id: int, negatives: tuple[float, ...], rate: float) -> float:
    return threshold_from_scores(negatives, rate)


def threshold_for(card: ModelCard, rate: float) -> float:
    return _cached(id(card), card.calibration_negatives, rate)


def served_share(scores: tuple[float, ...], threshold: float) -> float:
    """The share of `scores` at or above `threshold` (positives: paraphrases served)."""
    return sum(s >= threshold for s in scores) / len(scores) if scores else 0.0
