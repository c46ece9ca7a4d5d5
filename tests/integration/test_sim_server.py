"""The simulator over real loopback HTTP, driven by the official OpenAI and Anthropic SDKs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from sluice.sim import RunningSim, SimConfig, running
from sluice.tokens import count_text

pytestmark = [
    pytest.mark.integration,
    # The anthropic SDK warns that the simulator's built-in Claude names are deprecated.
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
]

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "units"],
}
TIME = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}
OPENAI_TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
]
ANTHROPIC_TOOLS: Any = [
    {"name": "get_weather", "description": "Weather", "input_schema": WEATHER},
    {"name": "get_time", "input_schema": TIME},
]


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running(SimConfig(port=0)) as server:
        yield server


@pytest.fixture
async def oai(sim: RunningSim) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=sim.openai_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
async def claude(sim: RunningSim) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=sim.url, api_key="x", max_retries=0) as client:
        yield client


async def stats(sim: RunningSim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(sim.url + "/sim/stats") as resp:
        data: dict[str, Any] = await resp.json()
        return data


# --- OpenAI SDK --------------------------------------------------------------------------


async def test_openai_plain(oai: AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert raw.headers["x-sluice-simulator"] == "true"
    done = raw.parse()
    assert done.object == "chat.completion"
    assert done.id.startswith("chatcmpl-")
    assert done.system_fingerprint == "sluice-sim"
    choice = done.choices[0]
    assert choice.finish_reason == "stop"
    text = choice.message.content or ""
    assert text.startswith("[simulated] ")
    assert done.usage is not None
    assert done.usage.completion_tokens == count_text(text) == 24
    assert done.usage.total_tokens == done.usage.prompt_tokens + 24
    assert done.usage.prompt_tokens_details is not None
    assert done.usage.prompt_tokens_details.cached_tokens == 0


async def test_openai_stream_matches_plain(oai: AsyncOpenAI) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    plain = await oai.chat.completions.create(model="gpt-4o", messages=messages)
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    pieces: list[str] = []
    finish = None
    usage = None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            pieces.append(delta.content)
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and plain.usage is not None
    assert usage.completion_tokens == len(pieces) == plain.usage.completion_tokens
    assert usage.prompt_tokens == plain.usage.prompt_tokens


async def test_openai_stream_helper_with_tools(oai: AsyncOpenAI) -> None:
    async with oai.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=OPENAI_TOOLS,
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert final.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather"]
    args = json.loads(calls[0].function.arguments)
    assert set(args) == {"city", "units"} and args["units"] == "celsius"
    assert calls[0].id.startswith("call_")


async def test_openai_tool_calls_parallel_and_forced(oai: AsyncOpenAI) -> None:
    parallel = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "call both tools in parallel"}],
        tools=OPENAI_TOOLS,
    )
    calls = parallel.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls if c.type == "function"] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    forced = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "call both tools in parallel"}],
        tools=OPENAI_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    forced_calls = forced.choices[0].message.tool_calls or []
    assert [c.function.name for c in forced_calls if c.type == "function"] == ["get_time"]
    serial = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "call both tools in parallel"}],
        tools=OPENAI_TOOLS,
        parallel_tool_calls=False,
    )
    assert len(serial.choices[0].message.tool_calls or []) == 1


async def test_openai_tool_result_turn_gets_text(oai: AsyncOpenAI) -> None:
    done = await oai.chat.completions.create(
        model="gpt-4o-mini",
        tools=OPENAI_TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny 21C"},
        ],
    )
    assert done.choices[0].finish_reason == "stop"
    assert "sunny 21C" in (done.choices[0].message.content or "")


async def test_openai_determinism_seed_and_cap(oai: AsyncOpenAI) -> None:
    async def ask(**extra: Any) -> Any:
        return await oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "same"}], **extra
        )

    one, two = await ask(seed=1), await ask(seed=1)
    other = await ask(seed=2)
    assert one.choices[0].message.content == two.choices[0].message.content
    assert one.choices[0].message.content != other.choices[0].message.content
    capped = await ask(max_completion_tokens=5)
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage is not None and capped.usage.completion_tokens == 5
    assert count_text(capped.choices[0].message.content or "") == 5


async def test_openai_json_schema_response(oai: AsyncOpenAI) -> None:
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": WEATHER, "strict": True},
    }
    done = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "extract"}],
        response_format=response_format,
    )
    value = json.loads(done.choices[0].message.content or "")
    assert set(value) == {"city", "units"}


async def test_models_and_health(sim: RunningSim, oai: AsyncOpenAI) -> None:
    models = await oai.models.list()
    assert {m.id for m in models.data} >= {"gpt-4o-mini", "claude-sonnet-4-5"}
    async with aiohttp.ClientSession() as session, session.get(sim.url + "/healthz") as resp:
        assert resp.status == 200
        assert resp.headers["x-sluice-simulator"] == "true"


# --- Anthropic SDK -----------------------------------------------------------------------


async def test_anthropic_plain(claude: AsyncAnthropic) -> None:
    msg = await claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=256,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.id.startswith("msg_")
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    block = msg.content[0]
    assert block.type == "text" and block.text.startswith("[simulated] ")
    assert msg.usage.output_tokens == count_text(block.text) == 24
    assert msg.usage.cache_read_input_tokens == 0


async def test_anthropic_stream_helper(claude: AsyncAnthropic) -> None:
    kwargs: Any = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Stream please"}],
    }
    plain = await claude.messages.create(**kwargs)
    async with claude.messages.stream(**kwargs) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert plain.content[0].type == "text"
    assert "".join(texts) == plain.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(texts) == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens > 0


async def test_anthropic_tool_use_stream_and_parallel(claude: AsyncAnthropic) -> None:
    async with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=200,
        tools=ANTHROPIC_TOOLS,
        messages=[{"role": "user", "content": "run these in parallel"}],
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert all(u.id.startswith("toolu_") for u in uses)
    assert set(uses[0].input) == {"city", "units"}
    single = await claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "run these in parallel"}],
    )
    assert [b.type for b in single.content] == ["tool_use"]
    assert single.content[0] == uses[0]


async def test_anthropic_tool_result_and_max_tokens(claude: AsyncAnthropic) -> None:
    msg = await claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        tools=ANTHROPIC_TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}],
            },
        ],
    )
    assert msg.stop_reason == "end_turn"
    assert "rain" in msg.content[0].text  # type: ignore[union-attr]
    capped = await claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=3, messages=[{"role": "user", "content": "x"}]
    )
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens == 3


async def test_anthropic_prompt_cache_read_on_repeat(
    sim: RunningSim, claude: AsyncAnthropic
) -> None:
    system: Any = [
        {"type": "text", "text": "policy " * 1100, "cache_control": {"type": "ephemeral"}}
    ]
    kwargs: Any = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": system,
        "messages": [{"role": "user", "content": "question one"}],
    }
    first = await claude.messages.create(**kwargs)
    assert first.usage.cache_read_input_tokens == 0
    written = first.usage.cache_creation_input_tokens or 0
    assert written >= 1100
    kwargs["messages"] = [{"role": "user", "content": "a different question"}]
    second = await claude.messages.create(**kwargs)
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.cache_creation_input_tokens == 0
    total = await claude.messages.count_tokens(
        model="claude-sonnet-4-5", system=system, messages=kwargs["messages"]
    )
    assert second.usage.input_tokens == total.input_tokens - written
    by_model = (await stats(sim))["by_model"]["claude-sonnet-4-5"]
    assert by_model["cache_read_tokens"] == written
    assert by_model["cache_write_tokens"] == written


async def test_openai_prompt_cache_read_on_repeat(oai: AsyncOpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "rules " * 1500},
        {"role": "user", "content": "first"},
    ]
    first = await oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    again = await oai.chat.completions.create(
        model="gpt-4o", messages=[*messages, {"role": "assistant", "content": "ok"}]
    )
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    cached = again.usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= 1024 and cached % 128 == 0
    assert cached <= first.usage.prompt_tokens


# --- stats, reset, disconnects ------------------------------------------------------------


async def test_stats_and_reset(sim: RunningSim, oai: AsyncOpenAI) -> None:
    done = await oai.chat.completions.create(
        model="brand-new-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert done.model == "brand-new-model"
    data = await stats(sim)
    assert data["requests_total"] == 1
    entry = data["by_model"]["brand-new-model"]
    assert entry["requests"] == 1 and entry["output_tokens"] == 24
    assert done.usage is not None and entry["input_tokens"] == done.usage.prompt_tokens
    assert data["open_streams"] == 0 and data["streams_cancelled"] == 0
    async with aiohttp.ClientSession() as session, session.post(sim.url + "/sim/reset") as resp:
        assert resp.status == 200
    assert (await stats(sim))["requests_total"] == 0


async def test_client_disconnect_mid_stream_is_counted(sim: RunningSim) -> None:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "slow"}],
    }
    headers = {"x-sim-tps": "20", "x-sim-output-tokens": "200"}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(sim.openai_url + "/chat/completions", json=body, headers=headers)
        assert resp.status == 200
        for _ in range(3):
            await resp.content.readline()
        assert (await stats(sim))["open_streams"] == 1
        resp.close()
    data = await stats(sim)
    for _ in range(40):
        data = await stats(sim)
        if data["streams_cancelled"] == 1:
            break
        await asyncio.sleep(0.05)
    assert data["streams_cancelled"] == 1
    assert data["open_streams"] == 0
    assert 0 < data["by_model"]["gpt-4o-mini"]["output_tokens"] < 200
