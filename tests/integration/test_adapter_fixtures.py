"""Recorded provider exchanges replayed over real loopback HTTP through each adapter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sluice.collect import StreamCollector
from sluice.config import AnthropicProviderConfig, DeploymentConfig, OpenAIProviderConfig
from sluice.errors import UpstreamError
from sluice.providers.anthropic import AnthropicProvider
from sluice.providers.base import Deployment, Provider
from sluice.providers.openai import OpenAIProvider
from sluice.types import CallMeta, ChatRequest, ChatResponse, TextPart, ToolCallPart
from sluice.wire.anthropic.request import decode_request as decode_anthropic
from sluice.wire.openai.request import decode_request as decode_openai

FIXTURES = Path(__file__).parent.parent / "fixtures"
ALL = sorted(FIXTURES.glob("*/*.json"))


@pytest.fixture
async def replay() -> AsyncIterator[tuple[dict[str, Any], str]]:
    """A loopback server answering every POST with the current fixture, as recorded."""
    current: dict[str, Any] = {}
    seen: list[dict[str, Any]] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(
            {"path": request.path, "headers": dict(request.headers), "body": await request.json()}
        )
        fx = current["fixture"]
        headers = {k: v for k, v in fx["headers"].items() if k != "content-length"}
        if "sse" in fx:
            resp = web.StreamResponse(status=fx["status"], headers=headers)
            await resp.prepare(request)
            for block in fx["sse"].split("\n\n"):  # one write per event, like a real server
                if block:
                    await resp.write((block + "\n\n").encode())
            await resp.write_eof()
            return resp
        headers.pop("content-type", None)
        return web.json_response(fx["body"], status=fx["status"], headers=headers)

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    current["seen"] = seen
    yield current, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _setup(path: Path, base: str) -> tuple[Provider, Deployment, ChatRequest]:
    fx = json.loads(path.read_text())
    kind = path.parent.name
    dep = Deployment.from_config(DeploymentConfig(id="fx", provider=kind, model="fixture-model"))
    request = dict(fx["request"])
    request.pop("stream", None)
    provider: Provider
    if kind == "openai":
        provider = OpenAIProvider(
            "openai", OpenAIProviderConfig(kind="openai", api_base=base + "/v1")
        )
        req = decode_openai(request, CallMeta(wire="openai"))
    else:
        provider = AnthropicProvider(
            "anthropic", AnthropicProviderConfig(kind="anthropic", api_base=base)
        )
        request.setdefault("max_tokens", 1024)
        req = decode_anthropic(request, CallMeta(wire="anthropic"))
    req.stream = "sse" in fx
    return provider, dep, req


def _check(resp: ChatResponse, expect: dict[str, Any]) -> None:
    text = "".join(p.text for p in resp.parts if isinstance(p, TextPart))
    calls = [
        {"id": p.id, "name": p.name, "arguments": p.arguments}
        for p in resp.parts
        if isinstance(p, ToolCallPart)
    ]
    assert text == expect["text"]
    assert calls == expect.get("tool_calls", [])
    assert resp.finish_reason == expect["finish_reason"]
    u = resp.usage
    assert {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
    } == expect["usage"]


@pytest.mark.integration
@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_fixture_replays_through_adapter(
    path: Path, replay: tuple[dict[str, Any], str]
) -> None:
    state, base = replay
    fx = json.loads(path.read_text())
    state["fixture"] = fx
    provider, dep, req = _setup(path, base)
    expect = fx["expect"]
    try:
        if "error" in expect and "sse" not in fx:
            with pytest.raises(UpstreamError) as info:
                await provider.complete(req, dep)
            err = info.value
            assert err.retryable is expect["error"]["retryable"]
            assert err.retry_after_s == expect["error"]["retry_after_seconds"]
            return
        if "sse" in fx:
            collector = StreamCollector()
            if expect.get("error") or expect.get("finish_reason") is None:
                with pytest.raises(UpstreamError):
                    async for event in provider.stream(req, dep):
                        collector.add(event)
                return
            async for event in provider.stream(req, dep):
                collector.add(event)
            resp = collector.response()
        else:
            resp = await provider.complete(req, dep)
        _check(resp, expect)
        if any(
            k.endswith("ratelimit-requests-limit") or k == "x-ratelimit-limit-requests"
            for k in fx["headers"]
        ):
            assert resp.ratelimit is not None and resp.ratelimit.limit_requests is not None
    finally:
        await provider.close()
    sent = state["seen"][-1]
    assert sent["body"]["model"] == "fixture-model"
    if path.parent.name == "anthropic":
        assert sent["path"] == "/v1/messages"
        assert sent["headers"]["anthropic-version"] == "2023-06-01"
    else:
        assert sent["path"] == "/v1/chat/completions"
        if req.stream:
            assert sent["body"]["stream_options"] == {"include_usage": True}
