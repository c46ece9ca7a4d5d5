"""Rate limits and budgets in a real gateway over loopback, with the official openai SDK.

Limits come from the gateway's `limits:` config; each test runs with the memory counters and
with Redis (unique key prefix, cleared after).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import sqlalchemy as sa
from openai import AsyncOpenAI

from sluice import server
from sluice.config import SluiceConfig
from sluice.governance.ledger import spend_since
from sluice.governance.redis_counters import RedisCounters
from tests.conftest import gateway_config
from tests.governance_rig import create_key, keyed_config, set_env
from tests.governance_rig import gateway as keys_gateway
from tests.integration.test_limits_redis import REDIS_URL

pytestmark = pytest.mark.integration

MESSAGES: Any = [{"role": "user", "content": "Tell me about rivers"}]
Gateway = Callable[[dict[str, Any]], AbstractAsyncContextManager[str]]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    if request.param == "memory":
        yield {"backend": "memory"}
        return
    prefix = f"sluice-test:limits:{uuid.uuid4().hex}:"
    probe = RedisCounters(REDIS_URL, prefix)
    yield {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix}
    await probe.clear()
    await probe.close()


@pytest.fixture
def gateway(sim_url: str) -> Gateway:
    @asynccontextmanager
    async def start(limits: dict[str, Any]) -> AsyncIterator[str]:
        data = gateway_config(sim_url).model_dump()
        data["limits"] = {"enabled": True, **limits}
        runner, port = await server.start(SluiceConfig.model_validate(data))
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()

    return start


def client(url: str, key: str = "unused") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def usage(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url + "/v1/sluice/usage") as resp:
        assert resp.status == 200
        return await resp.json()  # type: ignore[no-any-return]


async def test_rpm_limit_429_with_openai_headers(gateway: Gateway, backend: dict[str, Any]) -> None:
    async with gateway({**backend, "gateway": {"rpm": 3, "tpm": 100_000}}) as url:
        oai = client(url)
        remaining = []
        for _ in range(3):
            raw = await oai.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
            )
            remaining.append(raw.headers["x-ratelimit-remaining-requests"])
            assert raw.headers["x-ratelimit-limit-requests"] == "3"
            assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert remaining == ["2", "1", "0"]
        with pytest.raises(openai.RateLimitError) as err:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert err.value.status_code == 429
        assert err.value.code == "rate_limit_exceeded"
        headers = err.value.response.headers
        assert 55 <= int(headers["retry-after"]) <= 60
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert "x-ratelimit-remaining-tokens" in headers
        body = await usage(url)
        assert {(lim["scope"], lim["unit"], lim["used"]) for lim in body["limits"]} == {
            ("gateway", "requests", 3),
            ("gateway", "tokens", body["limits"][1]["used"]),
        }
        await oai.close()


async def test_budget_exceeded_and_usage(
    gateway: Gateway, backend: dict[str, Any], tmp_path: Path
) -> None:
    budget = {"period": "daily", "usd": 0.001}  # gpt-4o-mini: $0.15 / $0.60 per million
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    limits = {**backend, "budgets": {"tenants": {"default": [budget]}}}
    async with gateway({**limits, "ledger": {"store_url": ledger_url}}) as url:
        oai = client(url)
        await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
        stream = await oai.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=True
        )
        async for _ in stream:
            pass
        spent = (await usage(url))["budgets"][0]
        assert spent["scope"] == "tenant:default" and spent["period"] == "daily"
        assert 0 < spent["spent"] < 0.0002 and spent["reserved"] == 0  # both settled
        assert spent["resets_at"].endswith("T00:00:00+00:00")
        with pytest.raises(openai.RateLimitError) as err:  # worst case: 2000 x $0.6/M > left
            await oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=2000
            )
        assert err.value.code == "budget_exceeded"
        assert "resets at" in err.value.message
        assert err.value.response.headers["x-sluice-budget-reset"].endswith("T00:00:00+00:00")
        await oai.close()
    engine = sa.create_engine(ledger_url)  # written by the gateway before it closed
    try:
        ledger = spend_since(engine, "tenant", 0)["default"]
    finally:
        engine.dispose()
    assert ledger["calls"] == 2  # the refused call spent nothing
    assert float(ledger["usd"]) == pytest.approx(spent["spent"], abs=1e-9)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_fails_open_for_limits_closed_for_budgets(gateway: Gateway) -> None:
    down = {"backend": "redis", "redis_url": f"redis://127.0.0.1:{closed_port()}/0"}
    async with gateway({**down, "gateway": {"rpm": 1}}) as url:
        oai = client(url)
        for _ in range(3):  # limit 1, but the store is down: admitted, unmetered
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
            text = await resp.text()
        assert 'sluice_limits_backend_errors_total{op="admit"} 3.0' in text
        assert 'sluice_limit_decisions_total{decision="unmetered",scope="all"} 3.0' in text
        await oai.close()
    hard = {"tenants": {"*": [{"usd": 5.0}]}}
    async with gateway({**down, "budgets": hard}) as url:
        oai = client(url)
        with pytest.raises(openai.InternalServerError) as err:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert err.value.status_code == 503
        assert err.value.code == "budget_store_unavailable"
        await oai.close()


async def test_key_limits_and_budgets_from_virtual_keys(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key's own RPM and hard budget apply to it alone; /v1/sluice/usage shows only its own."""
    set_env(monkeypatch)
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    data["limits"] = {"enabled": True}
    async with (
        keys_gateway(SluiceConfig.model_validate(data)) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        tight = await create_key(
            http, base, limits={"rpm": 2}, budgets=[{"period": "weekly", "tokens": 100_000}]
        )
        other = await create_key(http, base, tenant="other")
        oai, free = client(base, tight["key"]), client(base, other["key"])
        for _ in range(2):
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as err:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert err.value.response.headers["x-ratelimit-limit-requests"] == "2"
        for _ in range(3):  # another key is not limited by the first one's RPM
            await free.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        auth = {"authorization": f"Bearer {tight['key']}"}
        async with http.get(base + "/v1/sluice/usage", headers=auth) as resp:
            mine = await resp.json()
        assert mine["key_id"] == tight["key_id"] and mine["tenant"] == "acme"
        assert [(x["scope"], x["used"]) for x in mine["limits"]] == [(f"key:{tight['key_id']}", 2)]
        assert mine["budgets"][0]["scope"] == f"key:{tight['key_id']}"
        assert 0 < mine["budgets"][0]["spent"] < 1000 and mine["budgets"][0]["period"] == "weekly"
        async with http.get(base + "/v1/sluice/usage") as resp:
            assert resp.status == 401  # no key, no usage
        await oai.close()
        await free.close()


async def test_anthropic_clients_get_429_in_their_wire_format(gateway: Gateway) -> None:
    ask = {"model": "claude-haiku", "max_tokens": 5, "messages": MESSAGES}
    async with (
        gateway({"tiers": {}, "gateway": {"rpm": 1}}) as url,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(url + "/v1/messages", json=ask) as resp:
            assert resp.status == 200
            assert resp.headers["x-ratelimit-remaining-requests"] == "0"
        async with http.post(url + "/v1/messages", json=ask) as resp:
            assert resp.status == 429
            body = await resp.json()
            assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
            assert "rate limit reached for gateway" in body["error"]["message"]
            assert int(resp.headers["retry-after"]) >= 59


async def test_local_embeddings_count_against_rate_limits(
    gateway: Gateway, backend: dict[str, Any]
) -> None:
    """The local MiniLM model is free but not costless to serve: a key's request rate limit
    holds for it as for chat (it was unlimited, so one caller could pin the gateway's CPU)."""
    limits = {**backend, "gateway": {"rpm": 2, "tpm": 100_000}}
    async with gateway(limits) as url, client(url) as oai:
        for _ in range(2):
            await oai.embeddings.create(model="local-minilm", input="how do rivers form?")
        with pytest.raises(openai.RateLimitError):
            await oai.embeddings.create(model="local-minilm", input="how do rivers form?")
