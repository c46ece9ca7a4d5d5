"""The official `openai` and `anthropic` SDKs against the gateway, across both provider kinds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from sluice.tokens import count_text
from tests.conftest import Servers

pytestmark = pytest.mark.e2e

# One public model per provider kind: gpt-4o-mini → OpenAI adapter, claude-haiku → Anthropic.
MODELS = {"gpt-4o-mini": "sim-gpt-4o-mini", "claude-haiku": "sim-claude-haiku"}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CLOCK = {
    "name": "get_time",
    "description": "Local time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}


@pytest.fixture
async def oai(servers: Servers) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=servers.gateway_url + "/v1", api_key="sk-test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def ant(servers: Servers) -> AsyncIterator[AsyncAnthropic]:
    client = AsyncAnthropic(base_url=servers.gateway_url, api_key="sk-test", max_retries=0)
    yield client
    await client.close()


def openai_tool(spec: dict[str, Any]) -> Any:
    return {"type": "function", "function": spec}


def anthropic_tool(spec: dict[str, Any]) -> Any:
    return {
        "name": spec["name"],
        "description": spec["description"],
        "input_schema": spec["parameters"],
    }


@pytest.mark.parametrize("model", MODELS)
async def test_openai_sdk_plain(oai: AsyncOpenAI, model: str) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
        ],
        max_tokens=50,
    )
    resp = raw.parse()
    assert raw.headers["x-sluice-deployment"] == MODELS[model]
    assert raw.headers["x-sluice-request-id"]
    assert float(raw.headers["x-sluice-latency-ms"]) >= 0
    text = resp.choices[0].message.content or ""
    assert text.startswith("[simulated]")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == model
    assert resp.usage is not None and resp.usage.completion_tokens == count_text(text)
    assert resp.usage.prompt_tokens > 0


@pytest.mark.parametrize("model", MODELS)
async def test_openai_sdk_stream_matches_plain(oai: AsyncOpenAI, model: str) -> None:
    messages: Any = [{"role": "user", "content": "Tell me about rivers"}]
    plain = await oai.chat.completions.create(model=model, messages=messages, max_tokens=40)
    stream = await oai.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    assert text == plain.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and plain.usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
    )


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_sdk_tool_round_trip(oai: AsyncOpenAI, model: str, stream: bool) -> None:
    ask: Any = [{"role": "user", "content": "Weather and time in Paris, in parallel please"}]
    tools: Any = [openai_tool(WEATHER), openai_tool(CLOCK)]
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = None
        async for chunk in await oai.chat.completions.create(
            model=model, messages=ask, tools=tools, stream=True, max_tokens=100
        ):
            for c in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                entry = calls.setdefault(c.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = c.id or entry["id"]
                if c.function:
                    entry["name"] = c.function.name or entry["name"]
                    entry["arguments"] += c.function.arguments or ""
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        got = [calls[i] for i in sorted(calls)]
    else:
        resp = await oai.chat.completions.create(
            model=model, messages=ask, tools=tools, max_tokens=100
        )
        finish = resp.choices[0].finish_reason
        got = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}  # type: ignore[union-attr]
            for c in resp.choices[0].message.tool_calls or []
        ]
    assert finish == "tool_calls"
    assert [c["name"] for c in got] == ["get_weather", "get_time"]
    assert all(c["id"] for c in got)
    assert set(json.loads(got[0]["arguments"])) == {"city"}
    assert set(json.loads(got[1]["arguments"])) == {"tz"}
    follow = [
        *ask,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in got
            ],
        },
    ] + [{"role": "tool", "tool_call_id": c["id"], "content": '{"ok": true}'} for c in got]
    final = await oai.chat.completions.create(
        model=model, messages=follow, tools=tools, max_tokens=60
    )
    assert final.choices[0].finish_reason == "stop"
    assert (final.choices[0].message.content or "").startswith("[simulated]")


@pytest.mark.parametrize("model", MODELS)
async def test_anthropic_sdk_plain(ant: AsyncAnthropic, model: str) -> None:
    raw = await ant.messages.with_raw_response.create(
        model=model,
        system="Be brief.",
        max_tokens=50,
        messages=[{"role": "user", "content": "Hello there"}],
    )
    msg = await raw.parse()
    assert raw.headers["x-sluice-deployment"] == MODELS[model]
    assert msg.type == "message" and msg.role == "assistant"
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert text.startswith("[simulated]")
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == count_text(text)


@pytest.mark.parametrize("model", MODELS)
async def test_anthropic_sdk_stream_matches_plain(ant: AsyncAnthropic, model: str) -> None:
    messages: Any = [{"role": "user", "content": "Tell me about rivers"}]
    plain = await ant.messages.create(model=model, messages=messages, max_tokens=40)
    async with ant.messages.stream(model=model, messages=messages, max_tokens=40) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "".join(b.text for b in plain.content if b.type == "text")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_sdk_tool_round_trip(ant: AsyncAnthropic, model: str, stream: bool) -> None:
    ask: Any = [{"role": "user", "content": "Weather and time in Paris, in parallel please"}]
    tools: Any = [anthropic_tool(WEATHER), anthropic_tool(CLOCK)]
    msg: Any
    if stream:
        async with ant.messages.stream(model=model, messages=ask, tools=tools, max_tokens=100) as s:
            msg = await s.get_final_message()
    else:
        msg = await ant.messages.create(model=model, messages=ask, tools=tools, max_tokens=100)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert set(uses[0].input) == {"city"} and set(uses[1].input) == {"tz"}
    follow = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses
            ],
        },
    ]
    final = await ant.messages.create(model=model, messages=follow, tools=tools, max_tokens=60)
    assert final.stop_reason == "end_turn"


async def test_models_list_in_both_shapes(oai: AsyncOpenAI, ant: AsyncAnthropic) -> None:
    ids = [m.id async for m in oai.models.list()]
    assert {"gpt-4o-mini", "claude-haiku", "claude-sonnet-4-5"} <= set(ids)
    page = await ant.models.list()
    assert {"gpt-4o-mini", "claude-haiku"} <= {m.id for m in page.data}


async def test_client_request_id_is_echoed(oai: AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-sluice-request-id": "trace-42"},
    )
    assert raw.headers["x-sluice-request-id"] == "trace-42"


async def test_generated_request_ids_are_unique_and_sort_by_time(oai: AsyncOpenAI) -> None:
    """Time-first ids keep the records store's request-id index growing at one end."""
    ids = []
    for _ in range(5):
        raw = await oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        ids.append(raw.headers["x-sluice-request-id"])
        await asyncio.sleep(0.002)  # ids are ordered to the millisecond
    assert len(set(ids)) == 5 and ids == sorted(ids)
    assert all(len(i) == len("req_") + 32 for i in ids)


async def test_upstream_429_surfaces_as_sdk_rate_limit_error(oai: AsyncOpenAI) -> None:
    import openai

    with pytest.raises(openai.RateLimitError) as info:
        await oai.chat.completions.create(
            model="claude-haiku",
            extra_headers={"x-sim-fault": "429"},
            messages=[{"role": "user", "content": "hi"}],
        )
    assert info.value.response.headers["retry-after"] == "1"
