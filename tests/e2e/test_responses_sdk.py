"""The official `openai` SDK's Responses API against the gateway, across both provider kinds:
plain, streamed, tools with a `function_call_output` round trip over `previous_response_id`,
retrieve and delete; through the same pipeline (records, exact cache) as chat calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from sluice import server
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore
from sluice.tokens import count_text
from tests.conftest import gateway_config

pytestmark = pytest.mark.e2e

MODELS = {"gpt-4o-mini": "sim-gpt-4o-mini", "claude-haiku": "sim-claude-haiku"}
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture
async def gateway(sim_url: str, tmp_path: Path) -> AsyncIterator[tuple[AsyncOpenAI, str]]:
    """A gateway whose records and stored responses share one SQLite file; yields the SDK
    client and that database's URL."""
    db = f"sqlite:///{tmp_path / 'sluice.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(type(gateway_config(sim_url)).model_validate(data))
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    yield client, db
    await client.close()
    await runner.cleanup()


@pytest.mark.parametrize("model", MODELS)
async def test_plain_then_continued_then_retrieved(
    gateway: tuple[AsyncOpenAI, str], model: str
) -> None:
    oai, _ = gateway
    raw = await oai.responses.with_raw_response.create(
        model=model, input="Hello there", instructions="Be brief.", metadata={"ticket": "7"}
    )
    first = raw.parse()
    assert raw.headers["x-sluice-deployment"] == MODELS[model]
    assert first.id.startswith("resp_") and first.status == "completed"
    assert first.output_text.startswith("[simulated]")
    assert first.model == model and first.instructions == "Be brief."
    assert first.metadata == {"ticket": "7"}
    assert first.usage is not None
    assert first.usage.output_tokens == count_text(first.output_text)
    second = await oai.responses.create(
        model=model, input="And then?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.usage is not None
    # The second call carried the first exchange: more input tokens than the first.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    fetched = await oai.responses.retrieve(first.id)
    assert fetched.id == first.id and fetched.output_text == first.output_text
    await oai.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as gone:
        await oai.responses.retrieve(first.id)
    assert gone.value.code == "not_found"


@pytest.mark.parametrize("model", MODELS)
async def test_stream_events_and_final_response(
    gateway: tuple[AsyncOpenAI, str], model: str
) -> None:
    oai, _ = gateway
    stream = await oai.responses.create(model=model, input="Tell me about rivers", stream=True)
    kinds, text, final = [], "", None
    async for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            final = event.response
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final is not None and final.output_text == text and text.startswith("[simulated]")
    assert final.usage is not None and final.usage.output_tokens == count_text(text)
    stored = await oai.responses.retrieve(final.id)  # streamed answers are stored too
    assert stored.output_text == text


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_round_trip_over_previous_response_id(
    gateway: tuple[AsyncOpenAI, str], model: str, stream: bool
) -> None:
    oai, _ = gateway
    ask = "What is the weather in Paris?"
    first: Any
    if stream:
        calls: list[Any] = []
        async with oai.responses.stream(model=model, input=ask, tools=[WEATHER]) as events:
            async for event in events:
                if event.type == "response.output_item.done" and event.item.type == "function_call":
                    calls.append(event.item)
            first = await events.get_final_response()
    else:
        first = await oai.responses.create(model=model, input=ask, tools=[WEATHER])
        calls = [item for item in first.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather"]
    assert "city" in json.loads(calls[0].arguments)
    assert first.tools[0].type == "function" and first.tools[0].strict is True
    second = await oai.responses.create(
        model=model,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert "Tool result: sunny" in second.output_text  # the simulator echoes tool results


async def test_structured_output_through_text_format(gateway: tuple[AsyncOpenAI, str]) -> None:
    oai, _ = gateway
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
        "required": ["city", "temp"],
        "additionalProperties": False,
    }
    for model in MODELS:
        resp = await oai.responses.create(
            model=model,
            input="Weather in Oslo as JSON",
            text={"format": {"type": "json_schema", "name": "w", "schema": schema, "strict": True}},
        )
        assert set(json.loads(resp.output_text)) == {"city", "temp"}
        assert resp.text is not None and resp.text.format is not None
        assert resp.text.format.type == "json_schema"


async def test_store_false_unknown_ids_and_bad_input(gateway: tuple[AsyncOpenAI, str]) -> None:
    oai, _ = gateway
    unstored = await oai.responses.create(model="gpt-4o-mini", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError) as missing:
        await oai.responses.create(model="gpt-4o-mini", input="hi", previous_response_id="resp_x")
    assert missing.value.param == "previous_response_id"
    assert missing.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        await oai.responses.delete("resp_nope")
    wizard: Any = [{"role": "wizard", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as bad:
        await oai.responses.create(model="gpt-4o-mini", input=wizard)
    assert bad.value.param == "input[0].role"
    with pytest.raises(openai.NotFoundError) as unknown_model:
        await oai.responses.create(model="no-such-model", input="hi")
    assert unknown_model.value.code == "model_not_found"


async def test_same_pipeline_cache_and_records(gateway: tuple[AsyncOpenAI, str]) -> None:
    oai, db = gateway
    ask: dict[str, Any] = {"model": "gpt-4o-mini", "input": "Cache me", "temperature": 0}
    miss = await oai.responses.with_raw_response.create(**ask)
    hit = await oai.responses.with_raw_response.create(**ask)
    assert miss.headers["x-sluice-cache"] == "miss" and hit.headers["x-sluice-cache"] == "exact"
    first, second = miss.parse(), hit.parse()
    assert first.output_text == second.output_text and first.id != second.id
    with pytest.raises(openai.NotFoundError):
        await oai.responses.create(model="gpt-4o-mini", input="x", previous_response_id="resp_y")
    await oai.close()
    ids = {miss.headers["x-sluice-request-id"], hit.headers["x-sluice-request-id"]}
    store = RecordStore.open(db)
    records: list[CallRecord] = []
    try:
        for _ in range(100):  # the record sink writes in the background
            records = [r for r in store.query() if r.kind == "call"]
            if len(records) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        store.close()
    by_id = {r.request_id: r for r in records}
    assert ids <= set(by_id)
    paid, free = (
        by_id[miss.headers["x-sluice-request-id"]],
        by_id[hit.headers["x-sluice-request-id"]],
    )
    assert paid.deployment == "sim-gpt-4o-mini" and paid.cost_usd is not None and paid.cost_usd > 0
    assert free.cache_status == "exact" and free.cost_usd == 0
    assert any(r.status == 404 and r.error_type == "previous_response_not_found" for r in records)


@pytest.mark.parametrize("model", MODELS)
async def test_a_stream_cut_upstream_ends_failed_and_is_not_stored(
    gateway: tuple[AsyncOpenAI, str], model: str
) -> None:
    oai, _ = gateway
    stream = await oai.responses.create(
        model=model,
        input="Stream me please with many words",
        stream=True,
        extra_headers={"x-sim-fault": "cut"},  # the simulator drops the connection mid-answer
    )
    events = [event async for event in stream]
    error, failed = events[-2:]
    assert error.type == "error" and "closed the connection" in error.message
    assert failed.type == "response.failed"
    assert failed.response.error is not None and failed.response.error.code == "server_error"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with pytest.raises(openai.NotFoundError):
        await oai.responses.retrieve(failed.response.id)


async def test_input_items_are_listed_and_paged(gateway: tuple[AsyncOpenAI, str]) -> None:
    oai, _ = gateway
    first = await oai.responses.create(model="claude-haiku", input="earlier turn")
    inputs: Any = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "one"}]},
        {"role": "user", "content": "two"},
    ]
    second = await oai.responses.create(
        model="claude-haiku", input=inputs, previous_response_id=first.id
    )
    newest_first = [item async for item in oai.responses.input_items.list(second.id, limit=2)]
    assert len(newest_first) == 3  # only this call's input, paged 2 + 1 by the SDK
    texts = [item.content[0].text for item in newest_first]  # type: ignore[index,union-attr]
    assert texts == ["two", "one", "Be brief."]
    oldest_first = await oai.responses.input_items.list(second.id, order="asc")
    assert [i.id for i in oldest_first.data] == [i.id for i in reversed(newest_first)]
    assert oldest_first.has_more is False
    with pytest.raises(openai.BadRequestError):
        await oai.responses.input_items.list(second.id, limit=500)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.input_items.list("resp_unknown")


async def test_routes_pick_the_model_for_responses_calls_too(
    gateway: tuple[AsyncOpenAI, str],
) -> None:
    oai, _ = gateway
    easy = await oai.responses.with_raw_response.create(model="auto", input="Say hi")
    hard = await oai.responses.with_raw_response.create(
        model="auto", input="Debug this step by step"
    )
    assert easy.headers["x-sluice-deployment"] == "sim-gpt-4o-mini"
    assert hard.headers["x-sluice-deployment"] == "sim-gpt-4o"  # the route's keyword rule
    assert "hard-words" in hard.headers["x-sluice-route-decision"]
    assert hard.parse().model == "gpt-4o"  # as chat completions: the model that answered


async def test_a_body_over_the_limit_is_413_and_recorded(sim_url: str, tmp_path: Path) -> None:
    """The Responses API reads the body before the chat handler; a 413 there was answered
    but left no call record (every call leaves one)."""
    db = f"sqlite:///{tmp_path / 'sluice.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    data["server"]["max_body_bytes"] = 4_096
    runner, port = await server.start(type(gateway_config(sim_url)).model_validate(data))
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            await oai.responses.create(model="gpt-4o-mini", input="river " * 2_000)
        assert caught.value.status_code == 413
        request_id = caught.value.response.headers["x-sluice-request-id"]
    finally:
        await oai.close()
        await runner.cleanup()
    store = RecordStore.open(db)
    try:
        found = [r for r in store.query() if r.request_id == request_id]
    finally:
        store.close()
    assert [(r.status, r.error_type) for r in found] == [(413, "request_too_large")]
