"""Deterministic answer generation of the simulator (`sluice.sim.text`)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sluice.sim.text import (
    INVALID_JSON_TEXT,
    Prompt,
    ToolSpec,
    fill_schema,
    plan_answer,
    split_fragments,
    tool_json,
)
from sluice.tokens import count_text, split_tokens


def prompt(text: str = "hello", **fields: Any) -> Prompt:
    messages = [{"role": "user", "content": text}]
    return Prompt(
        model="m", key=messages, texts=[text], n_messages=1, last_user_text=text, **fields
    )


@pytest.mark.parametrize("length", [0, 1, 3, 5, 6, 7, 24, 100, 257])
def test_answer_has_exact_token_count(length: int) -> None:
    answer = plan_answer(prompt(), length)
    assert answer.output_tokens == length == len(answer.pieces)
    assert count_text(answer.text) == length
    assert split_tokens(answer.text) == answer.pieces
    assert answer.finish == "stop"
    if length >= 7:
        assert answer.text.startswith("[simulated] ")
        assert answer.text.endswith(".")


def test_same_request_same_answer_and_seeds_change_it() -> None:
    base = plan_answer(prompt("q"), 24).text
    assert plan_answer(prompt("q"), 24).text == base
    assert plan_answer(prompt("other"), 24).text != base
    assert plan_answer(prompt("q", seed=1), 24).text != base
    assert plan_answer(prompt("q"), 24, sim_seed=3).text != base
    other_model = prompt("q")
    other_model.model = "m2"
    assert plan_answer(other_model, 24).text != base


def test_max_tokens_caps_with_length() -> None:
    answer = plan_answer(prompt(max_tokens=7), 24)
    assert answer.finish == "length"
    assert answer.output_tokens == 7 == count_text(answer.text)
    exact = plan_answer(prompt(max_tokens=24), 24)
    assert exact.finish == "stop" and exact.output_tokens == 24


def test_stop_sequence_truncates() -> None:
    full = plan_answer(prompt(), 40).text
    word = full.split()[3]
    answer = plan_answer(prompt(stop=["zzz", word]), 40)
    assert answer.finish == "stop_sequence" and answer.stop_sequence == word
    assert answer.text == full[: full.index(word)].rstrip()  # pieces carry no trailing space
    assert answer.output_tokens == count_text(answer.text)


def test_tool_call_fills_required_arguments() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 5},
            "ratio": {"type": "number"},
            "metric": {"type": "boolean"},
            "unit": {"enum": ["c", "f"]},
            "where": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                "required": ["lat"],
            },
            "ignored": {"type": "string"},
        },
        "required": ["city", "days", "ratio", "metric", "unit", "where"],
    }
    answer = plan_answer(prompt(tools=[ToolSpec("weather", schema)]), 24)
    assert answer.finish == "tool_calls" and answer.text == ""
    (call,) = answer.tool_calls
    args = json.loads(call.arguments)
    assert args == call.input
    assert set(args) == {"city", "days", "ratio", "metric", "unit", "where"}
    assert isinstance(args["city"], str) and 1 <= args["days"] <= 5
    assert isinstance(args["ratio"], float) and args["metric"] is True and args["unit"] == "c"
    assert set(args["where"]) == {"lat"}
    assert call.id.startswith("call_") and len(call.id) == 5 + 24
    assert answer.output_tokens == count_text("weather") + count_text(call.arguments)


def test_tool_selection_rules() -> None:
    tools = [
        ToolSpec("a", {"type": "object", "properties": {"x": {"type": "string"}}}),
        ToolSpec("b", {}),
    ]
    first = plan_answer(prompt(tools=tools), 24, id_prefix="toolu_")
    assert [c.name for c in first.tool_calls] == ["a"]
    assert set(first.tool_calls[0].input) == {"x"}  # no `required`: the first property
    assert first.tool_calls[0].id.startswith("toolu_")
    both = plan_answer(prompt("Do it in PARALLEL", tools=tools), 24)
    assert [c.name for c in both.tool_calls] == ["a", "b"]
    assert both.tool_calls[0].id != both.tool_calls[1].id
    serial = plan_answer(prompt("parallel", tools=tools, parallel_allowed=False), 24)
    assert [c.name for c in serial.tool_calls] == ["a"]
    forced = plan_answer(prompt("parallel", tools=tools, tool_mode="tool", forced_tool="b"), 24)
    assert [c.name for c in forced.tool_calls] == ["b"]
    none = plan_answer(prompt(tools=tools, tool_mode="none"), 24)
    assert none.tool_calls == [] and none.finish == "stop"


def test_tool_result_turn_answers_with_text_mentioning_it() -> None:
    p = prompt(tools=[ToolSpec("a", {})])
    p.last_user_text = None
    p.tool_result_text = "42 degrees"
    answer = plan_answer(p, 24)
    assert answer.tool_calls == [] and "42 degrees" in answer.text
    assert answer.output_tokens == 24 == count_text(answer.text)


def test_json_modes_and_invalid_json() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    structured = plan_answer(prompt(json_schema=schema, json_mode=True), 24)
    assert set(json.loads(structured.text)) == {"n"}
    loose = plan_answer(prompt(json_mode=True), 24)
    assert json.loads(loose.text)["answer"].startswith("[simulated]")
    broken = plan_answer(prompt(json_mode=True), 24, invalid_json=True)
    assert broken.text == INVALID_JSON_TEXT
    assert broken.output_tokens == count_text(INVALID_JSON_TEXT)


def test_fill_schema_refs_unions_and_arrays() -> None:
    schema = {
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"id": {"type": "integer"}},
                "required": ["id"],
            }
        },
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "kind": {"const": "fixed"},
            "nothing": {"type": ["null"]},
        },
        "required": ["items", "maybe", "kind", "nothing"],
    }
    value = fill_schema(schema, random.Random(1))
    assert len(value["items"]) == 2 and all(isinstance(i["id"], int) for i in value["items"])
    assert isinstance(value["maybe"], str)
    assert value["kind"] == "fixed" and value["nothing"] is None


def test_split_fragments_and_tool_json() -> None:
    text = '{"city":"Paris","units":"celsius"}'
    parts = split_fragments(text)
    assert len(parts) >= 3 and "".join(parts) == text
    assert split_fragments("") == [""]
    assert tool_json("f", None, {"type": "object"}) == '{"name":"f","parameters":{"type":"object"}}'
    assert json.loads(tool_json("f", "d", {}))["description"] == "d"


def test_vocabulary_tables_fit_their_index_bits() -> None:
    from sluice.sim import text

    assert len(text.VOCAB) == 64  # indexed with getrandbits(6)
    assert len(text._SHORT_PIECES) == 8  # indexed with getrandbits(3)
    assert len(text.FIELD_WORDS) == 8
