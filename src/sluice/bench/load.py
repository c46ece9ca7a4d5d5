"""A closed-loop HTTP load generator: C workers, each sending its next request as soon as
the previous one finishes, for a fixed request count or time, whichever comes first."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class LoadResult:
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    ttfts_ms: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0

    def pct(self, q: float, ttft: bool = False) -> float:
        return percentile(self.ttfts_ms if ttft else self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(int(q * 10) - 1, 998)]


async def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int,
    max_seconds: float,
    headers: dict[str, str] | None = None,
    stream: bool = False,
    warmup: int = 50,
) -> LoadResult:
    result = LoadResult(concurrency)
    send_headers = {"content-type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(record: bool) -> None:
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=send_headers) as resp:
                    if stream:
                        first = True
                        async for _ in resp.content.iter_any():
                            if first and record:
                                result.ttfts_ms.append((time.perf_counter() - start) * 1000)
                            first = False
                    else:
                        await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok = False
            if record:
                if ok:
                    result.latencies_ms.append((time.perf_counter() - start) * 1000)
                else:
                    result.errors += 1

        await asyncio.gather(*(one(False) for _ in range(min(warmup, requests))))
        remaining = requests
        deadline = time.perf_counter() + max_seconds

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                await one(True)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result
