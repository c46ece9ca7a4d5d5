"""Secrets never leave through upstream error text: an upstream 401 that echoes our provider
key reaches neither the caller (both SDKs) nor the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from aiohttp import web

from sluice import server
from sluice.config import SluiceConfig
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

PROVIDER_KEY = "sk-proj-Zq8uXv3T9pLmN4rS7wY2bC5dF6gH1jK0"


async def leaky_upstream(request: web.Request) -> web.Response:
    """What api.openai.com answers a wrong key: the key, quoted back."""
    given = request.headers.get("authorization", "").removeprefix("Bearer ")
    message = f"Incorrect API key provided: {given}. You can find your API key at ..."
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}},
        status=401,
    )


@pytest.fixture
async def gateway_url(monkeypatch: pytest.MonkeyPatch, sim_url: str) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", leaky_upstream)
    up = web.AppRunner(app)
    await up.setup()
    site = web.TCPSite(up, "127.0.0.1", 0)
    await site.start()
    port = up.addresses[0][1]
    monkeypatch.setenv("LEAKY_KEY", PROVIDER_KEY)
    data = gateway_config(sim_url).model_dump()
    data["providers"]["leaky"] = {
        "kind": "openai",
        "api_base": f"http://127.0.0.1:{port}/v1",
        "api_key_env": "LEAKY_KEY",
    }
    data["deployments"].append(
        {"id": "leaky-1", "provider": "leaky", "model": "gpt-x", "serves": ["leaky"]}
    )
    runner, gw = await server.start(SluiceConfig.model_validate(data))
    yield f"http://127.0.0.1:{gw}"
    await runner.cleanup()
    await up.cleanup()


async def test_upstream_error_echoing_the_key_is_scrubbed(
    gateway_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    oai = openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        await oai.chat.completions.create(
            model="leaky", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 502
    assert PROVIDER_KEY not in str(caught.value.body)
    assert "[secret]" in str(caught.value.body)
    ant = anthropic.AsyncAnthropic(base_url=gateway_url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught2:
        await ant.messages.create(
            model="leaky", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert PROVIDER_KEY not in str(caught2.value.body)
    assert PROVIDER_KEY[8:] not in caplog.text
    await oai.close()
    await ant.close()
