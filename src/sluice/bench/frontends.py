"""`sluice bench frontends`: the same call through each front end, on one gateway process.

Chat Completions, the Responses API with `store: false`, and with `store: true` (one SQL
write per answer into the records' SQLite file): what the third front end costs next to the
first, and what storing answers adds. Closed loop against a zero-latency simulator, caches
bypassed (`x-sluice-cache: no-store`) so every call reaches the upstream.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from sluice.bench.load import LoadResult, run_load
from sluice.bench.processes import sim_and_gateway

PROMPT = "Summarize the benefits of connection pooling for HTTP clients in two sentences."
NO_CACHE = {"x-sluice-cache": "no-store"}


@dataclass
class Row:
    name: str
    stream: bool
    result: LoadResult
    cpu_s: float

    @property
    def cpu_us(self) -> float:
        n = self.result.requests
        return self.cpu_s * 1e6 / n if n else float("nan")


def _cases(stream: bool) -> list[tuple[str, str, bytes]]:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
    resp = {"model": "gpt-4o-mini", "input": PROMPT}
    return [
        ("chat.completions", "/v1/chat/completions", orjson.dumps({**chat, "stream": stream})),
        (
            "responses store=false",
            "/v1/responses",
            orjson.dumps({**resp, "stream": stream, "store": False}),
        ),
        ("responses store=true", "/v1/responses", orjson.dumps({**resp, "stream": stream})),
    ]


async def _measure(
    url: str, cpu: Callable[[], float], concurrency: int, requests: int, rounds: int
) -> list[Row]:
    rows: list[Row] = []
    for stream in (False, True):
        for _ in range(rounds):  # interleaved, so a slow phase of the machine hits all alike
            for name, path, body in _cases(stream):
                before = cpu()
                result = await run_load(
                    url + path,
                    body,
                    concurrency=concurrency,
                    requests=requests,
                    max_seconds=60,
                    headers=NO_CACHE,
                    stream=stream,
                )
                rows.append(Row(name, stream, result, cpu() - before))
    return rows


def _format(rows: list[Row]) -> str:
    head = (
        f"{'front end':<24}{'mode':<8}{'rps':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU µs/req':>12}{'errors':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<24}{'stream' if r.stream else 'json':<8}{r.result.rps:>8.0f}"
            f"{r.result.pct(50):>9.2f}{r.result.pct(99):>9.2f}{r.cpu_us:>12.0f}{r.result.errors:>8}"
        )
    return "\n".join(lines)


def run(concurrency: int, requests: int, rounds: int) -> str:
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        env = {"SLUICE_RECORDS_URL": f"sqlite:///{Path(tmp) / 'sluice.db'}"}
        with sim_and_gateway(Path(tmp), env=env) as (_, gateway):
            rows = asyncio.run(
                _measure(gateway.url, gateway.cpu_seconds, concurrency, requests, rounds)
            )
    return (
        f"one gateway process, simulator at zero latency, concurrency {concurrency}, "
        f"{requests} requests per row, records on (SQLite)\n" + _format(rows)
    )
