"""cache_key: equal for answer-equal requests, different for any answer-relevant change."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.cache.key import cache_key
from sluice.types import (
    CallMeta,
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from tests.unit.strategies import anthropic_requests, openai_requests

requests = openai_requests() | anthropic_requests()


def key(req: ChatRequest, tenant: str = "t", namespace: str = "v1") -> str:
    return cache_key(req, tenant, namespace)


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def _respaced(raw: str) -> str:
    """Same JSON value, other key order and whitespace."""
    return json.dumps(_reversed_keys(json.loads(raw)), indent=2, separators=(" ,", " :  "))


def _reformat_arguments(req: ChatRequest) -> ChatRequest:
    out = copy.deepcopy(req)
    for msg in out.messages:
        for part in msg.parts:
            if isinstance(part, ToolCallPart):
                part.arguments = _respaced(part.arguments)
    return out


@given(requests)
def test_key_is_deterministic_and_ignores_stream_and_meta(req: ChatRequest) -> None:
    other = dataclasses.replace(
        copy.deepcopy(req),
        stream=not req.stream,
        meta=CallMeta(
            request_id="req_other",
            user="someone-else",
            headers={"x-sluice-request-id": "x", "x-sluice-cache": "no-cache"},
            metadata={"feature": "f"},
        ),
    )
    assert key(req) == key(copy.deepcopy(req)) == key(other)
    assert len(key(req)) == 64


@given(requests)
def test_json_key_order_and_whitespace_do_not_change_the_key(req: ChatRequest) -> None:
    assert key(_reformat_arguments(req)) == key(req)
    shuffled = copy.deepcopy(req)
    shuffled.extras = _reversed_keys(shuffled.extras)
    if shuffled.response_format is not None:
        shuffled.response_format = _reversed_keys(shuffled.response_format)
    for tool in shuffled.tools:
        tool.parameters = _reversed_keys(tool.parameters)
    assert key(shuffled) == key(req)


def _another_turn(req: ChatRequest) -> None:
    req.messages.append(Message("user", [TextPart("one more")]))


MUTATIONS: dict[str, Callable[[ChatRequest], None]] = {
    "model": lambda r: setattr(r, "model", r.model + "-x"),
    "system": lambda r: r.system.append(TextPart("extra system")),
    "messages": _another_turn,
    "role": lambda r: r.messages.insert(0, Message("assistant", [TextPart("hi")])),
    "tools": lambda r: r.tools.append(Tool("zz_new_tool")),
    "tool_choice": lambda r: setattr(
        r, "tool_choice", ToolChoice("tool", "other") if r.tool_choice is None else None
    ),
    "parallel": lambda r: setattr(
        r, "parallel_tool_calls", True if r.parallel_tool_calls is None else None
    ),
    "response_format": lambda r: setattr(
        r, "response_format", None if r.response_format else {"type": "json_object"}
    ),
    "temperature": lambda r: setattr(r, "temperature", (r.temperature or 0.0) + 0.25),
    "top_p": lambda r: setattr(r, "top_p", (r.top_p or 0.0) + 0.5),
    "top_k": lambda r: setattr(r, "top_k", (r.top_k or 0) + 1),
    "stop": lambda r: r.stop.append("STOP-NEW"),
    "seed": lambda r: setattr(r, "seed", (r.seed or 0) + 1),
    "max_tokens": lambda r: setattr(r, "max_tokens", (r.max_tokens or 0) + 1),
    "extras": lambda r: r.extras.update({"logit_bias": {"42": -100}}),
}


@given(requests, st.sampled_from(sorted(MUTATIONS)))
def test_any_answer_relevant_change_changes_the_key(req: ChatRequest, field: str) -> None:
    changed = copy.deepcopy(req)
    MUTATIONS[field](changed)
    assert key(changed) != key(req)


@given(requests)
def test_tenant_and_namespace_separate_keys(req: ChatRequest) -> None:
    assert len({key(req, "a", "v1"), key(req, "b", "v1"), key(req, "a", "v2")}) == 3


def base(*parts: Any, **fields: Any) -> ChatRequest:
    msgs = [Message("user", list(parts) or [TextPart("hello")])]
    return ChatRequest("m", msgs, **fields)


def call(arguments: str, id: str = "c1", name: str = "f") -> ChatRequest:
    return ChatRequest(
        "m",
        [
            Message("user", [TextPart("q")]),
            Message("assistant", [ToolCallPart(id, name, arguments)]),
            Message("tool", [ToolResultPart(id, [TextPart("42")])]),
        ],
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (base(temperature=0), base(temperature=0.0)),
        (call('{"a": 1, "b": [1, 2]}'), call('{"b":[1,2],"a":1}')),
        (call('{"x": {"q": 1, "p": 2}}'), call('{\n  "x": {"p": 2, "q": 1}\n}')),
        (call("not json"), call("not json")),
        (base(TextPart("x", {"type": "ephemeral"})), base(TextPart("x"))),  # cache_control
        (base(stream=True), base(stream=False)),
    ],
)
def test_same_key(a: ChatRequest, b: ChatRequest) -> None:
    assert key(a) == key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (base(temperature=None), base(temperature=0)),
        (base(ImagePart("https://x/a.png")), base(ImagePart("https://x/b.png"))),
        (base(ImagePart("https://x/a.png")), base(ImagePart("https://x/a.png", "high"))),
        (call('{"a": 1}'), call('{"a": 2}')),
        (call('{"a": 1}'), call('{"a": 1.5}')),
        (call('"raw"'), call("raw")),  # a JSON string and raw text stay apart
        (call('{"n": 12345678901234567890123}'), call('{"n": 12345678901234567890124}')),
        (call("{}", id="c1"), call("{}", id="c2")),
        (call("{}", name="f"), call("{}", name="g")),
        (base(TextPart("a"), TextPart("b")), base(TextPart("ab"))),
        (base(TextPart("x")), base(ThinkingPart("x"))),
        (base(stop=["a", "b"]), base(stop=["b", "a"])),
        (base(extras={"logprobs": True}), base(extras={"logprobs": False})),
        (base(extras={}), base(extras={"frequency_penalty": 0.5})),
        (base(response_format={"type": "json_object"}), base(response_format=None)),
    ],
)
def test_different_key(a: ChatRequest, b: ChatRequest) -> None:
    assert key(a) != key(b)


def test_tool_result_content_and_error_flag_count() -> None:
    def result(text: str, is_error: bool = False) -> ChatRequest:
        return ChatRequest(
            "m", [Message("tool", [ToolResultPart("c", [TextPart(text)], is_error)])]
        )

    assert key(result("a")) != key(result("b"))
    assert key(result("a")) != key(result("a", is_error=True))


def test_message_name_counts() -> None:
    a = ChatRequest("m", [Message("user", [TextPart("x")], name="ann")])
    b = ChatRequest("m", [Message("user", [TextPart("x")], name="bob")])
    assert key(a) != key(b)
