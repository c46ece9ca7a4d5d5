"""What the gate in front of the verifier costs and saves (training side only, issue 21).

    python -m sluice.cache.semantic.training.gate --data tests/data/semcache \
        --splits calibration train2

For every pair of the splits (never held-out): the cosine, whether the normalized or
near-verbatim tier serves it, *every* contrast-guard rule that fires (the guard itself stops
at the first) and the verifier's raw score (cosine >= `NEAR_FLOOR`, the lowest floor a
candidate search reaches). Then, for cosine floors 0.5 .. 0.3 and the guard without each
rule in turn (and without any), the threshold is recalibrated on the calibration split's
negatives exactly as `calibrate.py` does and the reworded paraphrases and look-alikes served
are counted, on calibration and on the other splits (thresholds from calibration). Also: per
rule, how many of the pairs it alone vetoes the verifier would have passed anyway.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sluice.cache.semantic import guard as g
from sluice.cache.semantic.calibration import threshold_from_scores
from sluice.cache.semantic.decision import NEAR_FLOOR
from sluice.cache.semantic.evaluate import HARD_KINDS_EXCLUDED, TRIVIAL_KINDS, cosines, load_rows
from sluice.cache.semantic.nearverbatim import near_verbatim
from sluice.cache.semantic.normalize import canonical, without_filler
from sluice.cache.semantic.swap import word_swap
from sluice.cache.semantic.verifier import PairVerifier
from sluice.embed import get_embedder

RULES = ("negation", "prefix", "date", "number", "entity", "opposite", "swapped", "wordswap")
FLOORS = (0.5, 0.45, 0.4, 0.35, 0.3)
RATES = (0.005, 0.01)


@dataclass(frozen=True, slots=True)
class Pair:
    label: int
    kind: str
    cosine: float
    served_early: bool  # normalized or near-verbatim: served before floor, guard, verifier
    rules: frozenset[str]  # every guard rule that fires
    score: float | None  # the verifier's, when cosine >= NEAR_FLOOR

    @property
    def reworded(self) -> bool:
        return self.label == 1 and self.kind not in TRIVIAL_KINDS

    @property
    def lookalike(self) -> bool:
        return self.label == 0 and self.kind not in HARD_KINDS_EXCLUDED


def rules_firing(a: str, b: str) -> frozenset[str]:
    """The rules of `guard.contrast`, each checked (contrast returns the first that fires)."""
    fa, fb = g._features(a), g._features(b)
    checks = {
        "negation": fa.negated != fb.negated,
        "prefix": bool(g._negated_by_prefix(fa, fb) or g._negated_by_prefix(fb, fa)),
        "date": fa.dates != fb.dates,
        "number": fa.numbers != fb.numbers,
        "entity": bool(g._missing(fa.entities, fb.vocab) | g._missing(fb.entities, fa.vocab)),
        "opposite": g._opposite(fa, fb) is not None,
        "swapped": bool(g._swapped(fa, fb) or g._swapped(fb, fa)),
        "wordswap": word_swap(a, b) is not None,
    }
    return frozenset(rule for rule, fired in checks.items() if fired)


def score_split(path: Path, verifier: PairVerifier) -> list[Pair]:
    rows = load_rows(path)
    sims = cosines(rows, get_embedder().embed_sync)
    early, rules = [], []
    for r in rows:  # the cache holds `a`, `b` arrives (as in evaluate.decide_rows)
        served = canonical(r.b) == canonical(r.a) or near_verbatim(r.b, r.a) is not None
        early.append(served)
        rules.append(
            frozenset() if served else rules_firing(without_filler(r.b), without_filler(r.a))
        )
    ask = [i for i, s in enumerate(sims) if not early[i] and s >= NEAR_FLOOR]
    raw = verifier.pair_scores([(rows[i].b, rows[i].a) for i in ask])
    scores: dict[int, float] = dict(zip(ask, raw, strict=True))
    return [
        Pair(r.label, r.kind, s, early[i], rules[i], scores.get(i))
        for i, (r, s) in enumerate(zip(rows, sims, strict=True))
    ]


def decision(p: Pair, floor: float, veto: frozenset[str]) -> float:
    """`decision.decision_score` under this gate (rounded like the card's scores)."""
    if p.served_early:
        return 1.0
    if p.cosine < floor or p.rules & veto or p.score is None:
        return 0.0
    return round(p.score, 5)


def served(pairs: Iterable[Pair], floor: float, veto: frozenset[str], threshold: float) -> str:
    chosen = list(pairs)
    hits = sum(decision(p, floor, veto) >= threshold for p in chosen)
    return f"{hits}/{len(chosen)}"


def gate_table(splits: dict[str, list[Pair]], out: list[str]) -> None:
    cal = splits["calibration"]
    gates = [("all rules", frozenset(RULES))]
    gates += [(f"-{rule}", frozenset(RULES) - {rule}) for rule in RULES]
    gates.append(("no guard", frozenset()))
    for rate in RATES:
        out.append(
            f"\ntarget {rate}: gate, threshold, then per split reworded / look-alikes served"
        )
        for floor in FLOORS:
            for name, veto in gates:
                negatives = tuple(sorted(decision(p, floor, veto) for p in cal if not p.label))
                threshold = threshold_from_scores(negatives, rate)
                cells = [
                    f"{split} {served((p for p in ps if p.reworded), floor, veto, threshold)}"
                    f" / {served((p for p in ps if p.lookalike), floor, veto, threshold)}"
                    for split, ps in splits.items()
                ]
                out.append(f"floor {floor} {name:10s} {threshold:.5f}  " + "  ".join(cells))


def rule_audit(
    splits: dict[str, list[Pair]], thresholds: dict[float, float], out: list[str]
) -> None:
    for split, ps in splits.items():
        out.append(
            f"\n{split}: pairs each rule alone vetoes (cosine >= {NEAR_FLOOR}), and how many"
            " the verifier would pass at each threshold: reworded, negatives"
        )
        for rule in RULES:
            alone = [
                p for p in ps if not p.served_early and p.score is not None and p.rules == {rule}
            ]
            cells = []
            for rate, t in thresholds.items():
                rew = [p for p in alone if p.reworded]
                neg = [p for p in alone if not p.label]
                rew_hi = sum(p.score is not None and p.score >= t for p in rew)
                neg_hi = sum(p.score is not None and p.score >= t for p in neg)
                cells.append(f"@{rate}: {rew_hi}/{len(rew)}, {neg_hi}/{len(neg)}")
            out.append(f"  {rule:9s} " + "  ".join(cells))
        for floor in (0.5, 0.4, 0.3):
            reach = sum(not p.served_early and p.cosine >= floor and not p.rules for p in ps)
            out.append(f"  floor {floor}: {reach}/{len(ps)} pairs reach the verifier")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="tests/data/semcache")
    ap.add_argument("--splits", nargs="+", default=["calibration", "train2"])
    ap.add_argument("--model", default=None, help="verifier ONNX file (default: the shipped one)")
    args = ap.parse_args(argv)
    if "calibration" not in args.splits or "heldout" in args.splits:
        raise SystemExit("--splits: calibration is needed; held-out is never used here")
    verifier = PairVerifier(Path(args.model) if args.model else None)
    splits = {
        name: score_split(Path(args.data) / f"{name}.jsonl", verifier) for name in args.splits
    }
    out: list[str] = []
    gate_table(splits, out)
    negatives = tuple(
        sorted(decision(p, 0.5, frozenset(RULES)) for p in splits["calibration"] if not p.label)
    )
    rule_audit(splits, {r: threshold_from_scores(negatives, r) for r in RATES}, out)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
