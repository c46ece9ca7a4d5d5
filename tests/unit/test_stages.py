"""The pipeline's order (`build_stages`), and the agent guard, router and structured-output
stages each alone, with a fake next handler."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import orjson
import pytest

from sluice.config import AgentGuardConfig, SluiceConfig, default_config
from sluice.errors import PermissionDeniedError, UnprocessableError
from sluice.gateway import Gateway
from sluice.identity import Identity
from sluice.pipeline.context import CallContext, Result
from sluice.routing.router import Router
from sluice.routing.stage import RouterStage
from sluice.routing.targets import targets_of
from sluice.stages.guards import AgentGuardStage
from sluice.stages.structured import StructuredOutputStage
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextDelta, TextPart
from tests.unit.routing_fakes import WordEmbedder, config_with, route

SIM = {"SLUICE_SIM_URL": "http://127.0.0.1:1"}


def config(**sections: Any) -> SluiceConfig:
    data = default_config(SIM).model_dump()
    for name, value in sections.items():
        data[name] = {**data[name], **value} if value else value
    return SluiceConfig.model_validate(data)


def names(gateway: Gateway) -> list[str]:
    return [type(s).__name__ for s in gateway.stages]


# --- order ----------------------------------------------------------------------------------


def test_the_stage_order_with_every_stage_on() -> None:
    cfg = config(
        cache={
            "idempotency": {"enabled": True},
            "exact": {"enabled": True},
            "semantic": {"enabled": True},
        },
        limits={"enabled": True},
        reliability={"agent": {"max_steps": 5}},
        routes=config_with({"auto": route().model_dump()}).model_dump()["routes"],
    )
    assert names(Gateway(cfg)) == [
        "AuthStage",
        "IdempotencyStage",
        "GovernanceStage",
        "AgentGuardStage",
        "GroundingStage",
        "TokenPolicyStage",
        "ExactCacheStage",
        "SemanticCacheStage",
        "RouterStage",
        "StructuredOutputStage",
        "MidstreamFailoverStage",
        "SettleStage",
    ]


def test_stages_switched_off_are_not_in_the_pipeline() -> None:
    cfg = config(
        cache={
            "idempotency": {"enabled": False},
            "exact": {"enabled": False},
            "semantic": {"enabled": False},
        },
        limits={"enabled": False},
        routes={},
        retrieval={"enabled": False},
    )
    gateway = Gateway(cfg)
    assert names(gateway) == [
        "AuthStage",
        "TokenPolicyStage",
        "StructuredOutputStage",
        "MidstreamFailoverStage",
        "SettleStage",
    ]
    assert gateway.limits is None and gateway.router is None and gateway.caches == []


# --- agent guard ----------------------------------------------------------------------------


class Answer:
    """The next handler: answers "ok", reporting `cost` to the on_settled listeners."""

    def __init__(self, text: str = "ok", cost: Decimal | None = None) -> None:
        self.texts, self.cost, self.seen = [text], cost, list[CallContext]()

    async def __call__(self, ctx: CallContext) -> Result:
        self.seen.append(ctx)
        for listener in ctx.on_settled:
            listener(self.cost)
        text = self.texts[min(len(self.seen), len(self.texts)) - 1]
        return ChatResponse("r", ctx.request.model, [TextPart(text)])


def step(parent: str | None, model: str = "m") -> CallContext:
    headers = {"x-sluice-parent-request-id": parent} if parent else {}
    return CallContext(ChatRequest(model, [], meta=CallMeta(headers=headers)))


async def test_guard_refuses_the_step_past_the_limit_per_parent() -> None:
    guard, nxt = AgentGuardStage(AgentGuardConfig(max_steps=2)), Answer()
    for _ in range(2):
        await guard(step("run-1"), nxt)
    with pytest.raises(PermissionDeniedError) as err:
        await guard(step("run-1"), nxt)
    assert err.value.code == "agent_step_limit" and len(nxt.seen) == 2
    await guard(step("run-2"), nxt)  # another agent run has its own count
    for _ in range(5):
        await guard(step(None), nxt)  # calls outside any agent run are never counted
    assert guard.snapshot("run-1") == (2, Decimal(0))


async def test_guard_stops_a_run_once_its_cost_reaches_the_limit() -> None:
    guard, nxt = AgentGuardStage(AgentGuardConfig(max_cost_usd=0.01)), Answer(cost=Decimal("0.004"))
    for _ in range(3):  # 0.004, 0.008, 0.012: the third call is allowed, it starts under
        await guard(step("run"), nxt)
    with pytest.raises(PermissionDeniedError) as err:
        await guard(step("run"), nxt)
    assert err.value.code == "agent_cost_limit"


# --- router ---------------------------------------------------------------------------------


def router_stage() -> RouterStage:
    cfg = config_with({})
    fields = {"rules": [{"tiers": ["pro"], "target": "gpt-4o"}], "default": "gpt-4o-mini"}
    auto = Router("auto", route(**fields), targets_of(cfg), embedder=WordEmbedder())
    return RouterStage({"auto": auto})


async def test_router_rewrites_the_model_and_records_its_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stage, nxt = router_stage(), Answer()
    pro = CallContext(
        ChatRequest("auto", [Message("user", [TextPart("hi")])], meta=CallMeta(request_id="q1")),
        identity=Identity(key_id="k", tenant="acme", tier="pro"),  # the tier is the key's
    )
    with caplog.at_level(logging.DEBUG, logger="sluice.pipeline"):
        await stage(pro, nxt)
    assert nxt.seen[-1].request.model == "gpt-4o" and pro.route == "auto"
    assert pro.route_decision is not None and pro.route_decision.startswith("rules")
    assert pro.response_headers["x-sluice-route-decision"] == pro.route_decision
    assert "request q1 rewritten by router: model auto -> gpt-4o" in caplog.text
    free = CallContext(ChatRequest("auto", [Message("user", [TextPart("hi")])]))
    await stage(free, nxt)
    assert nxt.seen[-1].request.model == "gpt-4o-mini"


async def test_router_leaves_plain_models_alone() -> None:
    stage, nxt = router_stage(), Answer()
    ctx = CallContext(ChatRequest("gpt-4o", [Message("user", [TextPart("hi")])]))
    await stage(ctx, nxt)
    assert ctx.route is None and ctx.request.model == "gpt-4o" and not ctx.response_headers


# --- structured output ----------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "integer"}},
    "required": ["age"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}


def ask(stream: bool = False) -> CallContext:
    req = ChatRequest(
        "m", [Message("user", [TextPart("age?")])], response_format=FORMAT, stream=stream
    )
    return CallContext(req)


def answers(*texts: str) -> Answer:
    nxt = Answer()
    nxt.texts = list(texts)
    return nxt


async def test_structured_repairs_an_invalid_answer_once() -> None:
    stage, nxt = StructuredOutputStage(2, lambda model: 1), answers('{"age": "x"}', '{"age": 3}')
    ctx = ask()
    result = await stage(ctx, nxt)
    assert isinstance(result, ChatResponse)
    assert orjson.loads(result.parts[0].text) == {"age": 3}  # type: ignore[union-attr]
    assert ctx.response_headers["x-sluice-repairs"] == "1"
    assert not nxt.seen[0].request.stream  # validated whole, never streamed upstream
    assert len(nxt.seen[-1].request.messages) == 3  # the question, the bad answer, the errors


async def test_structured_replays_the_valid_answer_to_a_streaming_caller() -> None:
    result = await StructuredOutputStage(2, lambda model: 1)(
        ask(stream=True), answers('{"age": 4}')
    )
    assert not isinstance(result, ChatResponse)
    text = "".join([e.text async for e in result if isinstance(e, TextDelta)])
    assert orjson.loads(text) == {"age": 4}


async def test_structured_moves_to_the_next_model_when_one_repeats_itself() -> None:
    stage, nxt = StructuredOutputStage(2, lambda model: 2), answers("nope", "nope", '{"age": 5}')
    ctx = ask()
    await stage(ctx, nxt)
    assert ctx.skip_models == 1 and len(nxt.seen[-1].request.messages) == 1  # fresh, original


async def test_structured_gives_a_422_when_repairs_run_out() -> None:
    stage = StructuredOutputStage(1, lambda model: 1)
    ctx = ask()
    with pytest.raises(UnprocessableError) as err:
        await stage(ctx, answers('{"age": "a"}', '{"age": "b"}'))
    assert err.value.code == "structured_output_invalid"
    assert ctx.response_headers["x-sluice-repairs"] == "1"
