"""Structured output: what the caller asked for, whether an answer satisfies it, and how to
ask again.

Three shapes of request ask for JSON: OpenAI `response_format` `json_object` (any JSON
object) and `json_schema` (an object matching a schema), and a forced tool call (Anthropic's
way: `tool_choice` naming one tool, whose `input_schema` the arguments must match).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import orjson
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from sluice.errors import InvalidRequestError
from sluice.types import ChatRequest, ChatResponse, Message, TextPart, ToolCallPart, ToolResultPart

MAX_REPORTED_ERRORS = 5
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    kind: Literal["json_object", "json_schema", "tool"]
    schema: dict[str, Any] | None = None
    name: str | None = None  # the schema's or the tool's name


def output_spec(req: ChatRequest) -> OutputSpec | None:
    """What structure the caller requires of the answer, if any."""
    fmt = req.response_format
    if fmt is not None:
        kind = fmt.get("type")
        if kind == "json_object":
            return OutputSpec("json_object")
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise InvalidRequestError(
                    "response_format.json_schema.schema must be a JSON Schema object",
                    param="response_format.json_schema.schema",
                )
            schema: dict[str, Any] = spec["schema"]
            _check_schema(schema, "response_format.json_schema.schema")
            return OutputSpec("json_schema", schema, spec.get("name"))
    choice = req.tool_choice
    if choice is not None and choice.mode == "tool":
        tool = next((t for t in req.tools if t.name == choice.name), None)
        if tool is None:
            raise InvalidRequestError(
                f"tool_choice names {choice.name!r}, which is not in tools", param="tool_choice"
            )
        _check_schema(tool.parameters, "tools")
        return OutputSpec("tool", tool.parameters, tool.name)
    return None


def _check_schema(schema: dict[str, Any], param: str) -> None:
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequestError(
            f"{param} is not a valid JSON Schema: {exc.message}", param=param
        ) from None


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Validator:
    schema = orjson.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema)


def strip_fences(text: str) -> str:
    """```json ... ``` → the JSON inside; models add fences even when told not to."""
    match = _FENCE.match(text)
    return (match.group(1) if match else text).strip()


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    out = []
    for err in errors[:MAX_REPORTED_ERRORS]:
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path
        )
        out.append(f"{where}: {err.message}")
    return out


def _answer_text(resp: ChatResponse, spec: OutputSpec) -> str | None:
    if spec.kind == "tool":
        call = next(
            (p for p in resp.parts if isinstance(p, ToolCallPart) and p.name == spec.name), None
        )
        return call.arguments if call is not None else None
    texts = [p.text for p in resp.parts if isinstance(p, TextPart)]
    return "".join(texts) if texts else None


def check(resp: ChatResponse, spec: OutputSpec) -> tuple[str | None, list[str]]:
    """(the clean JSON text, []) when the answer satisfies the spec, else (None, errors)."""
    raw = _answer_text(resp, spec)
    if raw is None:
        what = f"call to the tool {spec.name!r}" if spec.kind == "tool" else "text"
        return None, [f"the answer contains no {what}"]
    clean = strip_fences(raw)
    try:
        value = orjson.loads(clean)
    except orjson.JSONDecodeError as exc:
        return None, [f"not valid JSON: {exc}"]
    if spec.kind == "json_object" and not isinstance(value, dict):
        return None, ["the answer must be a JSON object"]
    if spec.schema is not None:
        errors = schema_errors(value, spec.schema)
        if errors:
            return None, errors
    return clean, []


def with_clean_answer(resp: ChatResponse, spec: OutputSpec, clean: str) -> ChatResponse:
    """The response with its JSON as validated (fences stripped)."""
    if spec.kind == "tool":
        parts = [
            dataclasses.replace(p, arguments=clean)
            if isinstance(p, ToolCallPart) and p.name == spec.name
            else p
            for p in resp.parts
        ]
    else:
        parts = [p for p in resp.parts if not isinstance(p, TextPart)] + [TextPart(clean)]
    return dataclasses.replace(resp, parts=parts)


def answer_digest(resp: ChatResponse, spec: OutputSpec) -> str:
    return str(hash(_answer_text(resp, spec)))


def repair_turns(resp: ChatResponse, spec: OutputSpec, errors: list[str]) -> list[Message]:
    """The model's invalid answer and a request to correct it, to append to the conversation."""
    problems = "\n".join(f"- {e}" for e in errors)
    if spec.kind == "tool":
        call = next(
            (p for p in resp.parts if isinstance(p, ToolCallPart) and p.name == spec.name), None
        )
        if call is not None:
            note = (
                f"The input did not match the tool's input schema:\n{problems}\n"
                f"Call {spec.name} again with corrected input."
            )
            return [
                Message("assistant", [call]),
                Message("tool", [ToolResultPart(call.id, [TextPart(note)], is_error=True)]),
            ]
        return [Message("user", [TextPart(f"You must call the tool {spec.name}.")])]
    said = _answer_text(resp, spec) or ""
    return [
        Message("assistant", [TextPart(said or "(no answer)")]),
        Message(
            "user",
            [
                TextPart(
                    f"That answer is not valid:\n{problems}\n"
                    "Reply again with only the corrected JSON, no prose and no code fences."
                )
            ],
        ),
    ]


def schema_instruction(req: ChatRequest) -> str | None:
    """For upstreams without native structured output: the requirement as prompt text."""
    fmt = req.response_format
    if not fmt:
        return None
    if fmt.get("type") == "json_object":
        return "Respond with a single valid JSON object and nothing else."
    spec = fmt.get("json_schema")
    if fmt.get("type") == "json_schema" and isinstance(spec, dict):
        schema = orjson.dumps(spec.get("schema", {})).decode()
        return (
            "Respond with a single JSON value that validates against this JSON Schema, "
            f"and nothing else (no prose, no code fences):\n{schema}"
        )
    return None
