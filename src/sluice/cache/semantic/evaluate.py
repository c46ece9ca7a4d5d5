"""Run the cache's decision rule over a labelled pair file: what would be served?

Used by the calibration (`training/calibrate.py`) and `sluice bench semantic-cache`. For each
pair the cache holds `a` and `b` arrives: cosine from the shared MiniLM embedder, then
`decision.decide_many` (normalized tier, floor, guard, verifier at the threshold).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sluice.cache.semantic.decision import Guard, Scorer, Verdict, decide_many

HARD_KINDS_EXCLUDED = frozenset({"topic", "unrelated"})  # negatives that are not look-alikes
TRIVIAL_KINDS = frozenset({"identical", "trivial"})


@dataclass(frozen=True, slots=True)
class Row:
    a: str
    b: str
    label: int
    kind: str


def load_rows(path: str | Path) -> list[Row]:
    rows = []
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rows.append(Row(str(d["a"]), str(d["b"]), int(d["label"]), str(d.get("kind", ""))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a pair line ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: no pairs")
    return rows


def cosines(rows: list[Row], embed: Any) -> list[float]:
    """cosine(a, b) per row; `embed(texts) -> unit vectors` (e.g. `embed_sync`)."""
    texts = sorted({t for r in rows for t in (r.a, r.b)})
    at = {t: i for i, t in enumerate(texts)}
    vectors = np.concatenate([embed(texts[i : i + 64]) for i in range(0, len(texts), 64)])
    return [float(vectors[at[r.a]] @ vectors[at[r.b]]) for r in rows]


def decide_rows(
    rows: list[Row],
    sims: list[float],
    scorer: Scorer,
    threshold: float,
    min_similarity: float,
    guard: Guard | None,
    near: bool = True,
) -> list[Verdict]:
    return decide_many(
        [(r.b, r.a, s) for r, s in zip(rows, sims, strict=True)],
        scorer,
        threshold,
        min_similarity,
        guard,
        near,
    )


def summarize(rows: list[Row], served: list[bool]) -> dict[str, Any]:
    """Shares served: paraphrases, look-alikes (hard negatives), all negatives, per kind."""
    by_kind: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for r, s in zip(rows, served, strict=True):
        key = f"{r.label}:{r.kind}"
        by_kind[key] += 1
        hits[key] += s

    def share(pred: Any) -> float:
        picked = [s for r, s in zip(rows, served, strict=True) if pred(r)]
        return round(sum(picked) / len(picked), 4) if picked else 0.0

    return {
        "pairs": len(rows),
        "paraphrases_served": share(lambda r: r.label == 1),
        "trivial_served": share(lambda r: r.label == 1 and r.kind in TRIVIAL_KINDS),
        "reworded_served": share(lambda r: r.label == 1 and r.kind not in TRIVIAL_KINDS),
        "lookalikes_served": share(lambda r: r.label == 0 and r.kind not in HARD_KINDS_EXCLUDED),
        "negatives_served": share(lambda r: r.label == 0),
        "per_kind": {k: f"{hits[k]}/{n}" for k, n in sorted(by_kind.items())},
    }
