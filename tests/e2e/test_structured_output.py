"""Structured output end to end: official SDKs → gateway → simulator (which can answer with
invalid JSON a set number of times), both provider kinds."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from sluice import server
from tests.conftest import gateway_config

pytestmark = pytest.mark.e2e

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
ASK: Any = [{"role": "user", "content": "Largest city in Portugal, as JSON"}]


@pytest.fixture
async def gateway(sim_url: str) -> AsyncIterator[str]:
    config = gateway_config(sim_url)
    plans = {"gpt-4o-mini": {"fallbacks": ["claude-haiku"]}}
    config = config.model_validate({**config.model_dump(), "models": plans})
    runner, port = await server.start(config)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def oai(gateway: str) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=gateway + "/v1", api_key="sk-test", max_retries=0)
    yield client
    await client.close()


def invalid_first(n: int) -> dict[str, str]:
    return {"x-sim-invalid-json": str(n), "x-sim-key": uuid.uuid4().hex}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku", "claude-sonnet"])
async def test_valid_json_on_every_provider(oai: AsyncOpenAI, model: str) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model=model, messages=ASK, response_format=FORMAT
    )
    value = json.loads(raw.parse().choices[0].message.content or "")
    assert set(value) >= {"city", "population"} and isinstance(value["population"], int)
    assert raw.headers["x-sluice-repairs"] == "0"


async def test_invalid_json_is_repaired(oai: AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="claude-sonnet", messages=ASK, response_format=FORMAT, extra_headers=invalid_first(1)
    )
    value = json.loads(raw.parse().choices[0].message.content or "")
    assert isinstance(value["population"], int)
    assert raw.headers["x-sluice-repairs"] == "1"
    assert raw.headers["x-sluice-fallback"] == "false"


async def test_same_invalid_answer_twice_escalates_to_the_next_model(oai: AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=ASK, response_format=FORMAT, extra_headers=invalid_first(2)
    )
    value = json.loads(raw.parse().choices[0].message.content or "")
    assert isinstance(value["city"], str)
    assert raw.headers["x-sluice-fallback"] == "true"
    assert raw.headers["x-sluice-deployment"] == "sim-claude-haiku"


async def test_exhausted_repairs_are_a_422_naming_the_problem(oai: AsyncOpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await oai.chat.completions.create(
            model="claude-sonnet",
            messages=ASK,
            response_format=FORMAT,
            extra_headers=invalid_first(9),
        )
    err = info.value
    assert err.status_code == 422
    assert "not valid JSON" in err.message
    # max_repairs (2) are all used even though the model repeats its invalid answer
    assert err.response.headers["x-sluice-repairs"] == "2"


async def test_streaming_client_gets_validated_json(oai: AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="claude-sonnet",
        messages=ASK,
        response_format=FORMAT,
        stream=True,
        extra_headers=invalid_first(1),
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert isinstance(json.loads(text)["population"], int)


async def test_anthropic_forced_tool_input_is_validated(gateway: str) -> None:
    client = AsyncAnthropic(base_url=gateway, api_key="x", max_retries=0)
    tool: Any = {"name": "record_city", "description": "Save a city", "input_schema": SCHEMA}
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet",
        max_tokens=200,
        messages=ASK,
        tools=[tool],
        tool_choice={"type": "tool", "name": "record_city"},
        extra_headers=invalid_first(1),
    )
    msg = await raw.parse()
    use = next(b for b in msg.content if b.type == "tool_use")
    assert use.name == "record_city" and isinstance(use.input["population"], int)
    assert raw.headers["x-sluice-repairs"] == "1"
    await client.close()


async def test_invalid_schema_is_a_400(oai: AsyncOpenAI) -> None:
    bad: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 7}}}
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, response_format=bad)
    assert "JSON Schema" in info.value.message
