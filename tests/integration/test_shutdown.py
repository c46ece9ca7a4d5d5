"""Graceful shutdown: stop accepting, let in-flight streams finish (up to the drain timeout)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from sluice.bench.processes import start_gateway, start_sim

pytestmark = pytest.mark.integration


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
                with pytest.raises(aiohttp.ClientConnectionError):  # no longer accepting
                    async with aiohttp.ClientSession() as fresh:
                        await fresh.get(gateway.url + "/healthz")
                rest = await resp.read()
            assert (first + rest).endswith(b"data: [DONE]\n\n")  # the stream finished whole
        await asyncio.to_thread(gateway.process.wait, 10)
        assert gateway.process.returncode == 0
        assert time.monotonic() - stopped_at < 8
    finally:
        gateway.stop()
        sim.stop()
