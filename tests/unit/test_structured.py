"""Structured-output helpers: spec detection, fence stripping, schema errors, repair turns."""

from __future__ import annotations

import pytest

from sluice.errors import InvalidRequestError
from sluice.structured import check, output_spec, repair_turns, strip_fences, with_clean_answer
from sluice.types import (
    ChatRequest,
    ChatResponse,
    Message,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def req(**kw: object) -> ChatRequest:
    return ChatRequest("m", [Message("user", [TextPart("hi")])], **kw)  # type: ignore[arg-type]


def answer(text: str) -> ChatResponse:
    return ChatResponse("r", "m", [TextPart(text)])


def test_spec_from_response_format_and_forced_tool() -> None:
    assert output_spec(req()) is None
    assert output_spec(req(response_format={"type": "text"})) is None
    assert output_spec(req(response_format={"type": "json_object"})).kind == "json_object"  # type: ignore[union-attr]
    spec = output_spec(
        req(response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}})
    )
    assert spec is not None and spec.kind == "json_schema" and spec.schema == SCHEMA
    tool = Tool("save", parameters=SCHEMA)
    spec = output_spec(req(tools=[tool], tool_choice=ToolChoice("tool", "save")))
    assert spec is not None and spec.kind == "tool" and spec.name == "save"
    assert output_spec(req(tools=[tool], tool_choice=ToolChoice("auto"))) is None


def test_bad_schemas_are_400s() -> None:
    with pytest.raises(InvalidRequestError, match="not a valid JSON Schema"):
        output_spec(
            req(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "nonsense"}},
                }
            )
        )
    with pytest.raises(InvalidRequestError):
        output_spec(req(response_format={"type": "json_schema", "json_schema": {}}))
    with pytest.raises(InvalidRequestError, match="not in tools"):
        output_spec(req(tool_choice=ToolChoice("tool", "missing")))


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ('```\n{"a": 1}\n```', '{"a": 1}'),
        ('  {"a": 1}  ', '{"a": 1}'),
        ("no fences", "no fences"),
    ],
)
def test_strip_fences(text: str, clean: str) -> None:
    assert strip_fences(text) == clean


def test_check_reports_schema_errors_with_paths() -> None:
    spec = output_spec(
        req(response_format={"type": "json_schema", "json_schema": {"schema": SCHEMA}})
    )
    assert spec is not None
    clean, errors = check(answer('```json\n{"name": "Ada", "age": 36}\n```'), spec)
    assert clean == '{"name": "Ada", "age": 36}' and errors == []
    clean, errors = check(answer('{"name": 5, "extra": true}'), spec)
    assert clean is None
    assert any(e.startswith("$: 'age' is a required property") for e in errors)
    assert any(e.startswith("$.name: 5 is not of type 'string'") for e in errors)
    _, errors = check(answer('{"name": '), spec)
    assert errors[0].startswith("not valid JSON")
    json_object = output_spec(req(response_format={"type": "json_object"}))
    assert json_object is not None
    assert check(answer("[1, 2]"), json_object)[1] == ["the answer must be a JSON object"]


def test_repair_turns_for_text_and_tools() -> None:
    spec = output_spec(req(response_format={"type": "json_object"}))
    assert spec is not None
    turns = repair_turns(answer("nope"), spec, ["not valid JSON: x"])
    assert [t.role for t in turns] == ["assistant", "user"]
    assert "not valid JSON: x" in turns[1].parts[0].text  # type: ignore[union-attr]
    tool = Tool("save", parameters=SCHEMA)
    tool_spec = output_spec(req(tools=[tool], tool_choice=ToolChoice("tool", "save")))
    assert tool_spec is not None
    bad = ChatResponse("r", "m", [ToolCallPart("call_1", "save", '{"name": 1}')])
    turns = repair_turns(bad, tool_spec, ["$.name: 1 is not of type 'string'"])
    assert [t.role for t in turns] == ["assistant", "tool"]
    result = turns[1].parts[0]
    assert (
        isinstance(result, ToolResultPart) and result.is_error and result.tool_call_id == "call_1"
    )
    fixed = with_clean_answer(bad, tool_spec, '{"name": "x", "age": 1}')
    assert fixed.parts[0].arguments == '{"name": "x", "age": 1}'  # type: ignore[union-attr]


def test_a_missing_tool_call_is_named_in_plain_words() -> None:
    from sluice.structured import OutputSpec, check
    from sluice.types import ChatResponse, TextPart, Usage

    spec = OutputSpec(kind="tool", name="record_city", schema={"type": "object"})
    resp = ChatResponse(id="r", model="m", parts=[TextPart("no tool")], usage=Usage(1, 1))
    _, errors = check(resp, spec)
    assert errors == ["the answer contains no call to the tool 'record_city'"]
