"""Fault injection, rate limits and request validation of the simulator, over loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from sluice.sim import RunningSim, SimConfig, SimModel, running

pytestmark = pytest.mark.integration

OPENAI_BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hello"}],
}
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-x",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello"}],
}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running(SimConfig(port=0, hang_s=0.2)) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(sim: RunningSim, wire: str) -> str:
    return sim.openai_url + "/chat/completions" if wire == "openai" else sim.url + "/v1/messages"


def body(wire: str, **extra: Any) -> dict[str, Any]:
    return {**(OPENAI_BODY if wire == "openai" else ANTHROPIC_BODY), **extra}


async def stats(sim: RunningSim, http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(sim.url + "/sim/stats") as resp:
        data: dict[str, Any] = await resp.json()
        return data


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("kind", "anthropic_type"),
    [
        ("429", "rate_limit_error"),
        ("500", "api_error"),
        ("502", "api_error"),
        ("503", "overloaded_error"),
        ("529", "overloaded_error"),
    ],
)
async def test_error_faults_use_each_api_error_shape(
    sim: RunningSim, http: aiohttp.ClientSession, wire: str, kind: str, anthropic_type: str
) -> None:
    headers = {"x-sim-fault": f"{kind},500"}  # several kinds: the first one wins
    async with http.post(url(sim, wire), json=body(wire), headers=headers) as resp:
        assert resp.status == int(kind)
        assert resp.headers["x-sluice-simulator"] == "true"
        data = await resp.json()
        if kind == "429":
            assert resp.headers["retry-after"] == "1"
    if wire == "openai":
        assert set(data["error"]) == {"message", "type", "param", "code"}
    else:
        assert data["type"] == "error" and data["error"]["type"] == anthropic_type
    assert (await stats(sim, http))["faults_injected"] == {kind: 1}


async def test_retry_after_override_and_sdk_errors(sim: RunningSim) -> None:
    headers = {"x-sim-fault": "429", "x-sim-retry-after": "7"}
    async with openai.AsyncOpenAI(base_url=sim.openai_url, api_key="k", max_retries=0) as oai:
        with pytest.raises(openai.RateLimitError) as caught:
            await oai.chat.completions.create(**OPENAI_BODY, extra_headers=headers)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"
    async with anthropic.AsyncAnthropic(base_url=sim.url, api_key="k", max_retries=0) as claude:
        with pytest.raises(anthropic.OverloadedError):
            await claude.messages.create(**ANTHROPIC_BODY, extra_headers={"x-sim-fault": "529"})


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_hang_then_answers(sim: RunningSim, http: aiohttp.ClientSession, wire: str) -> None:
    started = time.monotonic()
    async with http.post(url(sim, wire), json=body(wire), headers={"x-sim-fault": "hang"}) as resp:
        assert resp.status == 200
        await resp.json()
    assert time.monotonic() - started >= 0.19


async def test_hang_respects_client_disconnect(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    headers = {"x-sim-fault": "hang", "x-sim-hang-s": "30"}
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            url(sim, "openai"), json=body("openai", stream=True), headers=headers, timeout=timeout
        ) as resp:
            await resp.read()
    data = await stats(sim, http)
    assert data["faults_injected"] == {"hang": 1}
    for _ in range(40):
        if data["streams_cancelled"] == 1 and data["open_streams"] == 0:
            break
        await asyncio.sleep(0.05)
        data = await stats(sim, http)
    assert data["streams_cancelled"] == 1 and data["open_streams"] == 0


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_malformed(sim: RunningSim, http: aiohttp.ClientSession, wire: str) -> None:
    headers = {"x-sim-fault": "malformed"}
    async with http.post(url(sim, wire), json=body(wire), headers=headers) as resp:
        assert resp.status == 200
        text = await resp.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    async with http.post(url(sim, wire), json=body(wire, stream=True), headers=headers) as resp:
        assert resp.status == 200
        lines = [ln for ln in (await resp.text()).splitlines() if ln.startswith("data: ")]
    assert json.loads(lines[0][6:])  # a real first event, then garbage
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[1][6:])


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_cut(sim: RunningSim, http: aiohttp.ClientSession, wire: str) -> None:
    headers = {"x-sim-fault": "cut"}
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(url(sim, wire), json=body(wire), headers=headers) as resp:
            assert resp.status == 200
            await resp.read()
    received: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(url(sim, wire), json=body(wire, stream=True), headers=headers) as resp:
            async for line in resp.content:
                received.append(line)
    text = b"".join(received)
    assert text  # about half the tokens arrived
    assert b"[DONE]" not in text and b"message_stop" not in text
    assert b'finish_reason":"stop' not in text


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_refuse_resets_the_connection(
    sim: RunningSim, http: aiohttp.ClientSession, wire: str
) -> None:
    with pytest.raises(aiohttp.ClientError):
        async with http.post(url(sim, wire), json=body(wire), headers={"x-sim-fault": "refuse"}):
            pass
    async with http.post(url(sim, wire), json=body(wire)) as resp:
        assert resp.status == 200  # the server is fine afterwards


async def test_refuse_through_the_sdk(sim: RunningSim) -> None:
    async with openai.AsyncOpenAI(base_url=sim.openai_url, api_key="k", max_retries=0) as oai:
        with pytest.raises(openai.APIConnectionError):
            await oai.chat.completions.create(
                **OPENAI_BODY, extra_headers={"x-sim-fault": "refuse"}
            )


async def test_fault_rate_is_seeded() -> None:
    config = SimConfig(port=0, fault_rate=0.5, faults=["500", "503"], seed=7)

    async def statuses() -> list[int]:
        async with running(config) as server, aiohttp.ClientSession() as session:
            out = []
            for _ in range(20):
                async with session.post(url(server, "openai"), json=OPENAI_BODY) as resp:
                    out.append(resp.status)
            return out

    first, second = await statuses(), await statuses()
    assert first == second
    assert set(first) == {200, 500, 503}


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_rate_limit_headers_and_429(http: aiohttp.ClientSession, wire: str) -> None:
    limited = SimModel(rpm_limit=3, tpm_limit=100_000)
    config = SimConfig(port=0, default_model=limited)
    prefix = "x-ratelimit-" if wire == "openai" else "anthropic-ratelimit-"
    async with running(config) as sim:
        remaining = []
        request = body(wire, model="template-model")  # not configured: uses default_model
        for _ in range(3):
            async with http.post(url(sim, wire), json=request) as resp:
                assert resp.status == 200
                if wire == "openai":
                    remaining.append(int(resp.headers["x-ratelimit-remaining-requests"]))
                    assert resp.headers["x-ratelimit-limit-tokens"] == "100000"
                    assert resp.headers["x-ratelimit-reset-requests"].endswith("s")
                else:
                    remaining.append(int(resp.headers["anthropic-ratelimit-requests-remaining"]))
                    assert resp.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
                    assert int(resp.headers["anthropic-ratelimit-tokens-remaining"]) < 100_000
        assert remaining == [2, 1, 0]
        async with http.post(url(sim, wire), json=request) as resp:
            assert resp.status == 429
            assert 1 <= int(resp.headers["retry-after"]) <= 60
            assert any(h.lower().startswith(prefix) for h in resp.headers)
            data = await resp.json()
        assert (await stats(sim, http))["faults_injected"] == {}
    if wire == "anthropic":
        assert data["error"]["type"] == "rate_limit_error"


async def test_token_limit_and_unlimited_models_send_no_headers(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    async with http.post(url(sim, "openai"), json=OPENAI_BODY) as resp:
        assert not any(h.lower().startswith("x-ratelimit") for h in resp.headers)
    config = SimConfig(port=0, models={"gpt-4o-mini": SimModel(tpm_limit=40)})
    async with running(config) as limited:
        async with http.post(url(limited, "openai"), json=OPENAI_BODY) as resp:
            assert resp.status == 200  # 8 prompt + 24 answer tokens
            assert "x-ratelimit-limit-requests" not in resp.headers
            assert resp.headers["x-ratelimit-remaining-tokens"] == "8"
        async with http.post(url(limited, "openai"), json=OPENAI_BODY) as resp:
            assert resp.status == 429
            assert "tokens" in (await resp.json())["error"]["message"]


async def test_invalid_json_then_valid(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    headers = {"x-sim-invalid-json": "2", "x-sim-key": "case-1"}
    texts = []
    for _ in range(3):
        async with http.post(url(sim, "openai"), json=OPENAI_BODY, headers=headers) as resp:
            texts.append((await resp.json())["choices"][0]["message"]["content"])
    for bad in texts[:2]:
        with pytest.raises(json.JSONDecodeError):
            json.loads(bad)
    assert isinstance(json.loads(texts[2]), dict)
    async with http.post(
        url(sim, "anthropic"),
        json=ANTHROPIC_BODY,
        headers={"x-sim-invalid-json": "0", "x-sim-key": "case-2"},
    ) as resp:
        assert isinstance(json.loads((await resp.json())["content"][0]["text"]), dict)


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_bad_requests(sim: RunningSim, http: aiohttp.ClientSession, wire: str) -> None:
    async with http.post(url(sim, wire), data=b"{not json") as resp:
        assert resp.status == 400
        await resp.json()
    async with http.post(url(sim, wire), json={"model": "m", "messages": []}) as resp:
        assert resp.status == 400
    huge = body(wire, messages=[{"role": "user", "content": "word " * 130_000}])
    async with http.post(url(sim, wire), json=huge) as resp:
        assert resp.status == 400
        assert "context" in (await resp.text())
    if wire == "anthropic":
        no_cap = {k: v for k, v in ANTHROPIC_BODY.items() if k != "max_tokens"}
        async with http.post(url(sim, wire), json=no_cap) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_latency_headers(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    headers = {"x-sim-ttft-ms": "100", "x-sim-tps": "100", "x-sim-output-tokens": "10"}
    started = time.monotonic()
    async with http.post(url(sim, "openai"), json=OPENAI_BODY, headers=headers) as resp:
        data = await resp.json()
    elapsed = time.monotonic() - started
    assert data["usage"]["completion_tokens"] == 10
    assert 0.19 <= elapsed < 1.0
    started = time.monotonic()
    async with http.post(
        url(sim, "anthropic"), json=body("anthropic", stream=True), headers=headers
    ) as resp:
        first = await resp.content.readline()
        ttft = time.monotonic() - started
        await resp.read()
    total = time.monotonic() - started
    assert first.startswith(b"event: message_start")
    assert 0.09 <= ttft < total
    assert total >= 0.18
