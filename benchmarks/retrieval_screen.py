"""Document screen over the stdlib-docstring retrieval corpus (benign documents): flag rate and
per-chunk latency, cold (uncached) and warm (cached)."""

import asyncio, json, time, statistics, sys
from sluice.guardrails.config import GuardrailsConfig
from sluice.guardrails.stage import load_injection_detector
from sluice.retrieval.chunking import chunk_text
from sluice.stages.retrieval_screen import InjectionScreen


async def main() -> None:
    docs = [json.loads(l) for l in open("tests/data/retrieval/corpus.jsonl")]
    chunks = [c.text for d in docs for c in chunk_text(d["text"], 400, 0)]
    cfg = GuardrailsConfig.model_validate({"injection": {"mode": "flag"}})
    detector = load_injection_detector()
    screen = InjectionScreen(cfg, detector)
    cold, flagged, rules = [], 0, {}
    for text in chunks:
        t = time.perf_counter()
        v = (await screen.check("m", [text]))[0]
        cold.append((time.perf_counter() - t) * 1000)
        if v.flagged:
            flagged += 1
            rules[v.rule] = rules.get(v.rule, 0) + 1
    warm = []
    for i in range(0, 800, 8):
        batch = chunks[i : i + 8]
        t = time.perf_counter()
        await screen.check("m", batch)
        warm.append((time.perf_counter() - t) * 1000)
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
    print(
        f"chunks={len(chunks)} docs={len(docs)} flagged={flagged} ({100 * flagged / len(chunks):.2f}%) rules={rules}"
    )
    print(
        f"cold per chunk: p50={q(cold, 0.5):.2f} ms p99={q(cold, 0.99):.2f} ms mean={statistics.mean(cold):.2f}"
    )
    print(
        f"warm (cached) per 8-chunk context: p50={q(warm, 0.5):.3f} ms p99={q(warm, 0.99):.3f} ms"
    )


asyncio.run(main())
