"""Ranking metrics with graded relevance: recall@k, MRR@k, nDCG@k (gain 2^rel - 1)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def recall_at(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents (grade ≥ 1) found in the top k."""
    relevant = [d for d, g in relevance.items() if g > 0]
    if not relevant:
        return 0.0
    top = set(ranked[:k])
    return sum(1 for d in relevant if d in top) / len(relevant)


def mrr_at(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    for i, doc in enumerate(ranked[:k], 1):
        if relevance.get(doc, 0) > 0:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    def dcg(grades: Sequence[int]) -> float:
        return float(sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(grades)))

    ideal = dcg(sorted(relevance.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([relevance.get(d, 0) for d in ranked[:k]]) / ideal


def dedupe(ids: Sequence[str]) -> list[str]:
    """Chunk hits → document ranking: each document at its first position."""
    seen: set[str] = set()
    out = []
    for doc in ids:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out
