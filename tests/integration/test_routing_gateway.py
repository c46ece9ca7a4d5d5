"""Routes in a real gateway over loopback: the openai SDK against the simulator."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from openai import AsyncOpenAI

from sluice import server
from sluice.config import SluiceConfig
from sluice.cost.compute import compute_cost
from sluice.observe.records import CallRecord
from sluice.observe.report import run_report
from sluice.observe.store import RecordStore
from sluice.routing.targets import targets_of
from sluice.types import Usage
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

ROUTES: dict[str, Any] = {
    "auto": {
        "targets": ["gpt-4o-mini", "gpt-4o"],
        "default": "gpt-4o-mini",
        "rules": [{"name": "hard-words", "keywords": ["prove"], "target": "gpt-4o"}],
    },
    "cheap-first": {
        "targets": ["gpt-4o-mini", "gpt-4o"],
        "default": "gpt-4o-mini",
        "cascade": {"cheap": "gpt-4o-mini", "strong": "gpt-4o"},
    },
    "labelled": {
        "targets": ["gpt-4o-mini", "gpt-4o"],
        "default": "gpt-4o-mini",
        "classifier": {"model": "claude-haiku", "labels": {"SIMPLE": "gpt-4o-mini"}},
    },
    "capped": {
        "targets": ["gpt-4o-mini", "gpt-4o"],
        "default": "gpt-4o-mini",
        "policy": {"max_tokens_ceiling": 5},
    },
    "confident-first": {
        "targets": ["gpt-4o-mini", "gpt-4o"],
        "default": "gpt-4o-mini",
        "cascade": {
            "cheap": "gpt-4o-mini",
            "strong": "gpt-4o",
            "marker": None,
            "min_mean_logprob": -1.0,
        },
    },
}


@dataclass
class Routed:
    oai: AsyncOpenAI
    config: SluiceConfig
    db: str
    runner: Any

    async def records(self) -> list[CallRecord]:
        await self.runner.cleanup()  # flushes the record sink
        store = RecordStore.open(self.db)
        try:
            return store.query()
        finally:
            store.close()


@pytest.fixture
async def routed(sim_url: str, tmp_path: Path) -> AsyncIterator[Routed]:
    data = gateway_config(sim_url).model_dump()
    data["routes"] = ROUTES
    db = f"sqlite:///{tmp_path / 'records.db'}"
    data["observability"]["records"]["store_url"] = db
    config = SluiceConfig.model_validate(data)
    runner, port = await server.start(config)
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    yield Routed(oai, config, db, runner)
    await oai.close()
    await runner.cleanup()


def ask(text: str) -> Any:
    return [{"role": "user", "content": text}]


def price(config: SluiceConfig, model: str) -> Any:
    return targets_of(config)[model].price


async def test_auto_route_header_and_record_show_the_decision(routed: Routed) -> None:
    hard = await routed.oai.chat.completions.with_raw_response.create(
        model="auto", messages=ask("Prove that 7 is prime")
    )
    easy = await routed.oai.chat.completions.with_raw_response.create(
        model="auto", messages=ask("Hello there")
    )
    assert hard.headers["x-sluice-route-decision"] == "rules: hard-words -> gpt-4o"
    assert hard.headers["x-sluice-deployment"] == "sim-gpt-4o"
    assert hard.parse().model == "gpt-4o"
    assert easy.headers["x-sluice-route-decision"] == (
        "default: no strategy decided -> gpt-4o-mini"
    )
    calls = {r.deployment: r for r in await routed.records() if r.kind == "call"}
    strong, cheap = calls["sim-gpt-4o"], calls["sim-gpt-4o-mini"]
    assert strong.route == cheap.route == "auto"
    assert strong.route_decision == "rules: hard-words -> gpt-4o"
    assert strong.model_requested == "gpt-4o"
    assert strong.routing_saved_usd == Decimal(0)  # the reference model itself
    usage = Usage(input_tokens=cheap.input_tokens, output_tokens=cheap.output_tokens)
    would = compute_cost(usage, price(routed.config, "gpt-4o"))
    assert would is not None and cheap.cost_usd is not None
    assert cheap.routing_saved_usd == would - cheap.cost_usd > 0
    report = run_report(routed.db, "1h", "route")
    assert f"saved by routing: ${cheap.routing_saved_usd} over 2 routed calls" in report


async def test_cascade_escalates_strips_the_marker_and_records_both_attempts(
    routed: Routed,
) -> None:
    raw = await routed.oai.chat.completions.with_raw_response.create(
        model="cheap-first",
        messages=ask("What is the answer?"),
        extra_headers={"x-sim-uncertain": "gpt-4o-mini"},  # the cheap model is unsure
    )
    text = raw.parse().choices[0].message.content or ""
    assert text and "UNCERTAIN" not in text
    assert raw.headers["x-sluice-route-decision"] == (
        "default: no strategy decided -> gpt-4o-mini; "
        "cascade: escalated (marker UNCERTAIN) -> gpt-4o"
    )
    assert raw.headers["x-sluice-deployment"] == "sim-gpt-4o"
    records = await routed.records()
    (call,) = [r for r in records if r.kind == "call"]
    attempts = sorted((r for r in records if r.kind == "attempt"), key=lambda r: r.ts)
    assert [a.deployment for a in attempts] == ["sim-gpt-4o-mini", "sim-gpt-4o"]
    assert all(a.attempt_of == call.request_id and a.route == "cheap-first" for a in attempts)
    for attempt, model in zip(attempts, ["gpt-4o-mini", "gpt-4o"], strict=True):
        usage = Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens)
        assert attempt.output_tokens > 0
        assert attempt.cost_usd == compute_cost(usage, price(routed.config, model))
    assert call.attempts == 2
    assert call.cost_usd == sum((a.cost_usd or Decimal(0)) for a in attempts)
    assert call.route_decision is not None and "cascade: escalated" in call.route_decision


async def test_cascade_keeps_a_sure_cheap_answer_and_streams_it(routed: Routed) -> None:
    stream = await routed.oai.chat.completions.create(
        model="cheap-first", messages=ask("Say hi"), stream=True
    )
    chunks = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(chunks)
    records = await routed.records()
    (call,) = [r for r in records if r.kind == "call"]
    assert call.deployment == "sim-gpt-4o-mini" and call.attempts == 1
    assert call.routing_saved_usd is not None and call.routing_saved_usd > 0


@pytest.mark.parametrize(
    ("cheap_logprob", "served"), [(-2.5, "sim-gpt-4o"), (-0.3, "sim-gpt-4o-mini")]
)
async def test_cascade_escalates_on_low_logprob_confidence(
    routed: Routed, cheap_logprob: float, served: str
) -> None:
    raw = await routed.oai.chat.completions.with_raw_response.create(
        model="confident-first",
        messages=ask("What is the answer?"),
        extra_headers={"x-sim-logprob": f"gpt-4o-mini={cheap_logprob}"},
    )
    assert raw.headers["x-sluice-deployment"] == served
    escalated = "cascade: escalated (mean logprob -2.50 < -1.0) -> gpt-4o"
    assert (escalated in raw.headers["x-sluice-route-decision"]) == (served == "sim-gpt-4o")


async def test_cascade_escalates_when_structured_output_stays_invalid(routed: Routed) -> None:
    raw = await routed.oai.chat.completions.with_raw_response.create(
        model="cheap-first",
        messages=ask("Give me a city as JSON"),
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
        # The first three answers (the cheap model's try and its max_repairs=2 repairs, all
        # used even though it repeats itself) are invalid JSON.
        extra_headers={"x-sim-invalid-json": "3", "x-sim-key": uuid.uuid4().hex},
    )
    assert "city" in json.loads(raw.parse().choices[0].message.content or "")
    assert raw.headers["x-sluice-deployment"] == "sim-gpt-4o"
    assert (
        "escalated (invalid structured output) -> gpt-4o"
        in (raw.headers["x-sluice-route-decision"])
    )


async def test_anthropic_clients_reach_routes_too(routed: Routed) -> None:
    base = str(routed.oai.base_url).removesuffix("/v1/")
    client = anthropic.AsyncAnthropic(base_url=base, api_key="sk-test", max_retries=0)
    raw = await client.messages.with_raw_response.create(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": "Prove it"}]
    )
    message = await raw.parse()
    await client.close()
    assert raw.headers["x-sluice-route-decision"] == "rules: hard-words -> gpt-4o"
    assert message.content and message.model == "gpt-4o"


async def test_classifier_calls_its_model_and_falls_back_on_an_unknown_label(
    routed: Routed, sim_url: str
) -> None:
    raw = await routed.oai.chat.completions.with_raw_response.create(
        model="labelled", messages=ask("Hello")
    )
    # The simulator answers with filler words, never a label: the default model answers.
    assert raw.headers["x-sluice-route-decision"] == (
        "default: classifier gave no known label -> gpt-4o-mini"
    )
    async with aiohttp.ClientSession() as http, http.get(sim_url + "/sim/stats") as resp:
        stats = await resp.json()
    haiku = stats["by_model"]["claude-3-5-haiku-latest"]
    assert haiku["requests"] == 1  # the classifier's call, upstream through the executor
    mini = stats["by_model"]["gpt-4o-mini"]
    # The caller's record carries both calls' tokens and cost: the classifier is not free.
    (call,) = [r for r in await routed.records() if r.kind == "call"]
    assert call.input_tokens == haiku["input_tokens"] + mini["input_tokens"]
    assert call.output_tokens == haiku["output_tokens"] + mini["output_tokens"]
    classifier_cost = compute_cost(
        Usage(haiku["input_tokens"], haiku["output_tokens"]),
        price(routed.config, "claude-haiku"),
    )
    answer_cost = compute_cost(
        Usage(mini["input_tokens"], mini["output_tokens"]), price(routed.config, "gpt-4o-mini")
    )
    assert classifier_cost is not None and answer_cost is not None
    assert call.cost_usd == classifier_cost + answer_cost


async def test_a_request_no_target_can_hold_is_a_400(routed: Routed) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await routed.oai.chat.completions.create(model="auto", messages=ask("word " * 130_000))
    assert caught.value.code == "context_length_exceeded"


async def test_models_endpoint_lists_routes(routed: Routed) -> None:
    ids = [m.id async for m in routed.oai.models.list()]
    assert {"auto", "cheap-first", "gpt-4o"} <= set(ids)
    model = await routed.oai.models.retrieve("auto")
    assert model.owned_by == "sluice"


async def test_semantic_route_with_the_real_embedder(sim_url: str) -> None:
    data = gateway_config(sim_url).model_dump()
    data["routes"] = {
        "by-meaning": {
            "targets": ["gpt-4o-mini", "gpt-4o"],
            "default": "gpt-4o-mini",
            "semantic": {
                "min_similarity": 0.3,
                "examples": {
                    "gpt-4o-mini": ["Translate 'good morning' into Spanish."],
                    "gpt-4o": ["Prove that the square root of three is irrational."],
                },
            },
        }
    }
    data["observability"]["records"]["enabled"] = False
    runner, port = await server.start(SluiceConfig.model_validate(data))  # builds centroids
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    try:
        proof = await oai.chat.completions.with_raw_response.create(
            model="by-meaning", messages=ask("Show that the square root of two is irrational.")
        )
        words = await oai.chat.completions.with_raw_response.create(
            model="by-meaning", messages=ask("How do you say 'thank you' in French?")
        )
    finally:
        await oai.close()
        await runner.cleanup()
    assert proof.headers["x-sluice-route-decision"].startswith("semantic: similarity")
    assert proof.headers["x-sluice-route-decision"].endswith("-> gpt-4o")
    assert words.headers["x-sluice-route-decision"].endswith("-> gpt-4o-mini")


async def test_a_routes_token_policy_applies_to_its_calls(routed: Routed) -> None:
    raw = await routed.oai.chat.completions.with_raw_response.create(
        model="capped", messages=ask("Tell me a long story"), max_tokens=100
    )
    assert raw.headers["x-sluice-max-tokens-capped"] == "100->5"
    answer = raw.parse()
    assert answer.usage is not None and answer.usage.completion_tokens <= 5
    assert raw.headers["x-sluice-route-decision"].endswith("-> gpt-4o-mini")
