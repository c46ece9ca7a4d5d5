"""Proactive throttling: Sluice reads the provider's remaining-requests headers and stops
before the provider's 429, instead of after it."""

from __future__ import annotations

import aiohttp
import pytest

from sluice import server
from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku"])
async def test_gateway_stops_before_the_provider_429(model: str) -> None:
    sim_runner, sim_port = await start_sim(SimConfig(port=0).with_limits(rpm_limit=10))
    sim_url = f"http://127.0.0.1:{sim_port}"
    runner, port = await server.start(gateway_config(sim_url))
    body = {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    statuses = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(15):
                async with http.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions", json=body
                ) as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        err = (await r.json())["error"]
                        assert err["code"] == "upstream_rate_limited"
                        assert 1 <= int(r.headers["retry-after"]) <= 61
            async with http.get(sim_url + "/sim/stats") as r:
                stats = await r.json()
    finally:
        await runner.cleanup()
        await sim_runner.cleanup()
    assert statuses == [200] * 10 + [429] * 5
    assert stats["requests_total"] == 10  # the provider never had to say 429
