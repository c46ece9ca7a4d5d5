"""The simulator as a deterministic judge (sluice.sim.judge), over real HTTP: the verdict
header, the content rules, and position independence of the pairwise rule."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from sluice.eval.judge import RESPONSE_FORMAT, judge_messages, parse_verdict
from sluice.eval.pairwise import _FORMAT as PAIRWISE_FORMAT
from sluice.eval.pairwise import pairwise_messages, parse_winner


async def _ask(sim_url: str, messages: Any, fmt: Any, headers: dict[str, str] | None = None) -> str:
    body = {"model": "gpt-4o-mini", "messages": messages, "response_format": fmt}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim_url + "/v1/chat/completions", json=body, headers=headers or {}) as resp,
    ):
        assert resp.status == 200
        doc = orjson.loads(await resp.read())
    return str(doc["choices"][0]["message"]["content"])


async def test_score_from_header_then_marker_then_seeded(sim_url: str) -> None:
    plain = judge_messages("be right", "what is 2+2?", "4", None)
    marked = judge_messages("be right", "what is 2+2? sim-judge-score=2", "4", None)
    header = {"x-sim-judge-score": "5"}
    assert parse_verdict(await _ask(sim_url, plain, RESPONSE_FORMAT, header)).score == 5
    assert parse_verdict(await _ask(sim_url, marked, RESPONSE_FORMAT, header)).score == 5
    assert parse_verdict(await _ask(sim_url, marked, RESPONSE_FORMAT)).score == 2
    first = parse_verdict(await _ask(sim_url, plain, RESPONSE_FORMAT)).score
    assert 1 <= first <= 5
    assert parse_verdict(await _ask(sim_url, plain, RESPONSE_FORMAT)).score == first  # seeded
    bad = {"x-sim-judge-score": "9"}  # out of range: ignored, the marker decides
    assert parse_verdict(await _ask(sim_url, marked, RESPONSE_FORMAT, bad)).score == 2


async def test_pairwise_winner_rules_do_not_depend_on_position(sim_url: str) -> None:
    better, other = "short sim-better", "a much longer answer without the mark"
    ab = pairwise_messages("be right", "q", better, other)
    ba = pairwise_messages("be right", "q", other, better)
    assert parse_winner(await _ask(sim_url, ab, PAIRWISE_FORMAT)) == "A"
    assert parse_winner(await _ask(sim_url, ba, PAIRWISE_FORMAT)) == "B"
    longer = pairwise_messages("r", "q", "a longer answer", "short")
    assert parse_winner(await _ask(sim_url, longer, PAIRWISE_FORMAT)) == "A"
    same = pairwise_messages("r", "q", "same", "size")
    assert parse_winner(await _ask(sim_url, same, PAIRWISE_FORMAT)) == "tie"
    forced = {"x-sim-judge-winner": "B"}
    assert parse_winner(await _ask(sim_url, ab, PAIRWISE_FORMAT, forced)) == "B"


async def test_other_json_schemas_are_untouched(sim_url: str) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "x",
            "schema": {
                "type": "object",
                "properties": {"score": {"type": "string"}, "note": {"type": "string"}},
                "required": ["score", "note"],
            },
        },
    }
    text = await _ask(sim_url, [{"role": "user", "content": "sim-judge-score=1"}], fmt)
    doc = orjson.loads(text)
    assert set(doc) == {"score", "note"} and isinstance(doc["score"], str)
