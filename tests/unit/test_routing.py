"""Route strategies one by one: rules, semantic, classifier, budget, context; config checks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sluice.config import SluiceConfig
from sluice.errors import InvalidRequestError, UpstreamTimeoutError
from sluice.routing.features import SOFT_BUDGET_FLAG, route_input, text_input
from sluice.routing.router import Router
from sluice.routing.targets import targets_of
from sluice.types import CallMeta, ChatRequest, ChatResponse, ImagePart, Message, TextPart, Tool
from tests.unit.routing_fakes import WordEmbedder, config_with, route

CONFIG = config_with({})
TARGETS = targets_of(CONFIG)


def request(text: str, **meta: Any) -> ChatRequest:
    return ChatRequest(
        model="auto", messages=[Message("user", [TextPart(text)])], meta=CallMeta(**meta)
    )


def router(**fields: object) -> Router:
    return Router("auto", route(**fields), TARGETS, embedder=WordEmbedder())


# --- rules ---------------------------------------------------------------------------


def test_task_tag_from_header_or_metadata_picks_the_rule_target() -> None:
    r = router(rules=[{"tasks": ["reasoning"], "target": "gpt-4o"}])
    by_header = route_input(request("hi", headers={"x-sluice-task": "Reasoning"}))
    by_metadata = route_input(request("hi", metadata={"task": "reasoning"}))
    untagged = route_input(request("hi"))
    assert r.by_rules(by_header) is not None
    assert r.by_rules(by_metadata) is not None
    assert r.by_rules(untagged) is None


def test_keywords_match_whole_words_case_insensitively_and_regex_searches() -> None:
    r = router(
        rules=[
            {"keywords": ["prove"], "target": "gpt-4o"},
            {"regex": r"\bO\(n\^?\d\)", "target": "gpt-4o", "name": "big-o"},
        ]
    )
    assert r.decide_sync(text_input("Please PROVE it")).target == "gpt-4o"
    assert r.decide_sync(text_input("improvement plan")).strategy == "default"  # not a word
    decision = r.decide_sync(text_input("is this O(n2)?"))
    assert (decision.strategy, decision.reason) == ("rules", "big-o")


def test_all_conditions_of_a_rule_must_hold() -> None:
    r = router(rules=[{"tiers": ["free"], "tools": True, "target": "gpt-4o"}])
    tooled = request("x")
    tooled.tools = [Tool("lookup")]
    assert r.by_rules(route_input(tooled, tier="free")) is not None
    assert r.by_rules(route_input(request("x"), tier="free")) is None
    assert r.by_rules(route_input(tooled, tier="pro")) is None


def test_token_count_and_image_conditions() -> None:
    r = router(
        rules=[
            {"images": True, "target": "gpt-4o", "name": "img"},
            {"min_input_tokens": 50, "target": "gpt-4o", "name": "long"},
        ]
    )
    pic = request("what is this")
    pic.messages[0].parts.append(ImagePart("data:image/png;base64,AAAA"))
    assert r.decide_sync(route_input(pic)).reason == "img"
    assert r.decide_sync(text_input("word " * 60)).reason == "long"
    assert r.decide_sync(text_input("short")).strategy == "default"


# --- semantic ------------------------------------------------------------------------


def test_semantic_picks_the_nearest_centroid_and_the_floor_sends_the_rest_to_default() -> None:
    r = router(
        semantic={
            "min_similarity": 0.3,
            "examples": {
                "gpt-4o-mini": ["translate hello into french", "translate goodbye into german"],
                "gpt-4o": ["prove the theorem by induction", "prove the lemma rigorously"],
            },
        }
    )
    assert r.decide_sync(text_input("translate thanks into french")).target == "gpt-4o-mini"
    proof = r.decide_sync(text_input("prove this theorem"))
    assert (proof.target, proof.strategy) == ("gpt-4o", "semantic")
    unmatched = r.decide_sync(text_input("zebra xylophone quantum"))
    assert unmatched.strategy == "default" and unmatched.target == "gpt-4o-mini"


async def test_semantic_async_path_agrees_with_the_sync_one() -> None:
    r = router(semantic={"examples": {"gpt-4o": ["prove it"], "gpt-4o-mini": ["say hi"]}})
    decision = await r.decide(text_input("prove that"))
    assert decision.summary.startswith("semantic: similarity")
    assert decision.target == "gpt-4o"


# --- classifier ----------------------------------------------------------------------


def answer(text: str) -> ChatResponse:
    return ChatResponse(id="x", model="m", parts=[TextPart(text)])


def classified(complete: object, **extra: object) -> Router:
    cfg = route(
        classifier={
            "model": "gpt-4o-mini",
            "labels": {"SIMPLE": "gpt-4o-mini", "COMPLEX": "gpt-4o"},
            "timeout_s": 0.2,
            **extra,
        },
        default="gpt-4o-mini",
    )
    return Router("auto", cfg, TARGETS, complete=complete)  # type: ignore[arg-type]


async def test_classifier_label_maps_to_its_target_and_is_cached() -> None:
    calls: list[ChatRequest] = []

    async def complete(req: ChatRequest) -> ChatResponse:
        calls.append(req)
        return answer("complex.")

    r = classified(complete)
    first = await r.decide(text_input("design a database"))
    second = await r.decide(text_input("design a database"))
    assert (first.target, first.strategy) == ("gpt-4o", "classifier")
    assert second.reason == "cached label COMPLEX"
    assert len(calls) == 1
    assert calls[0].model == "gpt-4o-mini" and calls[0].max_tokens == 4
    assert calls[0].temperature == 0.0


async def test_failing_classifier_falls_back_to_the_default() -> None:
    async def complete(req: ChatRequest) -> ChatResponse:
        raise UpstreamTimeoutError("upstream timed out")

    decision = await classified(complete).decide(text_input("anything"))
    assert decision.target == "gpt-4o-mini"
    assert decision.strategy == "default"
    assert "classifier failed" in decision.reason


async def test_slow_classifier_falls_back_within_its_timeout() -> None:
    async def complete(req: ChatRequest) -> ChatResponse:
        await asyncio.sleep(30)
        return answer("COMPLEX")

    loop = asyncio.get_running_loop()
    started = loop.time()
    decision = await classified(complete).decide(text_input("anything"))
    assert loop.time() - started < 1.0  # the 0.2 s timeout, not the 30 s answer
    assert decision.target == "gpt-4o-mini"
    assert "timed out" in decision.reason


async def test_unknown_label_falls_back_and_is_not_cached() -> None:
    replies = iter(["I think it is moderately hard", "SIMPLE"])

    async def complete(req: ChatRequest) -> ChatResponse:
        return answer(next(replies))

    r = classified(complete)
    assert (await r.decide(text_input("q"))).reason == "classifier gave no known label"
    assert (await r.decide(text_input("q"))).reason == "label SIMPLE"


# --- budget and context --------------------------------------------------------------


def test_over_soft_budget_routes_to_the_cheapest_target() -> None:
    r = router(rules=[{"keywords": ["prove"], "target": "gpt-4o"}])
    flagged = request("prove it", metadata={SOFT_BUDGET_FLAG: True})
    decision = r.decide_sync(route_input(flagged))
    assert (decision.target, decision.strategy) == ("gpt-4o-mini", "budget")
    assert "rules picked gpt-4o" in decision.reason
    assert r.decide_sync(route_input(request("prove it"), over_soft_budget=True)).target == (
        "gpt-4o-mini"
    )
    assert r.decide_sync(route_input(request("prove it"))).target == "gpt-4o"


def small_window_config() -> SluiceConfig:
    data = CONFIG.model_dump()
    for dep in data["deployments"]:
        if dep["id"] == "sim-gpt-4o-mini":
            dep["context_window"] = 100
    return SluiceConfig.model_validate(data)


def test_context_aware_moves_to_a_target_whose_window_fits() -> None:
    targets = targets_of(small_window_config())
    r = Router("auto", route(), targets)
    decision = r.decide_sync(text_input("word " * 200))
    assert (decision.target, decision.strategy) == ("gpt-4o", "context")
    assert "exceed gpt-4o-mini's window of 100" in decision.reason
    assert r.decide_sync(text_input("short")).target == "gpt-4o-mini"


def test_context_aware_counts_requested_output_tokens() -> None:
    r = Router("auto", route(), targets_of(small_window_config()))
    req = request("short")
    req.max_tokens = 500
    assert r.decide_sync(route_input(req)).target == "gpt-4o"


def test_nothing_fits_is_a_clear_400() -> None:
    r = Router("auto", route(), targets_of(small_window_config()))
    with pytest.raises(InvalidRequestError) as caught:
        r.decide_sync(text_input("word " * 200_000))
    assert caught.value.code == "context_length_exceeded"
    assert "largest context window" in caught.value.message


def test_budget_never_picks_a_target_that_cannot_fit() -> None:
    r = Router("auto", route(), targets_of(small_window_config()))
    inp = route_input(request("word " * 200), over_soft_budget=True)
    assert r.decide_sync(inp).target == "gpt-4o"


# --- config --------------------------------------------------------------------------


def test_reference_defaults_to_the_dearest_target() -> None:
    assert router().reference == "gpt-4o"


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"auto": {"targets": ["nope"], "default": "nope"}}, "not a served model"),
        ({"gpt-4o": {"targets": ["gpt-4o"], "default": "gpt-4o"}}, "already a served model"),
        ({"auto": {"targets": ["gpt-4o"], "default": "gpt-4o-mini"}}, "not one of the route"),
        (
            {"auto": {"targets": ["gpt-4o"], "default": "gpt-4o", "rules": [{"target": "gpt-4o"}]}},
            "at least one condition",
        ),
        (
            {
                "auto": {
                    "targets": ["gpt-4o"],
                    "default": "gpt-4o",
                    "rules": [{"regex": "(", "target": "gpt-4o"}],
                }
            },
            "does not compile",
        ),
    ],
)
def test_bad_routes_are_refused(routes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_with(routes)


def test_a_route_is_priced_at_its_dearest_target_for_reservations() -> None:
    """Budgets reserve before routing decides: a route's worst case is its dearest target."""
    from sluice.config import default_config
    from sluice.gateway import Gateway

    gateway = Gateway(default_config())
    assert default_config().routes["auto"].targets == ["gpt-4o-mini", "gpt-4o"]
    route_price = gateway.prices.of_model("auto")
    assert route_price is not None
    assert route_price == gateway.prices.of_model("gpt-4o")
    assert route_price != gateway.prices.of_model("gpt-4o-mini")
