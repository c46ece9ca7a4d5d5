"""Chaos: a flaky primary (30% faults: 429, 5xx, hangs, malformed bodies) and a healthy
fallback on another provider kind, real HTTP everywhere, numbers asserted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from sluice import server
from sluice.bench.load import percentile
from sluice.config import parse_config
from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim

pytestmark = pytest.mark.chaos

GATEWAY_CONFIG = """
governance: {{auth: {{enabled: false}}}}
providers:
  flaky: {{kind: openai, api_base: "{flaky}/v1"}}
  healthy: {{kind: anthropic, api_base: "{healthy}"}}
deployments:
  - id: primary
    provider: flaky
    model: gpt-4o-mini
    serves: [chat]
    timeouts: {{connect_s: 1, ttft_s: 0.3, idle_s: 0.3, total_s: 0.5}}
  - id: fallback
    provider: healthy
    model: claude-3-5-haiku-latest
    serves: [chat-fallback]
models:
  chat: {{fallbacks: [chat-fallback]}}
reliability:
  retry: {{max_retries: 2, base_s: 0.02, cap_s: 0.2, max_retry_after_s: 0.5}}
  breaker: {{window_s: 10, min_calls: 20, error_rate: 0.5, consecutive_failures: 10, open_s: 1}}
"""


@dataclass
class Rig:
    flaky: str
    healthy: str
    gateway: str
    http: aiohttp.ClientSession

    async def set_faults(self, url: str, rate: float, faults: list[str]) -> None:
        async with self.http.post(
            url + "/sim/faults", json={"fault_rate": rate, "faults": faults, "hang_s": 3}
        ) as r:
            assert r.status == 200

    async def upstream_requests(self) -> int:
        total = 0
        for url in (self.flaky, self.healthy):
            async with self.http.get(url + "/sim/stats") as r:
                total += (await r.json())["requests_total"]
        return total

    async def breaker(self, deployment: str) -> str:
        async with self.http.get(self.gateway + "/readyz") as r:
            return str((await r.json())["deployments"][deployment])


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    flaky_runner, flaky_port = await start_sim(SimConfig(port=0, seed=11))
    healthy_runner, healthy_port = await start_sim(SimConfig(port=0))
    flaky, healthy = f"http://127.0.0.1:{flaky_port}", f"http://127.0.0.1:{healthy_port}"
    config = parse_config(GATEWAY_CONFIG.format(flaky=flaky, healthy=healthy))
    gw_runner, gw_port = await server.start(config)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:
        yield Rig(flaky, healthy, f"http://127.0.0.1:{gw_port}", http)
    await gw_runner.cleanup()
    await flaky_runner.cleanup()
    await healthy_runner.cleanup()


async def fire(
    rig: Rig, n: int, concurrency: int, stream: bool = False
) -> list[tuple[int, float, dict[str, str], Any]]:
    body = {
        "model": "chat",
        "max_tokens": 30,
        "stream": stream,
        "messages": [{"role": "user", "content": "ping"}],
    }
    results: list[tuple[int, float, dict[str, str], Any]] = []
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            started = time.perf_counter()
            async with rig.http.post(rig.gateway + "/v1/chat/completions", json=body) as r:
                raw = await r.read()
                results.append((r.status, time.perf_counter() - started, dict(r.headers), raw))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


@pytest.mark.parametrize(
    "faults",
    [
        ["429", "500", "503", "hang", "malformed"],
        ["500", "502", "503", "hang", "malformed"],  # no 429: the primary never rests
    ],
)
async def test_flaky_primary_with_healthy_fallback(rig: Rig, faults: list[str]) -> None:
    await rig.set_faults(rig.flaky, 0.3, faults)
    results = await fire(rig, 1000, 32)
    statuses = [s for s, _, _, _ in results]
    assert statuses.count(200) == 1000, {s: statuses.count(s) for s in set(statuses)}
    latencies = [t for _, t, _, _ in results]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"\nchaos: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    # A hang costs one timeout (0.5 s for a whole non-streamed answer) before the retry;
    # two in a row (the 50% retry budget allows it) about 1 s. Generous: measured 0.37 and
    # 0.73 s alone, 1.8 s once while other suites loaded the 2-core machine.
    assert p99 < 2.5
    attempts = await rig.upstream_requests()
    retries = sum(int(h["x-sluice-attempts"]) - 1 for _, _, h, _ in results)
    print(
        f"chaos {faults}: {attempts} upstream attempts for 1000 requests, "
        f"{retries} beyond the first"
    )
    assert attempts <= 1500  # the retry budget holds
    if "429" not in faults:  # (a 429 rests the primary: traffic moves to the fallback)
        assert retries >= 100  # failures really were retried or fallen back
    served_by = {h["x-sluice-deployment"] for _, _, h, _ in results}
    assert served_by == {"primary", "fallback"}
    assert all(int(h["x-sluice-attempts"]) >= 1 for _, _, h, _ in results)
    fell_back = [h for _, _, h, _ in results if h["x-sluice-fallback"] == "true"]
    assert fell_back and all(h["x-sluice-deployment"] == "fallback" for h in fell_back)


async def test_breaker_opens_when_primary_dies_and_closes_when_it_recovers(rig: Rig) -> None:
    await rig.set_faults(rig.flaky, 1.0, ["500"])
    results = await fire(rig, 200, 16)
    assert all(s == 200 for s, _, _, _ in results)  # the fallback answers everything
    assert await rig.breaker("primary") == "open"
    before = await rig.upstream_requests()
    results = await fire(rig, 100, 16)
    assert all(h["x-sluice-deployment"] == "fallback" for _, _, h, _ in results)
    # Open breaker: the primary is not called (but for one half-open probe, should open_s
    # pass on a loaded machine meanwhile).
    assert await rig.upstream_requests() - before <= 101
    await rig.set_faults(rig.flaky, 0.0, ["500"])
    await asyncio.sleep(1.1)  # open_s
    assert await rig.breaker("primary") == "half_open"
    results = await fire(rig, 20, 1)
    assert await rig.breaker("primary") == "closed"
    assert results[-1][2]["x-sluice-deployment"] == "primary"


async def test_everything_down_gives_clean_errors_and_bounded_attempts(rig: Rig) -> None:
    """Both deployments ejected: the panic threshold tries them anyway (a plan that is all
    ejected is more often a false alarm than a real outage), so every call still gets a
    clean error in its own format — and the retry budget bounds the upstream load."""
    await rig.set_faults(rig.flaky, 1.0, ["503"])
    await rig.set_faults(rig.healthy, 1.0, ["503"])
    await fire(rig, 100, 16)  # trips both breakers
    assert await rig.breaker("primary") == "open"
    assert await rig.breaker("fallback") == "open"
    before = await rig.upstream_requests()
    results = await fire(rig, 200, 16)
    # One try per deployment per call (panic), retries within the 50% budget (+10 floor).
    assert await rig.upstream_requests() - before <= 200 * 2.5 + 10
    assert {s for s, _, _, _ in results} == {503}
    import orjson

    body = orjson.loads(results[0][3])
    assert body["error"]["type"] and body["error"]["message"]


async def test_stream_failures_before_the_first_byte_are_invisible(rig: Rig) -> None:
    await rig.set_faults(rig.flaky, 0.3, ["500", "503", "hang", "refuse"])
    results = await fire(rig, 300, 16, stream=True)
    assert all(s == 200 and raw.endswith(b"data: [DONE]\n\n") for s, _, _, raw in results)


async def test_stream_failures_after_the_first_byte_continue_on_the_fallback(rig: Rig) -> None:
    await rig.set_faults(rig.flaky, 0.3, ["cut", "malformed"])
    results = await fire(rig, 300, 16, stream=True)
    complete = errored = 0
    for status, _, _, raw in results:
        assert status == 200
        text = raw.decode()
        if text.endswith("data: [DONE]\n\n"):
            complete += 1
        else:  # never silently truncated: the last event is an OpenAI error chunk
            last = text.rstrip("\n").rsplit("data: ", 1)[-1]
            assert '"error"' in last, text[-300:]
            errored += 1
    print(f"\nstream chaos: {complete} complete, {errored} ended with an error event")
    # Mid-stream failover continues cut streams on the healthy fallback (issue 14 §4).
    assert complete >= 297 and errored <= 3
