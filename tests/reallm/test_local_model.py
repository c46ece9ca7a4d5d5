"""Sluice in front of a real llama.cpp server: usage, streams, errors, schemas, queueing, caches."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.reallm.conftest import LocalModel, StartGateway

pytestmark = [pytest.mark.integration, pytest.mark.reallm]

ASK: Any = [{"role": "user", "content": "Name three colours."}]
WARM: Any = {"temperature": 0.7}  # not 0: the exact cache stays out of the way


def oai(url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def claude(url: str) -> AsyncAnthropic:
    return AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)


async def server_tokens(model: LocalModel) -> tuple[int, int]:
    """(prompt tokens, generated tokens) the llama.cpp server has counted so far."""
    m = await model.metrics()
    prompt = m["prompt_tokens_total"] + m.get("prompt_tokens_cached_total", 0)
    return int(prompt), int(m["tokens_predicted_total"])


async def test_usage_of_plain_and_streamed_calls_matches_the_servers_own_count(
    gateway: StartGateway, local_model: LocalModel
) -> None:
    before = await server_tokens(local_model)
    async with gateway() as gw:
        client, aclient = oai(gw.url), claude(gw.url)
        raw = await client.chat.completions.with_raw_response.create(
            model="local", messages=ASK, max_tokens=12, temperature=0.7
        )
        plain = raw.parse()
        assert raw.headers["x-sluice-deployment"] == "local-smollm2"
        assert plain.choices[0].message.content
        stream = await client.chat.completions.create(
            model="local",
            messages=ASK,
            max_tokens=12,
            temperature=0.7,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
            usage = chunk.usage or usage
        assert text and usage is not None
        message = await aclient.messages.create(
            model="local", max_tokens=12, messages=ASK, extra_body=WARM
        )
        async with aclient.messages.stream(
            model="local", max_tokens=12, messages=ASK, extra_body=WARM
        ) as events:
            final = await events.get_final_message()
        await client.close()
        await aclient.close()
    after = await server_tokens(local_model)
    records = [r for r in gw.records().query() if r.kind == "call"]
    assert len(records) == 4 and {r.deployment for r in records} == {"local-smollm2"}
    assert all(r.status == 200 and r.output_tokens > 0 for r in records)
    # What Sluice recorded is what the server counted: prompt (cached included) and output.
    assert sum(r.input_tokens for r in records) == after[0] - before[0]
    assert sum(r.output_tokens for r in records) == after[1] - before[1]
    # ... and what each client was told.
    assert plain.usage is not None and plain.usage.completion_tokens == records[0].output_tokens
    assert usage.completion_tokens == records[1].output_tokens
    assert message.usage.output_tokens == records[2].output_tokens
    anthropic_in = message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    assert anthropic_in == records[2].input_tokens
    assert final.usage.output_tokens == records[3].output_tokens
    assert all(r.cost_usd == 0 for r in records)  # priced at 0: counted, not charged


async def test_budget_settles_with_real_token_counts(
    gateway: StartGateway, local_model: LocalModel
) -> None:
    """A priced local deployment: the spend equals the server's tokens at that price."""
    overrides: dict[str, Any] = {
        "limits": {"enabled": True, "budgets": {"tenants": {"default": [{"usd": 1.0}]}}}
    }
    before = await server_tokens(local_model)
    async with gateway(**overrides) as gw:
        client = oai(gw.url)
        for _ in range(2):
            await client.chat.completions.create(
                model="local-priced", messages=ASK, max_tokens=10, temperature=0.7
            )
        async with aiohttp.ClientSession() as http, http.get(gw.url + "/v1/sluice/usage") as r:
            body = await r.json()
        await client.close()
    after = await server_tokens(local_model)
    expected = ((after[0] - before[0]) * 1.0 + (after[1] - before[1]) * 2.0) / 1e6
    assert body["budgets"][0]["spent"] == pytest.approx(expected, rel=1e-6)
    assert body["budgets"][0]["reserved"] == 0


async def test_a_dropped_stream_frees_the_slot_and_is_charged(
    gateway: StartGateway, local_model: LocalModel
) -> None:
    async with gateway() as gw:
        client = oai(gw.url)
        stream = await client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Tell a long story."}],
            max_tokens=400,
            temperature=0.7,
            stream=True,
        )
        received = 0
        async for chunk in stream:
            received += sum(1 for c in chunk.choices if c.delta.content)
            if received >= 5:
                break
        await stream.close()  # the client goes away mid-answer
        assert await local_model.busy_slots() in (0, 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not await local_model.busy_slots():
                break
            await asyncio.sleep(0.1)
        assert await local_model.busy_slots() == 0  # the server stopped generating
        # The one slot is free: a new call is answered at once, not after 400 tokens.
        started = time.monotonic()
        await client.chat.completions.create(model="local", messages=ASK, max_tokens=4)
        assert time.monotonic() - started < 10
        await client.close()
    dropped = next(r for r in gw.records().query() if r.kind == "call" and r.stream)
    assert dropped.status == 499
    assert dropped.output_tokens >= received  # what was delivered is charged
    assert dropped.input_tokens > 0


async def test_json_schema_answers_are_valid_and_repaired_when_the_grammar_cannot_express_it(
    gateway: StartGateway, local_model: LocalModel
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "rank": {"type": "integer"}},
        "required": ["city", "rank"],
        "additionalProperties": False,
    }
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    async with gateway() as gw:
        client = oai(gw.url)
        answer = await client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "A city and its rank."}],
            max_tokens=40,
            temperature=0,
            response_format=fmt,
        )
        data = json.loads(answer.choices[0].message.content or "")
        assert set(data) == {"city", "rank"} and isinstance(data["rank"], int)
        # llama.cpp's grammar ignores multipleOf: only Sluice's validation catches a wrong
        # number, and its repair loop re-asks (mechanics, whatever the model then says).
        strict: Any = {
            "type": "json_schema",
            "json_schema": {
                "name": "n",
                "schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "multipleOf": 1000003}},
                    "required": ["n"],
                },
            },
        }
        before = (await local_model.metrics())["n_decode_total"]
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="local",
                messages=[{"role": "user", "content": "Pick a number."}],
                max_tokens=12,
                temperature=0,
                response_format=strict,
            )
            assert int(raw.headers["x-sluice-repairs"]) >= 1
        except openai.APIStatusError as err:
            assert err.status_code == 422  # repairs exhausted: a clear error, not a bad answer
        assert (await local_model.metrics())["n_decode_total"] > before
        await client.close()
    records = [r for r in gw.records().query() if r.kind == "call"]
    assert records[0].deployment == "local-smollm2"  # later ones may fall back on a timeout


async def test_too_long_for_the_local_window_goes_to_the_fallback_or_says_so(
    gateway: StartGateway,
) -> None:
    long: Any = [{"role": "user", "content": "word " * 3000}]  # ~3,000 tokens > 2,048
    async with gateway() as gw:
        client = oai(gw.url)
        raw = await client.chat.completions.with_raw_response.create(
            model="local", messages=long, max_tokens=8
        )
        assert raw.headers["x-sluice-deployment"] == "sim-gpt-4o-mini"  # the fallback fits
        # A deployment told a bigger window than the server has: the server's own refusal
        # reaches the caller as context_length_exceeded (llama.cpp says exceed_context_size).
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="local-overstated", messages=long)
        assert err.value.code == "context_length_exceeded"
        await client.close()


async def test_two_calls_at_once_on_a_one_slot_server_both_complete(
    gateway: StartGateway,
) -> None:
    async with gateway() as gw:
        client, aclient = oai(gw.url), claude(gw.url)
        first, second = await asyncio.gather(
            client.chat.completions.create(
                model="local", messages=ASK, max_tokens=16, temperature=0.7
            ),
            aclient.messages.create(model="local", max_tokens=16, messages=ASK, extra_body=WARM),
        )
        assert first.choices[0].message.content and first.usage is not None
        assert second.content and second.usage.output_tokens > 0
        await client.close()
        await aclient.close()


async def test_exact_cache_and_idempotency_on_real_answers(
    gateway: StartGateway, local_model: LocalModel
) -> None:
    async with gateway() as gw:
        client = oai(gw.url)
        ask: Any = [{"role": "user", "content": "Name a planet."}]
        first = await client.chat.completions.with_raw_response.create(
            model="local", messages=ask, max_tokens=10, temperature=0
        )
        generated = (await server_tokens(local_model))[1]
        again = await client.chat.completions.with_raw_response.create(
            model="local", messages=ask, max_tokens=10, temperature=0
        )
        assert again.headers["x-sluice-cache"] == "exact"
        assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
        key = {"Idempotency-Key": "real-model-idem-1"}
        one = await client.chat.completions.create(
            model="local", messages=ASK, max_tokens=10, temperature=0.9, extra_headers=key
        )
        two = await client.chat.completions.create(
            model="local", messages=ASK, max_tokens=10, temperature=0.9, extra_headers=key
        )
        assert one.id == two.id and one.choices[0].message == two.choices[0].message
        # One generation for the two cached calls' second halves: only `one` reached the model.
        assert (await server_tokens(local_model))[1] - generated == one.usage.completion_tokens  # type: ignore[union-attr]
        await client.close()


async def test_loading_server_503_is_not_ready_and_falls_back(gateway: StartGateway) -> None:
    """llama.cpp answers 503 {"error": {"type": "unavailable_error"}} while it loads; the call
    goes to the fallback, and the error is retryable (never a 503 to the caller)."""
    async with gateway() as gw:
        client = oai(gw.url)
        raw = await client.chat.completions.with_raw_response.create(
            model="local-loading", messages=ASK, max_tokens=8
        )
        assert raw.headers["x-sluice-deployment"] == "sim-gpt-4o-mini"
        await client.close()


async def test_the_semantic_judge_and_the_routing_classifier_run_on_the_real_model(
    gateway: StartGateway, local_model: LocalModel
) -> None:
    routes = {
        "auto-local": {
            "targets": ["local", "gpt-4o-mini"],
            "default": "gpt-4o-mini",
            "classifier": {
                "model": "local",
                "labels": {"SIMPLE": "local", "HARD": "gpt-4o-mini"},
                "timeout_s": 30,
            },
        }
    }
    async with gateway(routes=routes) as gw:
        client = oai(gw.url)
        before = (await local_model.metrics())["n_decode_total"]
        raw = await client.chat.completions.with_raw_response.create(
            model="auto-local", messages=ASK, max_tokens=8
        )
        assert raw.status_code == 200
        assert (await local_model.metrics())["n_decode_total"] > before  # the label was asked
        await client.close()
    call = next(r for r in gw.records().query() if r.kind == "call" and r.route == "auto-local")
    assert call.route_decision is not None
    assert "classifier" in call.route_decision or "default" in call.route_decision
