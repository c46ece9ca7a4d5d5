"""`sluice bench semantic-cache`: what the cache serves on a labelled pair file, before (v1:
cosine >= 0.95 + contrast guard) and after (v2: normalized tier, guard, calibrated verifier),
and what one lookup costs on one core.

Quality: the cache holds `a`, `b` arrives. Reported per rule: share of paraphrases served
(identical/trivial and reworded apart), share of look-alikes served (hard negatives: one
number, name, date, negation, direction, ... differs), share of all negatives served, and
the normalized tier's own share. Latency: embed `b` + exact search of a `VectorIndex` of
`entries` vectors (random plus the real ones) + guard + verifier on the top candidates.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import numpy as np

from sluice.cache.semantic.calibration import threshold_for
from sluice.cache.semantic.config import DEFAULT_MIN_SIMILARITY, SemanticCacheConfig
from sluice.cache.semantic.decision import NEAR_FLOOR, decide_many
from sluice.cache.semantic.evaluate import Row, cosines, decide_rows, load_rows, summarize
from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.index import VectorIndex
from sluice.cache.semantic.verifier import ModelCard, PairVerifier, get_verifier

V1_THRESHOLD = 0.95


def quality(rows: list[Row], sims: list[float], rate: float) -> dict[str, Any]:
    card = ModelCard.load()
    threshold = threshold_for(card, rate)
    verifier = get_verifier()
    memo: dict[tuple[str, str], float] = {}

    def scorer(pairs: list[tuple[str, str]]) -> list[float]:  # both v2 rows, one model run
        todo = [p for p in pairs if p not in memo]
        memo.update(zip(todo, verifier.pair_scores(todo), strict=True))
        return [memo[p] for p in pairs]

    before = [
        s >= V1_THRESHOLD and contrast(r.b, r.a) is None for r, s in zip(rows, sims, strict=True)
    ]
    verdicts = decide_rows(rows, sims, scorer, threshold, DEFAULT_MIN_SIMILARITY, contrast)
    after = [v.serve for v in verdicts]
    without = decide_rows(rows, sims, scorer, threshold, DEFAULT_MIN_SIMILARITY, contrast, False)
    normalized = [v.tier == "normalized" for v in verdicts]
    return {
        "target_false_hit_rate": rate,
        "verifier_threshold": round(threshold, 4),
        "model": {"version": card.version, "sha256": card.sha256[:16]},
        "before_v1_cosine_0.95_guard": summarize(rows, before),
        "after_v2": summarize(rows, after),
        "normalized_tier_only": summarize(rows, normalized),
        "v2_without_near_verbatim": summarize(rows, [v.serve for v in without]),
    }


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * q))], 2)


def latency(
    rows: list[Row], entries: int, lookups: int, rate: float, seed: int = 3
) -> dict[str, float]:
    """Embed + search + screen + verify for `lookups` random questions, one thread each, with
    the default candidate count; the parts are timed too (verify: lookups that ran it)."""
    from sluice.embed import get_embedder

    embedder = get_embedder()
    verifier = PairVerifier(threads=1)
    threshold = threshold_for(ModelCard.load(), rate)
    index = VectorIndex(384, entries + len(rows) + 1)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((entries, 384)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    for i, vector in enumerate(noise):
        index.add("bench", f"n{i}", vector, float("inf"))
    stored = {r.a for r in rows}
    texts = sorted(stored)
    vectors = np.concatenate(
        [embedder.embed_sync(texts[i : i + 64]) for i in range(0, len(texts), 64)]
    )
    for i, vector in enumerate(vectors):
        index.add("bench", f"s{i}", vector, float("inf"))
    by_id = {f"s{i}": t for i, t in enumerate(texts)}
    verifier.score("warm up", "warm up")
    candidates = SemanticCacheConfig().candidates
    picks = random.Random(seed).choices(rows, k=lookups)
    took: list[float] = []
    cpu: list[float] = []  # CPU time of the process: the lookup's cost without the wait for a
    parts: dict[str, list[float]] = {"embed": [], "search": [], "verify": []}

    def timed_scores(pairs: list[tuple[str, str]]) -> list[float]:
        start = time.perf_counter()
        out = verifier.pair_scores(pairs)
        parts["verify"].append((time.perf_counter() - start) * 1000)
        return out

    for r in picks:
        start, start_cpu = time.perf_counter(), time.process_time()
        vector = embedder.embed_sync([r.b])[0]
        embedded = time.perf_counter()
        found = index.search("bench", vector, NEAR_FLOOR, candidates)
        parts["search"].append((time.perf_counter() - embedded) * 1000)
        parts["embed"].append((embedded - start) * 1000)
        triples = [(r.b, by_id.get(i, ""), s) for i, s in found if i in by_id]
        decide_many(triples, timed_scores, threshold, DEFAULT_MIN_SIMILARITY, contrast)
        took.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    verifier.close()
    out: dict[str, float] = {
        "entries": entries,
        "lookups": lookups,
        "candidates": candidates,
        "p50_ms": _p(took, 0.5),
        "p99_ms": _p(took, 0.99),
        "cpu_p50_ms": _p(cpu, 0.5),
        "cpu_p99_ms": _p(cpu, 0.99),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    for name, values in parts.items():
        if values:
            out[f"{name}_p50_ms"] = _p(values, 0.5)
    out["verified_share"] = round(len(parts["verify"]) / max(1, lookups), 3)
    return out


def run(pairs_path: str, rate: float, entries: int, lookups: int, as_json: bool) -> str:
    from sluice.embed import get_embedder

    rows = load_rows(pairs_path)
    sims = cosines(rows, get_embedder().embed_sync)
    report: dict[str, Any] = {"pairs_file": pairs_path, **quality(rows, sims, rate)}
    if lookups:
        report["latency"] = latency(rows, entries, lookups, rate)
    return json.dumps(report, indent=1) if as_json else table(report)


def table(report: dict[str, Any]) -> str:
    cols = ("paraphrases_served", "trivial_served", "reworded_served", "lookalikes_served")
    head = f"{'rule':<34}" + "".join(f"{c.replace('_served', ''):>14}" for c in cols)
    lines = [
        f"pairs: {report['pairs_file']}  target false-hit rate {report['target_false_hit_rate']}"
        f" -> verifier threshold {report['verifier_threshold']} (model {report['model']})",
        head,
    ]
    names = ("before_v1_cosine_0.95_guard", "normalized_tier_only", "v2_without_near_verbatim")
    for name in (*names, "after_v2"):
        row = report[name]
        lines.append(f"{name:<34}" + "".join(f"{row[c]:>14.1%}" for c in cols))
    after = report["after_v2"]
    lines.append(f"after_v2 all negatives served: {after['negatives_served']:.2%}")
    lines.append("after_v2 per kind (label:kind served/total): " + json.dumps(after["per_kind"]))
    if "latency" in report:
        lat = report["latency"]
        lines.append(
            f"lookup (embed + search {lat['entries']:,} + guard + verify), one core: "
            f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms over {lat['lookups']} lookups"
        )
        lines.append(
            f"  parts p50: embed {lat.get('embed_p50_ms')} ms, search {lat.get('search_p50_ms')}"
            f" ms, verify {lat.get('verify_p50_ms')} ms (on {lat['verified_share']:.0%} of"
            f" lookups, {lat['candidates']} candidates at most)"
        )
        lines.append(
            f"  CPU time a lookup (no wait for the core): p50 {lat['cpu_p50_ms']} ms, p99"
            f" {lat['cpu_p99_ms']} ms; load average {lat['load_average_1m']} at the end"
        )
    return "\n".join(lines)
