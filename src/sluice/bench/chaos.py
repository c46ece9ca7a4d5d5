"""`sluice bench chaos`: the issue-14 fault run, with the gateway's DEFAULT reliability.

One simulator injects faults into 30% of all calls (500, 502, 503, 529, hang, malformed,
cut, refuse) for every model; the gateway serves gpt-4o-mini with claude-haiku as its
fallback (the built-in config plus that one fallback), with default retries, breakers
(outlier detection) and mid-stream failover. Half the requests stream. Counted:

- client-visible failures: a non-200, or a stream that ends with an error event;
- truncated successes: a stream that ended like a success without its finish — must be 0;
- upstream attempts per request (the simulator's request count);
- cut streams (failed after the first byte) and the share completed seamlessly.

The simulator's `hang` lasts `hang_s` (default 2 s) rather than its 300 s default, so the
run finishes in tens of seconds; everything on the gateway side is the default.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from sluice import server
from sluice.config import SluiceConfig, default_config
from sluice.sim.config import FaultKind, SimConfig
from sluice.sim.server import start as start_sim

_RESUME_STATS = ("cut", "continued", "restarted", "completed")
FAULTS: list[FaultKind] = ["500", "502", "503", "529", "hang", "malformed", "cut", "refuse"]


@dataclass
class ChaosResult:
    requests: int = 0
    failed: int = 0
    truncated_success: int = 0
    upstream_attempts: int = 0
    streams: int = 0
    cut: int = 0
    resumed: int = 0
    completed_after_resume: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def failure_share(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    @property
    def attempts_per_request(self) -> float:
        return self.upstream_attempts / self.requests if self.requests else 0.0

    @property
    def seamless_share(self) -> float:
        return self.completed_after_resume / self.cut if self.cut else 1.0

    def summary(self) -> str:
        return (
            f"{self.requests} requests ({self.streams} streamed) in {self.seconds:.1f} s: "
            f"{self.failed} client-visible failures ({self.failure_share:.2%}), "
            f"{self.truncated_success} truncated streams reported as success, "
            f"{self.upstream_attempts} upstream attempts ({self.attempts_per_request:.2f}x), "
            f"{self.cut} streams cut after the first byte, {self.completed_after_resume} "
            f"completed seamlessly on another deployment ({self.seamless_share:.1%}); "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


def gateway_config(sim_url: str) -> SluiceConfig:
    data = default_config({"SLUICE_SIM_URL": sim_url}).model_dump()
    data["models"] = {"gpt-4o-mini": {"fallbacks": ["claude-haiku"]}}
    data["cache"]["semantic"]["enabled"] = False  # no embedding model to load
    data["observability"]["records"]["enabled"] = False
    return SluiceConfig.model_validate(data)


def _stream_outcome(raw: bytes) -> str:
    """ "ok", "error" (ended with an error event) or "truncated" (ended like a success
    without a finish reason)."""
    finished, errored = False, False
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = orjson.loads(line[6:])
        if "error" in event:
            errored = True
        for choice in event.get("choices") or []:
            finished = finished or choice.get("finish_reason") is not None
    if errored:
        return "error"
    if finished and raw.rstrip().endswith(b"data: [DONE]"):
        return "ok"
    return "truncated"


async def run_chaos(
    requests: int = 2000,
    concurrency: int = 24,
    fault_rate: float = 0.3,
    hang_s: float = 2.0,
    seed: int = 14,
) -> ChaosResult:
    sim_config = SimConfig(
        port=0, fault_rate=fault_rate, faults=list(FAULTS), hang_s=hang_s, seed=seed
    )
    sim_runner, sim_port = await start_sim(sim_config)
    sim_url = f"http://127.0.0.1:{sim_port}"
    app = server.create_app(gateway_config(sim_url))
    gw_runner, gw_port = await server.start_app(app)
    url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
    result = ChaosResult()
    queue = iter(range(requests))
    timeout = aiohttp.ClientTimeout(total=300)
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency * 2), timeout=timeout
        ) as http:

            async def worker() -> None:
                for i in queue:
                    await _one(http, url, i, result)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            result.seconds = time.perf_counter() - started
            async with http.get(sim_url + "/sim/stats") as r:
                result.upstream_attempts = (await r.json())["requests_total"]
        stats = getattr(app[server.GATEWAY], "midstream", None)
        stats = (
            stats.stats
            if stats is not None
            else {"cut": 0, "continued": 0, "restarted": 0, "completed": 0}
        )
        result.cut = stats["cut"]
        result.resumed = stats["continued"] + stats["restarted"]
        result.completed_after_resume = stats["completed"]
    finally:
        await gw_runner.cleanup()
        await sim_runner.cleanup()
    return result


async def _one(http: aiohttp.ClientSession, url: str, i: int, result: ChaosResult) -> None:
    stream = i % 2 == 1
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "max_tokens": 40,
        "stream": stream,
        "messages": [{"role": "user", "content": f"chaos question number {i}"}],
    }
    result.requests += 1
    result.streams += stream
    async with http.post(url, json=body) as resp:
        raw = await resp.read()
    result.statuses[resp.status] = result.statuses.get(resp.status, 0) + 1
    if resp.status != 200:
        result.failed += 1
        return
    if stream:
        outcome = _stream_outcome(raw)
        if outcome == "error":
            result.failed += 1
        elif outcome == "truncated":
            result.truncated_success += 1


def run(requests: int, concurrency: int, hang_s: float) -> str:
    return asyncio.run(run_chaos(requests, concurrency, hang_s=hang_s)).summary()
