"""A client that goes away mid-stream makes the gateway close the upstream stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import Servers

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", "gpt-4o-mini"),
        ("/v1/chat/completions", "claude-haiku"),
        ("/v1/messages", "claude-haiku"),
        ("/v1/messages", "gpt-4o-mini"),
    ],
)
async def test_client_disconnect_closes_upstream_stream(
    servers: Servers, path: str, model: str
) -> None:
    body = {
        "model": model,
        "max_tokens": 400,
        "stream": True,
        "messages": [{"role": "user", "content": "a long answer please"}],
    }
    headers = {"x-sim-tps": "20", "x-sim-output-tokens": "400"}  # ~20 s of streaming
    before = await servers.sim_stats()
    resp = await servers.http.post(servers.gateway_url + path, json=body, headers=headers)
    assert resp.status == 200
    await resp.content.readany()  # the stream is flowing
    stats = await servers.sim_stats()
    assert stats["open_streams"] == 1
    resp.close()  # the client goes away
    gone = time.monotonic()
    while time.monotonic() - gone < 2.0:
        stats = await servers.sim_stats()
        if stats["open_streams"] == 0:
            break
        await asyncio.sleep(0.02)
    assert stats["open_streams"] == 0
    assert time.monotonic() - gone < 1.0, "upstream stream should close within 1 s"
    assert stats["streams_cancelled"] == before["streams_cancelled"] + 1


async def test_client_disconnect_cancels_non_streaming_upstream_call(servers: Servers) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "slow"}]}
    headers = {"x-sim-ttft-ms": "20000"}
    task = asyncio.ensure_future(
        servers.http.post(servers.gateway_url + "/v1/chat/completions", json=body, headers=headers)
    )
    await asyncio.sleep(0.3)
    stats_during = await servers.sim_stats()
    assert stats_during["in_flight"] == 1  # the upstream call waits for its first token
    task.cancel()  # the client gives up and closes its connection
    with pytest.raises(asyncio.CancelledError):
        await task
    before = stats_during["requests_cancelled"]
    stats = stats_during
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        stats = await servers.sim_stats()
        if stats["in_flight"] == 0:
            break
        await asyncio.sleep(0.02)
    assert stats["in_flight"] == 0
    assert stats["requests_cancelled"] == before + 1
