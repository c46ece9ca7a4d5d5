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
    fixed_pcts: dict[float, float] = field(default_factory=dict)  # from an external tool
    fixed_count: int | None = None

    @property
    def requests(self) -> int:
        return self.fixed_count if self.fixed_count is not None else len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0

    def pct(self, q: float, ttft: bool = False) -> float:
        if not ttft and q in self.fixed_pcts:
            return self.fixed_pcts[q]
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


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk_ms(text: str) -> float:
    for unit in ("us", "ms", "s", "m"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _WRK_UNITS[unit]
    return float(text)


def run_wrk(url: str, body: bytes, *, concurrency: int, seconds: float) -> LoadResult:
    """The same closed loop driven by `wrk` (C, one thread): the load generator then takes
    far less of the machine's CPU than the Python one. Percentiles come from wrk."""
    import json
    import re
    import shutil
    import subprocess
    import tempfile

    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    script = (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        out = subprocess.run(
            [
                wrk,
                "-t1",
                f"-c{concurrency}",
                f"-d{max(seconds, 1):.0f}s",
                "--latency",
                "-s",
                lua.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result = LoadResult(concurrency)
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if match:
            result.fixed_pcts[float(pct)] = _wrk_ms(match.group(1))
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if total:
        result.fixed_count = int(total.group(1))
        result.elapsed_s = _wrk_ms(total.group(2) + total.group(3)) / 1000
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result.errors = (int(bad.group(1)) if bad else 0) + (
        sum(int(g) for g in errors.groups()) if errors else 0
    )
    return result
