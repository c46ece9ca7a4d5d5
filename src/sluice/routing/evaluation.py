"""How well learned-router weights agree with labels: `sluice route evaluate` and training.

Reported at one threshold: agreement, the confusion matrix, the two shares the knob trades
(strong-needed prompts sent cheap; simple prompts sent cheap), ROC AUC (threshold-free),
and calibration — ten probability bins with the predicted and observed strong rates and
their gap (expected calibration error).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def report(probs: F64, labels: F64, threshold: float) -> dict[str, Any]:
    strong = labels == 1
    to_strong = probs >= threshold
    n_strong, n_simple = int(strong.sum()), int((~strong).sum())
    confusion = {
        "strong_needed": {"strong": int((strong & to_strong).sum()),
                          "cheap": int((strong & ~to_strong).sum())},
        "simple": {"strong": int((~strong & to_strong).sum()),
                   "cheap": int((~strong & ~to_strong).sum())},
    }  # fmt: skip
    return {
        "rows": len(labels),
        "threshold": threshold,
        "agreement": float((to_strong == strong).mean()) if len(labels) else None,
        "confusion": confusion,
        "strong_to_cheap": confusion["strong_needed"]["cheap"] / n_strong if n_strong else None,
        "simple_to_cheap": confusion["simple"]["cheap"] / n_simple if n_simple else None,
        "auc": auc(probs, labels),
        "calibration": calibration(probs, labels),
    }


def auc(probs: F64, labels: F64) -> float | None:
    """Probability that a random strong-needed row scores above a random simple one."""
    pos, neg = probs[labels == 1], probs[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    all_probs = np.concatenate([pos, neg])
    for value in np.unique(all_probs):  # average ranks of ties
        tied = all_probs == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def calibration(probs: F64, labels: F64, bins: int = 10) -> dict[str, Any]:
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (probs >= lo) & ((probs < hi) if hi < 1 else (probs <= hi))
        n = int(inside.sum())
        if n == 0:
            continue
        predicted, observed = float(probs[inside].mean()), float(labels[inside].mean())
        ece += n / len(probs) * abs(predicted - observed)
        rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": n, "predicted": predicted,
                     "observed": observed})  # fmt: skip
    return {"bins": rows, "ece": ece}


def render(title: str, rep: dict[str, Any]) -> str:
    hard, easy = rep["confusion"]["strong_needed"], rep["confusion"]["simple"]
    lines = [
        f"{title}: {rep['rows']} rows, threshold {rep['threshold']:.4f}",
        f"  agreement {_pct(rep['agreement'])}, ROC AUC {_num(rep['auc'])}",
        f"  strong-needed sent cheap {_pct(rep['strong_to_cheap'])} "
        f"({hard['cheap']} of {hard['cheap'] + hard['strong']}); "
        f"simple sent cheap {_pct(rep['simple_to_cheap'])} "
        f"({easy['cheap']} of {easy['cheap'] + easy['strong']})",
        "  confusion (label -> pick):   cheap  strong",
        f"    strong-needed           {hard['cheap']:7} {hard['strong']:7}",
        f"    simple                  {easy['cheap']:7} {easy['strong']:7}",
        f"  calibration (ECE {rep['calibration']['ece']:.3f}): bin  n  predicted  observed",
    ]
    for b in rep["calibration"]["bins"]:
        lines.append(f"    {b['bin']}  {b['n']:5}  {b['predicted']:.3f}  {b['observed']:.3f}")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
