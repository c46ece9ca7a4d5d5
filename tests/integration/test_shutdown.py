"""Graceful shutdown: stop accepting, let in-flight streams finish (up to the drain timeout)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from sluice.bench.processes import start_gateway, start_sim

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


async def test_sigterm_drains_in_flight_streams(tmp_path: Path) -> None:
    sim = start_sim(tmp_path)
    gateway = start_gateway(tmp_path, sim.url)
    try:
        body = {
            "model": "gpt-4o-mini",
            "stream": True,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "a slow answer"}],
        }
        headers = {"x-sim-tps": "20", "x-sim-output-tokens": "40"}  # ~2 s of streaming
        async with aiohttp.ClientSession() as http:
            async with http.post(
                gateway.url + "/v1/chat/completions", json=body, headers=headers
            ) as resp:
                assert resp.status == 200
                first = await resp.content.readany()
                assert first
                gateway.process.send_signal(signal.SIGTERM)
                stopped_at = time.monotonic()
                await asyncio.sleep(0.3)
                # Draining: load balancers see /readyz 503 (not a refused connection), health
                # is still answered, and new calls get a clean 503 to retry elsewhere.
                async with aiohttp.ClientSession() as fresh:
                    async with fresh.get(gateway.url + "/readyz") as ready:
                        assert ready.status == 503
                    async with fresh.get(gateway.url + "/healthz") as health:
                        assert health.status == 200
                    async with fresh.post(gateway.url + "/v1/chat/completions", json=body) as new:
                        assert new.status == 503
                        assert (await new.json())["error"]["code"] == "shutting_down"
                rest = await resp.read()
            assert (first + rest).endswith(b"data: [DONE]\n\n")  # the stream finished whole
        await asyncio.to_thread(gateway.process.wait, 10)
        assert gateway.process.returncode == 0
        assert time.monotonic() - stopped_at < 8
    finally:
        gateway.stop()
        sim.stop()


async def test_the_drain_timeout_ends_streams_with_the_error_event(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "examples" / "sim.yaml").read_text())
    data.setdefault("server", {})["drain_timeout_s"] = 1.0
    config = tmp_path / "drain.yaml"
    config.write_text(yaml.safe_dump(data))
    sim = start_sim(tmp_path)
    gateway = start_gateway(tmp_path, sim.url, config=str(config))
    try:
        body = {
            "model": "gpt-4o-mini",
            "stream": True,
            "max_tokens": 400,
            "messages": [{"role": "user", "content": "a very slow answer"}],
        }
        headers = {"x-sim-tps": "10", "x-sim-output-tokens": "200"}  # ~20 s of streaming
        async with (
            aiohttp.ClientSession() as http,
            http.post(gateway.url + "/v1/chat/completions", json=body, headers=headers) as resp,
        ):
            first = await resp.content.readany()
            gateway.process.send_signal(signal.SIGTERM)
            rest = await resp.read()  # the stream ends, not the connection mid-event
        tail = (first + rest).decode().strip().splitlines()[-1]
        assert tail.startswith("data: {") and "shutting_down" in tail, tail
        await asyncio.to_thread(gateway.process.wait, 15)
        assert gateway.process.returncode == 0
    finally:
        gateway.stop()
        sim.stop()
