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
from sluice.bench.processes import start_gateway, start_local_model, start_sim

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
    direct_url: str, gateway_url: str, count: int, max_tokens: int
) -> tuple[Side, Side]:
    direct, through = Side(), Side()
    async with aiohttp.ClientSession() as http:
        for n in range(3):  # warm-up: load the model's weights into the page cache, etc.
            await _one(http, direct_url, "smollm2", max_tokens, Side(), n)
            await _one(http, gateway_url + "/v1", "local", max_tokens, Side(), n)
        for n in range(count):
            await _one(http, direct_url, "smollm2", max_tokens, direct, n)
            await _one(http, gateway_url + "/v1", "local", max_tokens, through, n)
    return direct, through


def run(count: int, max_tokens: int) -> str:
    with tempfile.TemporaryDirectory(prefix="sluice-bench-real-") as tmp:
        logs = Path(tmp)
        model = start_local_model(logs)
        sim = start_sim(logs)
        store = f"sqlite:///{logs / 'records.db'}"
        env = {"LOCAL_LLM_URL": model.url, "SLUICE_RECORDS_URL": store}
        gateway = start_gateway(logs, sim.url, config=str(CONFIG), env=env)
        try:
            cpu_before = gateway.cpu_seconds()
            direct, through = asyncio.run(_measure(model.url, gateway.url, count, max_tokens))
            cpu = gateway.cpu_seconds() - cpu_before
        finally:
            gateway.stop()
            sim.stop()
            model.stop()
    calls = len(through.total_ms) + 3
    added_ttft = percentile(through.ttft_ms, 50) - percentile(direct.ttft_ms, 50)
    added_total = percentile(through.total_ms, 50) - percentile(direct.total_ms, 50)
    return "\n".join(
        [
            f"{count} streamed requests each way, max_tokens {max_tokens}, alternating "
            "direct / through Sluice (records on, examples/local-llm.yaml)",
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
