"""`sluice bench semantic-cache`: how often a semantic cache would serve a wrong answer, and
what one lookup costs.

Quality, on a labelled pair file (JSONL: a, b, label 1 = same answer / 0 = different, kind):
the cache holds `a`, a request `b` arrives; it is served when cosine(a, b) >= threshold and,
with the guard, `contrast(a, b)` finds no difference. Per threshold, with and without guard:
precision (served pairs that were paraphrases), recall (paraphrases served) and false-hit
rate (label-0 pairs served: wrong answers handed out).

Latency, on one CPU core: a `VectorIndex` filled to `entries` (random unit vectors plus the
real `a` vectors) and one lookup = embed the query + exact search + guard on the candidates.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.index import VectorIndex
from sluice.embed import Embedder

KINDS = ("paraphrase", "number", "entity", "date", "negation", "direction", "unrelated")
_SCOPE = "bench"
LATENCY_THRESHOLD = 0.95  # the default cache threshold; lookups at it are timed


class PairFileError(ValueError):
    """The pair file is missing, empty or has a malformed line (the message names it)."""


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    label: int
    kind: str
    domain: str = ""


@dataclass(frozen=True, slots=True)
class ScoredPair:
    pair: Pair
    cosine: float
    refusal: str | None  # the guard's reason, None when it lets the pair through


@dataclass(frozen=True, slots=True)
class QualityRow:
    threshold: float
    guard: bool
    served: int
    true_hits: int
    false_hits: int
    precision: float | None  # None when nothing is served
    recall: float
    false_hit_rate: float
    false_hits_by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Latency:
    entries: int
    lookups: int
    p50_ms: float
    p99_ms: float
    embed_p50_ms: float
    search_p50_ms: float
    index_mb: float
    search: str  # "exact" or "ann>=N" (HNSW candidates in scopes of N+ entries)


def load_pairs(path: str | Path) -> list[Pair]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PairFileError(f"cannot read {path}: {exc.strerror}") from exc
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pair = Pair(str(row["a"]), str(row["b"]), int(row["label"]), str(row["kind"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise PairFileError(f"{path}:{number}: expected a, b, label, kind ({exc})") from exc
        if pair.label not in (0, 1) or pair.kind not in KINDS:
            raise PairFileError(f"{path}:{number}: label must be 0/1, kind one of {KINDS}")
        pairs.append(Pair(pair.a, pair.b, pair.label, pair.kind, str(row.get("domain", ""))))
    if not pairs:
        raise PairFileError(f"{path} holds no pairs")
    return pairs


def score_pairs(pairs: list[Pair], embedder: Embedder) -> list[ScoredPair]:
    a = embedder.embed_sync([p.a for p in pairs])
    b = embedder.embed_sync([p.b for p in pairs])
    cosines = (a * b).sum(axis=1)
    return [
        ScoredPair(p, float(c), contrast(p.a, p.b)) for p, c in zip(pairs, cosines, strict=True)
    ]


def quality(scored: list[ScoredPair], threshold: float, guard: bool) -> QualityRow:
    """Pure: the cache stores `a` and is asked `b`; count what it would serve."""
    served = [s for s in scored if s.cosine >= threshold and not (guard and s.refusal)]
    true_hits = sum(s.pair.label for s in served)
    false = [s for s in served if s.pair.label == 0]
    positives = sum(s.pair.label for s in scored)
    negatives = len(scored) - positives
    return QualityRow(
        threshold=threshold,
        guard=guard,
        served=len(served),
        true_hits=true_hits,
        false_hits=len(false),
        precision=true_hits / len(served) if served else None,
        recall=true_hits / positives if positives else 0.0,
        false_hit_rate=len(false) / negatives if negatives else 0.0,
        false_hits_by_kind=dict(Counter(s.pair.kind for s in false)),
    )


@contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to one CPU for the measurement (Linux), restoring it afterwards."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def fill_index(
    embedder: Embedder, stored: list[str], entries: int, ann_min_entries: int | None = None
) -> VectorIndex:
    """An index of `entries` rows: the real stored texts plus random unit vectors."""
    index = VectorIndex(
        embedder.dim, max_entries=max(entries, len(stored)), ann_min_entries=ann_min_entries
    )
    rng = np.random.default_rng(0)
    far = time.time() + 86_400
    filler = max(0, entries - len(stored))
    for start in range(0, filler, 10_000):
        block = rng.standard_normal((min(10_000, filler - start), embedder.dim), np.float32)
        for offset, vector in enumerate(block):
            index.add(_SCOPE, f"random-{start + offset}", vector, far)
    for i, vector in enumerate(embedder.embed_sync(stored)):
        index.add(_SCOPE, f"stored-{i}", vector, far)
    return index


def measure_latency(
    embedder: Embedder,
    pairs: list[Pair],
    entries: int,
    lookups: int,
    ann_min_entries: int | None = None,
) -> Latency:
    """Per lookup: embed the query, search the index, run the guard on each candidate."""
    stored = [p.a for p in pairs]
    index = fill_index(embedder, stored, entries, ann_min_entries)
    queries = [p.b for p in pairs]
    random.Random(1).shuffle(queries)
    embedder.embed_sync(queries[:3])  # warm up (first-call allocations)
    totals, embeds, searches = [], [], []
    with one_core():
        for n in range(lookups):
            query = queries[n % len(queries)]
            started = time.perf_counter()
            vector = embedder.embed_sync([query])[0]
            embedded = time.perf_counter()
            hits = index.search(_SCOPE, vector, LATENCY_THRESHOLD, k=5)
            searched = time.perf_counter()
            for entry_id, _ in hits:
                if entry_id.startswith("stored-"):
                    contrast(stored[int(entry_id[7:])], query)
            done = time.perf_counter()
            totals.append(done - started)
            embeds.append(embedded - started)
            searches.append(searched - embedded)
    return Latency(
        entries=len(index),
        lookups=lookups,
        p50_ms=_ms(totals, 50),
        p99_ms=_ms(totals, 99),
        embed_p50_ms=_ms(embeds, 50),
        search_p50_ms=_ms(searches, 50),
        index_mb=round(index.nbytes / 1e6, 1),
        search="exact" if ann_min_entries is None else f"ann>={ann_min_entries}",
    )


def _ms(samples: list[float], q: int) -> float:
    return round(float(np.percentile(samples, q)) * 1000, 2)


def run(
    pairs_path: str,
    entries: int,
    thresholds: list[float],
    as_json: bool,
    embedder: Embedder | None = None,
    lookups: int = 300,
    ann_min_entries: int | None = None,
) -> str:
    if embedder is None:
        from sluice.embed import get_embedder

        embedder = get_embedder()
    pairs = load_pairs(pairs_path)
    scored = score_pairs(pairs, embedder)
    rows = [quality(scored, t, guard) for t in thresholds for guard in (False, True)]
    latency = (
        measure_latency(embedder, pairs, entries, lookups, ann_min_entries) if lookups else None
    )
    summary = {
        "pairs": len(pairs),
        "positives": sum(p.label for p in pairs),
        "negatives": sum(1 - p.label for p in pairs),
        "negatives_by_kind": dict(Counter(p.kind for p in pairs if p.label == 0)),
        "cosine_median": _medians(scored),
        "guard_passes": {
            "paraphrase": _share([s.refusal is None for s in scored if s.pair.label == 1]),
            "negative": _share([s.refusal is None for s in scored if s.pair.label == 0]),
        },
        "rows": [asdict(r) for r in rows],
        "latency": asdict(latency) if latency else None,
    }
    return json.dumps(summary, indent=2) if as_json else _table(summary, rows, latency)


def _medians(scored: list[ScoredPair]) -> dict[str, float]:
    by_kind: dict[str, list[float]] = {}
    for s in scored:
        by_kind.setdefault(s.pair.kind, []).append(s.cosine)
    return {k: round(float(np.median(v)), 3) for k, v in sorted(by_kind.items())}


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else 0.0


def _table(summary: dict[str, object], rows: list[QualityRow], latency: Latency | None) -> str:
    out = [
        f"pairs: {summary['pairs']} ({summary['positives']} paraphrases, "
        f"{summary['negatives']} negatives: {summary['negatives_by_kind']})",
        f"median cosine by kind: {summary['cosine_median']}",
        f"guard lets through: {summary['guard_passes']}",
        "",
        f"{'threshold':>9}  {'guard':>5}  {'served':>6}  {'precision':>9}  {'recall':>6}  "
        f"{'false-hit rate':>14}  false hits by kind",
    ]
    for r in rows:
        precision = f"{r.precision:.3f}" if r.precision is not None else "-"
        out.append(
            f"{r.threshold:>9.2f}  {'on' if r.guard else 'off':>5}  {r.served:>6}  "
            f"{precision:>9}  {r.recall:>6.3f}  {r.false_hit_rate:>14.2%}  "
            f"{r.false_hits_by_kind or ''}"
        )
    if latency:
        out += [
            "",
            f"lookup on one core, {latency.entries} entries ({latency.index_mb} MB index, "
            f"{latency.search} search), "
            f"{latency.lookups} lookups: p50 {latency.p50_ms} ms, p99 {latency.p99_ms} ms "
            f"(embed p50 {latency.embed_p50_ms} ms, search p50 {latency.search_p50_ms} ms)",
        ]
    return "\n".join(out)
