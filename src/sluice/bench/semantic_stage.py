"""`python -m sluice.bench.semantic_stage`: what the semantic cache serves, and what it costs.

1. Decisions on a labelled pair file (JSON lines `{"a", "b", "label", "kind"}`; label 1 =
   paraphrase, 0 = needs a different answer): for each pair, `a` is answered and stored,
   then `b` is asked through the real stage (MiniLM, scope, threshold, contrast guard). A hit
   on a label-1 pair is a good hit; a hit on a label-0 pair is a false hit (a wrong answer).
2. Stage latency in-process with the real embedder: a miss (embed + search + store) and a
   hit (embed + search + guard + decode), with `--entries` stored in the searched scope.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from sluice.cache.semantic.catalog import SemanticEntry
from sluice.cache.semantic.config import SemanticCacheConfig
from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.scope import scope_of
from sluice.cache.semantic.stage import SemanticCacheStage
from sluice.embed import get_embedder
from sluice.pipeline.context import CallContext, Result
from sluice.types import ChatRequest, ChatResponse, Message, TextPart


def _request(text: str) -> ChatRequest:
    return ChatRequest("gpt-4o-mini", [Message("user", [TextPart(text)])], temperature=0)


async def _upstream(ctx: CallContext) -> Result:
    return ChatResponse(id="r", model="m", parts=[TextPart("answer")], finish_reason="stop")


def _stage(threshold: float, guard: bool) -> SemanticCacheStage:
    config = SemanticCacheConfig(enabled=True, threshold=threshold, guard=guard)
    return SemanticCacheStage(config, get_embedder, guard=contrast if guard else None)


async def decisions(pairs: list[dict[str, Any]], threshold: float, guard: bool) -> dict[str, Any]:
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for pair in pairs:
        stage = _stage(threshold, guard)  # a fresh cache per pair
        await stage(CallContext(_request(pair["a"])), _upstream)
        ctx = CallContext(_request(pair["b"]))
        await stage(ctx, _upstream)
        kind = "paraphrase" if pair["label"] == 1 else pair["kind"]
        totals[kind] += 1
        hits[kind] += ctx.cache_status == "semantic"
    negatives = sum(v for k, v in totals.items() if k != "paraphrase")
    false_hits = sum(v for k, v in hits.items() if k != "paraphrase")
    return {
        "threshold": threshold,
        "guard": guard,
        "paraphrase_hit_rate": round(hits["paraphrase"] / max(1, totals["paraphrase"]), 3),
        "false_hit_rate": round(false_hits / max(1, negatives), 3),
        "false_hits_by_kind": {k: f"{hits[k]}/{totals[k]}" for k in totals if k != "paraphrase"},
    }


async def latency(entries: int, rounds: int) -> dict[str, float]:
    stage = _stage(0.95, True)
    await stage.start()
    assert stage.catalog is not None
    req = _request("How can I cancel my subscription?")
    scope = scope_of(req, "default", req.model, "v1")
    rng = np.random.default_rng(0)
    for i in range(entries):
        v = rng.standard_normal(stage.catalog.dim).astype(np.float32)
        entry = SemanticEntry(
            str(i), "default", req.model, scope, f"q{i}", v / np.linalg.norm(v), b"", 0.0, 1e12
        )
        stage.catalog.add(entry)
    miss, hit = [], []
    for i in range(rounds):
        t = time.perf_counter()
        await stage(CallContext(_request(f"How do I cancel subscription number {i}?")), _upstream)
        miss.append(time.perf_counter() - t)
        t = time.perf_counter()
        ctx = CallContext(_request(f"How do I cancel subscription number {i}?"))
        await stage(ctx, _upstream)
        hit.append(time.perf_counter() - t)
        assert ctx.cache_status == "semantic"

    def ms(xs: list[float], q: float) -> float:
        return round(float(np.percentile(xs, q)) * 1000, 2)

    return {
        "entries": entries,
        "miss_p50_ms": ms(miss, 50),
        "miss_p99_ms": ms(miss, 99),
        "hit_p50_ms": ms(hit, 50),
        "hit_p99_ms": ms(hit, 99),
    }


async def main(args: argparse.Namespace, pairs: list[dict[str, Any]]) -> None:
    for threshold in args.thresholds:
        for guard in (True, False):
            print(json.dumps(await decisions(pairs, threshold, guard)))  # noqa: T201
    for entries in args.entries:
        print(json.dumps(await latency(entries, args.rounds)))  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", default="tests/data/semantic_pairs.jsonl")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.85, 0.9, 0.95])
    parser.add_argument("--entries", type=int, nargs="*", default=[0, 10_000])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    lines = Path(args.pairs).read_text().splitlines() if args.thresholds else []
    asyncio.run(main(args, [json.loads(line) for line in lines if line]))
