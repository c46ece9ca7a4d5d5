"""`sluice bench real`: what Sluice adds in front of real generation (llama.cpp + SmolLM2).

Streams the same requests directly to the llama.cpp server and through the gateway,
alternating one by one so both see the same machine, and reports TTFT, decode speed
(output tokens per second after the first token), total latency and the gateway's CPU per
request (records on). This is the overhead users feel on self-hosted models.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from sluice.bench.load import percentile
from sluice.bench.processes import Child, start_gateway, start_local_model, start_sim

CONFIG = Path(__file__).parents[1] / "localmodel" / "local-llm.yaml"


@dataclass
class Side:
    ttft_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    errors: int = 0

    def row(self, name: str) -> str:
        def p(values: list[float], q: float) -> str:
            return f"{percentile(values, q):.1f}" if values else "-"

        return (
            f"| {name} | {len(self.total_ms)} | {p(self.ttft_ms, 50)} | {p(self.ttft_ms, 95)} "
            f"| {p(self.total_ms, 50)} | {p(self.tokens_per_s, 50)} | {self.errors} |"
        )


async def _one(
    http: aiohttp.ClientSession, url: str, model: str, max_tokens: int, side: Side, n: int
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Tell me a short story, number {n}."}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    output = 0
    async with http.post(url + "/chat/completions", json=body) as resp:
        if resp.status != 200:
            side.errors += 1
            await resp.read()
            return
        async for line in resp.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            event = orjson.loads(line[6:])
            if first is None and any(c.get("delta", {}).get("content") for c in event["choices"]):
                first = time.perf_counter()
            if event.get("usage"):
                output = int(event["usage"]["completion_tokens"])
    end = time.perf_counter()
    if first is None:
        side.errors += 1
        return
    side.ttft_ms.append((first - start) * 1000)
    side.total_ms.append((end - start) * 1000)
    if output > 1 and end > first:
        side.tokens_per_s.append((output - 1) / (end - first))


async def _measure(
    direct_url: str, gateway: Child, count: int, max_tokens: int
) -> tuple[Side, Side, float]:
    """Pairs of calls, one each way, the order swapped every pair; each call a new prompt
    (llama.cpp's prompt cache would otherwise favour the second of a pair). Returns the
    gateway's CPU seconds over the measured calls (after warm-up)."""
    direct, through = Side(), Side()
    gateway_url = gateway.url + "/v1"
    # A new connection per call: llama.cpp closes idle keep-alive connections at its own pace,
    # and both paths then pay the same connect (a few µs on loopback).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for n in range(3):  # warm-up: page cache, encodings, connection pools
            await _one(http, direct_url, "smollm2", max_tokens, Side(), 1000 + n)
            await _one(http, gateway_url, "local", max_tokens, Side(), 2000 + n)
        cpu = gateway.cpu_seconds()
        for n in range(count):
            calls = [
                (direct_url, "smollm2", direct, 3000 + n),
                (gateway_url, "local", through, 4000 + n),
            ]
            for url, model, side, seed in calls if n % 2 == 0 else calls[::-1]:
                await _one(http, url, model, max_tokens, side, seed)
        cpu = gateway.cpu_seconds() - cpu
    return direct, through, cpu


def run(count: int, max_tokens: int) -> str:
    with tempfile.TemporaryDirectory(prefix="sluice-bench-real-") as tmp:
        logs = Path(tmp)
        model = start_local_model(logs)
        sim = start_sim(logs)
        store = f"sqlite:///{logs / 'records.db'}"
        env = {"LOCAL_LLM_URL": model.url, "SLUICE_RECORDS_URL": store}
        gateway = start_gateway(logs, sim.url, config=str(CONFIG), env=env)
        try:
            direct, through, cpu = asyncio.run(_measure(model.url, gateway, count, max_tokens))
        finally:
            gateway.stop()
            sim.stop()
            model.stop()
    calls = max(1, len(through.total_ms))
    added_ttft = percentile(through.ttft_ms, 50) - percentile(direct.ttft_ms, 50)
    added_total = percentile(through.total_ms, 50) - percentile(direct.total_ms, 50)
    return "\n".join(
        [
            f"{count} streamed requests each way, max_tokens {max_tokens}, in pairs (order "
            "swapped each pair, a new prompt each call), direct / through Sluice (records on, "
            "examples/local-llm.yaml)",
            "",
            "| path | requests | TTFT p50 ms | TTFT p95 ms | total p50 ms | decode tok/s p50 "
            "| errors |",
            "|---|---|---|---|---|---|---|",
            direct.row("direct to llama.cpp"),
            through.row("through Sluice"),
            "",
            f"added TTFT p50: {added_ttft:+.2f} ms; added total p50: {added_total:+.2f} ms; "
            f"gateway CPU per streamed request: {cpu / calls * 1e6:.0f} µs",
        ]
    )
