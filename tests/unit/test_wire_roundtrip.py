"""Property tests: canonical neutral values survive encode → wire → decode without loss."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from sluice.types import CallMeta, ChatRequest, ChatResponse, ToolCallPart
from sluice.wire.anthropic import request as anthropic_request
from sluice.wire.anthropic import response as anthropic_response
from sluice.wire.openai import request as openai_request
from sluice.wire.openai import response as openai_response
from tests.unit.strategies import (
    anthropic_requests,
    anthropic_responses,
    openai_requests,
    openai_responses,
)

pytestmark = pytest.mark.slow  # hypothesis: hundreds of generated messages a test


def _comparable(req: ChatRequest) -> ChatRequest:
    """Meta carries call context that is not part of the wire body, except the end user."""
    return dataclasses.replace(req, meta=CallMeta(user=req.meta.user))


def _through_json(body: object) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(body))  # type: ignore[no-any-return]


@settings(max_examples=150)
@given(openai_requests())
def test_openai_request_roundtrip(req: ChatRequest) -> None:
    body = _through_json(openai_request.encode_request(req, req.model))
    decoded = openai_request.decode_request(body, CallMeta(wire="openai"))
    assert _comparable(decoded) == _comparable(req)


@settings(max_examples=150)
@given(anthropic_requests())
def test_anthropic_request_roundtrip(req: ChatRequest) -> None:
    body = _through_json(anthropic_request.encode_request(req, req.model))
    decoded = anthropic_request.decode_request(body, CallMeta(wire="anthropic"))
    assert _comparable(decoded) == _comparable(req)


@settings(max_examples=100)
@given(openai_responses())
def test_openai_response_roundtrip(resp: ChatResponse) -> None:
    body = _through_json(openai_response.encode_response(resp, "m"))
    assert openai_response.decode_response(body) == resp


@settings(max_examples=100)
@given(anthropic_responses())
def test_anthropic_response_roundtrip(resp: ChatResponse) -> None:
    body = _through_json(anthropic_response.encode_response(resp, "m"))
    assert anthropic_response.decode_response(body) == resp


@settings(max_examples=100)
@given(anthropic_requests())
def test_anthropic_request_crosses_to_openai_wire(req: ChatRequest) -> None:
    """Any Anthropic request encodes to a valid OpenAI body that decodes again."""
    body = _through_json(openai_request.encode_request(req, "gpt", same_wire=False))
    decoded = openai_request.decode_request(body, CallMeta())
    assert decoded.max_tokens == req.max_tokens

    def calls(r: ChatRequest) -> list[tuple[str, str, str]]:
        return [
            (p.id, p.name, p.arguments)
            for m in r.messages
            for p in m.parts
            if isinstance(p, ToolCallPart)
        ]

    assert calls(decoded) == calls(req)
