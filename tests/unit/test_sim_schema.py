"""The simulator's structured answers are instances of the schema they were asked for, on
both wires, whether the schema came as `response_format`, `output_config.format`, or as
prompt text asking for JSON (instructor / Sluice prompt mode)."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from enum import Enum
from typing import Any, Literal

import jsonschema
import orjson
import pydantic
import pytest

from sluice.sim import anthropic_wire, openai_wire
from sluice.sim.schema import fill_schema, schema_in_texts
from sluice.sim.text import plan_answer


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str = pydantic.Field(min_length=12, max_length=40)
    zip_code: str | None = None


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=18, le=30)
    score: float = pydantic.Field(gt=0.5, lt=0.9)
    email: str | None = pydantic.Field(default=None, json_schema_extra={"format": "email"})
    born: dt.date
    seen: dt.datetime
    id: uuid.UUID
    color: Color
    kind: Literal["a", "b"]
    tags: list[str] = pydantic.Field(min_length=2, max_length=3)
    home: Address
    others: list[Address] = []
    step: int = pydantic.Field(multiple_of=5, ge=7)


class Tree(pydantic.BaseModel):
    label: str
    children: list[Tree] = []


SCHEMAS: list[dict[str, Any]] = [
    Person.model_json_schema(),
    Tree.model_json_schema(),
    {
        "type": "object",
        "properties": {"x": {"allOf": [{"$ref": "#/$defs/P"}]}},
        "required": ["x"],
        "$defs": {"P": {"type": "integer", "minimum": 3}},
    },
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
    {
        "type": "object",
        "properties": {"u": {"type": ["null", "string"], "format": "uri"}},
        "required": ["u"],
        "additionalProperties": False,
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: str(s.get("title", s.get("type"))))
@pytest.mark.parametrize("seed", range(5))
def test_filled_values_validate(schema: dict[str, Any], seed: int) -> None:
    jsonschema.validate(fill_schema(schema, random.Random(seed)), schema)


def test_pydantic_models_accept_the_filled_values() -> None:
    Person.model_validate(fill_schema(Person.model_json_schema(), random.Random(0)))


def _openai(**body: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "extract"}], **body}


def _answer_json(prompt: Any) -> Any:
    return json.loads(plan_answer(prompt, 40).text)


def test_openai_json_schema_answer_is_an_instance() -> None:
    schema = Person.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema, "strict": True}}
    Person.model_validate(_answer_json(openai_wire.parse_request(_openai(response_format=fmt))))


def test_openai_json_object_answer_is_an_object() -> None:
    body = _openai(response_format={"type": "json_object"})
    assert isinstance(_answer_json(openai_wire.parse_request(body)), dict)


def test_json_mode_with_the_schema_in_the_system_prompt() -> None:
    """instructor's JSON mode: json_object + the schema written in the system message."""
    system = f"Return JSON that matches this schema:\n{json.dumps(Person.model_json_schema())}"
    body = _openai(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "go"}],
        response_format={"type": "json_object"},
    )
    Person.model_validate(_answer_json(openai_wire.parse_request(body)))


def test_anthropic_output_config_and_prompt_schema() -> None:
    schema = Tree.model_json_schema()
    base = {"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": "go"}]}
    native = {**base, "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    Tree.model_validate(_answer_json(anthropic_wire.parse_request(native)))
    # Sluice's prompt mode: the schema as text in `system`.
    worded = {
        **base,
        "system": f"Respond with JSON valid against:\n{orjson.dumps(schema).decode()}",
    }
    Tree.model_validate(_answer_json(anthropic_wire.parse_request(worded)))


def test_schema_in_texts_needs_a_request_for_json() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert schema_in_texts([f"here is data {json.dumps(schema)}"]) is None
    assert schema_in_texts([f"answer in JSON: {json.dumps(schema)}"]) == schema


def test_a_json_object_asked_for_in_words_is_an_object() -> None:
    """Sluice's prompt mode for `json_object` towards an upstream without JSON mode."""
    base = {"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": "go"}]}
    body = {**base, "system": "Respond with a single valid JSON object and nothing else."}
    assert isinstance(_answer_json(anthropic_wire.parse_request(body)), dict)
    plain = anthropic_wire.parse_request(base)
    assert not plan_answer(plain, 10).text.startswith("{")
