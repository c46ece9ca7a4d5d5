"""One decision rule for "may the answer stored for `stored` be served for `question`?", used by
the stage, `sluice cache explain`, the calibration and `sluice bench semantic-cache` alike.

Tiers, cheapest first:
1. normalized — the canonical forms (`normalize.canonical`) are equal: served, no model;
2. semantic — a near-verbatim pair among the nearest candidates (`nearverbatim`, any cosine
   >= `NEAR_FLOOR`), else cosine >= `min_similarity`, the contrast guard
   (numbers, dates, entities, negation, direction, word swaps) finds no difference, and
   the pair verifier's score >= the threshold calibrated for the route's target false-hit
   rate. A near-verbatim pair (one-edit typos of non-words, a moved adverbial; it accepts
   no negative pair we have) is served without the floor, the guard or the model.

The threshold is not a raw knob: `calibration.threshold_for(card, rate)` reads it off the
verifier's scores on the calibration split's look-alikes, so that at most `rate` of them
would be served (a split of the training seeds, never the held-out test set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sluice.cache.semantic.nearverbatim import near_verbatim
from sluice.cache.semantic.normalize import canonical, without_filler

# Candidates are searched down to this cosine so that a typo that hurt the embedding
# ("caim" for "claim": 0.46) still finds its entry for the near-verbatim check; only pairs
# at or above `min_similarity` ever reach the verifier.
NEAR_FLOOR = 0.3

Guard = Callable[[str, str], "str | None"]
Scorer = Callable[[list[tuple[str, str]]], list[float]]  # verifier scores for (a, b) pairs


@dataclass(frozen=True, slots=True)
class Verdict:
    serve: bool
    tier: str | None  # "normalized" | "semantic" when served
    reason: str
    similarity: float | None = None
    score: float | None = None  # the verifier's, when it was asked
    threshold: float | None = None

    def describe(self) -> str:
        parts = [("SERVE" if self.serve else "MISS") + (f" ({self.tier})" if self.tier else "")]
        if self.similarity is not None:
            parts.append(f"cosine {self.similarity:.3f}")
        if self.score is not None:
            parts.append(f"verifier {self.score:.3f}")
        if self.threshold is not None:
            parts.append(f"threshold {self.threshold:.3f}")
        return ", ".join(parts) + f": {self.reason}"


@dataclass(frozen=True, slots=True)
class Screen:
    """The cheap part of a decision (no model): a verdict, or None when the verifier decides."""

    verdict: Verdict | None


def screen(
    question: str,
    stored: str,
    similarity: float,
    min_similarity: float,
    guard: Guard | None,
    near: bool = True,
) -> Verdict | None:
    """Decide without the verifier where possible: normalized match, near-verbatim (unless
    `near` is False: the benchmark's "without" row), floor, guard."""
    if canonical(question) == canonical(stored):
        return Verdict(True, "normalized", "same canonical form", similarity)
    # Near-verbatim before the floor (a typo can cost the embedding much: "caim"/"claim"
    # 0.46) and the guard (it reads "pyhon" as an entity, "montly" as a date); the rule
    # protects numbers, negations, dates and opposites itself.
    shape = near_verbatim(question, stored) if near else None
    if shape is not None:
        return Verdict(True, "semantic", f"near-verbatim ({shape})", similarity)
    if similarity < min_similarity:
        return Verdict(False, None, f"cosine below the floor {min_similarity}", similarity)
    reason = guard(without_filler(question), without_filler(stored)) if guard else None
    if reason is not None:
        return Verdict(False, None, f"guard: {reason}", similarity)
    return None


def verdict_from_score(similarity: float, score: float, threshold: float) -> Verdict:
    if score >= threshold:
        return Verdict(True, "semantic", "verifier: same answer", similarity, score, threshold)
    return Verdict(False, None, "verifier: different answer", similarity, score, threshold)


def decide_many(
    pairs: list[tuple[str, str, float]],
    scorer: Scorer,
    threshold: float,
    min_similarity: float,
    guard: Guard | None,
    near: bool = True,
) -> list[Verdict]:
    """Verdicts for (question, stored, cosine) triples; the verifier runs once for all."""
    verdicts: list[Verdict | None] = [
        screen(q, s, c, min_similarity, guard, near) for q, s, c in pairs
    ]
    ask = [i for i, v in enumerate(verdicts) if v is None]
    scores = scorer([(pairs[i][0], pairs[i][1]) for i in ask]) if ask else []
    for i, score in zip(ask, scores, strict=True):
        verdicts[i] = verdict_from_score(pairs[i][2], score, threshold)
    return [v for v in verdicts if v is not None]


def decision_score(v: Verdict) -> float:
    """The number the calibration ranks: 1 for a pair served without the model (normalized or
    near-verbatim), 0 for a screened-out pair, else the verifier's score."""
    if v.serve and v.score is None:
        return 1.0
    return v.score if v.score is not None else 0.0
