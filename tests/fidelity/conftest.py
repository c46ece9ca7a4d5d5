"""A capturing upstream (speaks both APIs, records what arrived, answers as a row says) and a
gateway whose two models live on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from sluice import server
from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.fidelity.table import ANTHROPIC_ANSWER, OPENAI_ANSWER, ROWS, Row

MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5"}
ROW_HEADER = "x-fid-row"


@dataclass
class Capture:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    # Per model: a status and headers to answer with instead of an answer (error tests).
    fail: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return {**base, **patch}


def _sse(api: str, events: list[Any]) -> bytes:
    out = b""
    for event in events:
        name = f"event: {event['type']}\n".encode() if api == "anthropic" else b""
        out += name + b"data: " + orjson.dumps(event) + b"\n\n"
    return out + (b"data: [DONE]\n\n" if api == "openai" else b"")


async def _stream_events(api: str, body: dict[str, Any]) -> list[Any]:
    """The default streamed answer, built from the non-streamed one."""
    from tests.fidelity.table import anthropic_events, openai_chunks

    return openai_chunks() if api == "openai" else anthropic_events()


def _json_answer(api: str) -> dict[str, Any]:
    text = '{"city": "Paris"}'
    if api == "anthropic":
        return {"content": [{"type": "text", "text": text}]}
    message = {"role": "assistant", "content": text}
    return {
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}]
    }


# One upstream and one gateway for the whole matrix (150 cases): starting them per case
# cost ~0.35 s each. Tests clear `seen`/`fail` first.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def capture() -> AsyncIterator[Capture]:
    by_id: dict[str, Row] = {r.id: r for r in ROWS}
    cap = Capture("")

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        api = "openai" if request.path.endswith("/chat/completions") else "anthropic"
        cap.seen.append({"api": api, "headers": dict(request.headers), "body": body})
        failing = cap.fail.get(str(body.get("model")))
        if failing is not None:
            status, headers = failing
            err = {"error": {"type": "rate_limit_error", "message": "slow down"}}
            return web.json_response(err, status=status, headers=headers)
        row = by_id.get(request.headers.get(ROW_HEADER, ""))
        mine = row is not None and row.api == api
        if body.get("stream"):
            if mine and row is not None and row.where == "stream":
                events = row.send
            else:
                events = await _stream_events(api, body)
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(_sse(api, events))
            await resp.write_eof()
            return resp
        base = OPENAI_ANSWER if api == "openai" else ANTHROPIC_ANSWER
        patch = row.send if mine and row is not None and row.where == "response" else {}
        if body.get("response_format") or body.get("output_config", {}).get("format"):
            patch = _json_answer(api)  # a schema-valid answer for structured-output rows
        return web.json_response(_merge(base, patch))

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    cap.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield cap
    await runner.cleanup()


@pytest.fixture
def fresh(capture: Capture) -> Capture:
    capture.seen.clear()
    capture.fail.clear()
    return capture


def fidelity_config(upstream: str) -> SluiceConfig:
    data = gateway_config(upstream).model_dump()
    data["cache"]["exact"]["enabled"] = False
    data["cache"]["semantic"]["enabled"] = False
    data["routes"] = {}
    common = {"forward_headers": ["x-fid-*"], "api_key_env": None}
    data["providers"] = {
        "cap-openai": {"kind": "openai", "api_base": upstream + "/v1", **common},
        "cap-anthropic": {
            "kind": "anthropic",
            "api_base": upstream,
            "structured_output": "native",
            "prompt_caching": "off",
            **common,
        },
    }
    data["deployments"] = [
        {"id": "cap-gpt-4o", "provider": "cap-openai", "model": "gpt-4o", "serves": ["gpt-4o"]},
        {"id": "cap-o3", "provider": "cap-openai", "model": "o3-mini", "serves": ["o3-mini"]},
        {
            "id": "cap-claude",
            "provider": "cap-anthropic",
            "model": "claude-sonnet-4-5",
            "serves": ["claude-sonnet-4-5"],
        },
        {
            "id": "cap-broken",
            "provider": "cap-openai",
            "model": "gpt-broken",
            "serves": ["gpt-broken"],
        },
        {"id": "cap-busy", "provider": "cap-openai", "model": "gpt-busy", "serves": ["gpt-busy"]},
    ]
    data["models"] = {"gpt-broken": {"fallbacks": ["claude-sonnet-4-5"]}}
    return type(gateway_config(upstream)).model_validate(data)


@dataclass
class Gateway:
    url: str
    http: aiohttp.ClientSession


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(capture: Capture) -> AsyncIterator[Gateway]:
    runner, port = await server.start(fidelity_config(capture.url))
    async with aiohttp.ClientSession() as http:
        yield Gateway(f"http://127.0.0.1:{port}", http)
    await runner.cleanup()
