"""Issue #22 items proven with the official SDKs: request ids, model cards, the answering
model after a fallback, retry-after 0, max_completion_tokens per family, strict tools and
anthropic-beta as the SDKs send them, stop sequences named for Anthropic callers of GPT
models, and input tokens announced at message_start."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pydantic
import pytest
import pytest_asyncio
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI, RateLimitError, pydantic_function_tool

from sluice import server
from sluice.config import default_config
from tests.fidelity.conftest import Capture, Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


class Weather(pydantic.BaseModel):
    city: str


def _openai(url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)


def _anthropic(url: str) -> AsyncAnthropic:
    return AsyncAnthropic(base_url=url, api_key="sk-test", max_retries=0)


async def test_anthropic_sdk_sees_the_request_id(fresh: Capture, gateway: Gateway) -> None:
    async with _anthropic(gateway.url) as client:
        msg = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert msg._request_id and msg._request_id.startswith("req_")
    assert msg.id == "msg_up1"


async def test_gpt_answers_to_anthropic_callers_have_msg_ids(
    fresh: Capture, gateway: Gateway
) -> None:
    async with _anthropic(gateway.url) as client:
        msg = await client.messages.create(
            model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert msg.id.startswith("msg_")
    async with _openai(gateway.url) as oa:
        done = await oa.chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert done.id.startswith("chatcmpl-")


async def test_model_cards_follow_the_callers_api(fresh: Capture, gateway: Gateway) -> None:
    async with _anthropic(gateway.url) as client:
        card = await client.models.retrieve("claude-sonnet-4-5")
        listed = [m async for m in client.models.list()]
    assert card.type == "model" and card.display_name == "Claude Sonnet 4.5"
    assert card.created_at.year >= 2024
    assert {m.id for m in listed} >= {"claude-sonnet-4-5", "gpt-4o"}
    async with _openai(gateway.url) as oa:
        model = await oa.models.retrieve("gpt-4o")
    assert model.object == "model" and model.created > 0 and model.owned_by == "cap-openai"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_fallback_answer_names_the_model_that_answered(
    fresh: Capture, gateway: Gateway, stream: bool
) -> None:
    fresh.fail["gpt-broken"] = (500, {})
    async with _openai(gateway.url) as oa:
        if stream:
            chunks = await oa.chat.completions.create(
                model="gpt-broken", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            models = {c.model async for c in chunks}
        else:
            done = await oa.chat.completions.create(
                model="gpt-broken", messages=[{"role": "user", "content": "hi"}]
            )
            models = {done.model}
    assert models == {"claude-sonnet-4-5"}


async def test_retry_after_zero_reaches_the_caller(fresh: Capture, gateway: Gateway) -> None:
    fresh.fail["gpt-busy"] = (429, {"retry-after": "0"})
    async with _openai(gateway.url) as oa:
        with pytest.raises(RateLimitError) as caught:
            await oa.chat.completions.create(
                model="gpt-busy", messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.response.headers.get("retry-after") == "0"


async def test_reasoning_models_get_max_completion_tokens(fresh: Capture, gateway: Gateway) -> None:
    async with _openai(gateway.url) as oa:
        await oa.chat.completions.create(
            model="o3-mini", max_tokens=40, messages=[{"role": "user", "content": "hi"}]
        )
        await oa.chat.completions.create(
            model="gpt-4o", max_tokens=40, messages=[{"role": "user", "content": "hi"}]
        )
    o3, gpt = (seen["body"] for seen in fresh.seen)
    assert o3.get("max_completion_tokens") == 40 and "max_tokens" not in o3
    assert gpt.get("max_tokens") == 40 and "max_completion_tokens" not in gpt


async def test_sdk_strict_tools_arrive_strict_on_both_apis(
    fresh: Capture, gateway: Gateway
) -> None:
    """`pydantic_function_tool` sends `strict: true` (as openai-agents and instructor do)."""
    async with _openai(gateway.url) as oa:
        for model in ("gpt-4o", "claude-sonnet-4-5"):
            await oa.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "hi"}],
                tools=[pydantic_function_tool(Weather)],
            )
    to_gpt, to_claude = (seen["body"]["tools"][0] for seen in fresh.seen)
    assert to_gpt["function"]["strict"] is True
    assert to_claude["strict"] is True and to_claude["input_schema"]["required"] == ["city"]


async def test_sdk_betas_reach_anthropic_upstreams(fresh: Capture, gateway: Gateway) -> None:
    async with _anthropic(gateway.url) as client:
        await client.beta.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "hi"}],
            betas=["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"],
        )
    headers = {k.lower(): v for k, v in fresh.seen[-1]["headers"].items()}
    assert headers["anthropic-beta"] == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"


# --- against the simulator: real text, real usage ------------------------------------------


@pytest_asyncio.fixture(loop_scope="function")
async def sim_gateway(sim_url: str) -> AsyncIterator[str]:
    """The built-in simulator config without the semantic cache (its model takes ~9 s)."""
    config = default_config({"SLUICE_SIM_URL": sim_url, "SLUICE_SEMANTIC_CACHE": "false"})
    runner, port = await server.start(config)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.asyncio(loop_scope="function")
async def test_anthropic_caller_of_gpt_gets_the_matched_stop_sequence(sim_gateway: str) -> None:
    async with _anthropic(sim_gateway) as client:
        msg = await client.messages.create(
            model="gpt-4o-mini",
            max_tokens=60,
            stop_sequences=["never-in-text", "simulated]"],
            messages=[{"role": "user", "content": "tell me something"}],
        )
        async with client.messages.stream(
            model="gpt-4o-mini",
            max_tokens=60,
            stop_sequences=["simulated]"],
            messages=[{"role": "user", "content": "tell me more"}],
        ) as stream:
            streamed = await stream.get_final_message()
    for answer in (msg, streamed):
        assert answer.stop_reason == "stop_sequence" and answer.stop_sequence == "simulated]"
        assert answer.content[0].text == "["  # type: ignore[union-attr]
        assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0


@pytest.mark.asyncio(loop_scope="function")
async def test_gpt_streams_to_anthropic_callers_announce_input_tokens(sim_gateway: str) -> None:
    async with _anthropic(sim_gateway) as client:
        stream = await client.messages.create(
            model="gpt-4o-mini",
            max_tokens=30,
            messages=[{"role": "user", "content": "count these input tokens please"}],
            stream=True,
        )
        first = await anext(aiter(stream))
        async for _ in stream:
            pass
    assert first.type == "message_start"
    assert first.message.usage.input_tokens > 0


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize("model", ["claude-haiku", "gpt-4o-mini"])
async def test_output_config_format_is_validated_and_repaired(sim_gateway: str, model: str) -> None:
    """Anthropic native structured output is checked like `response_format`: a broken first
    answer is repaired, on a Claude model (native upstream) and a GPT one (translated)."""
    schema = {**Weather.model_json_schema(), "additionalProperties": False}
    async with _anthropic(sim_gateway) as client:
        raw = await client.messages.with_raw_response.create(
            model=model,
            max_tokens=200,
            messages=[{"role": "user", "content": "Weather in Paris"}],
            extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
            extra_headers={"x-sim-invalid-json": "1", "x-sim-key": f"oc-{model}"},
        )
    msg = await raw.parse()
    assert raw.headers["x-sluice-repairs"] == "1"
    Weather.model_validate_json(msg.content[0].text)  # type: ignore[union-attr]
