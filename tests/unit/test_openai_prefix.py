"""The OpenAI encoder keeps a stable prompt byte-identical, so OpenAI's automatic prefix
caching applies: same conversation prefix → same leading bytes, whatever else changes."""

from __future__ import annotations

import orjson

from sluice.config import DeploymentConfig, OpenAIProviderConfig
from sluice.providers.base import Deployment
from sluice.providers.openai import OpenAIProvider
from sluice.types import (
    CallMeta,
    ChatRequest,
    Message,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)

SYSTEM = "You answer questions about the policy. " * 50
TOOL = Tool("lookup", "Find a clause", {"type": "object", "properties": {"n": {"type": "integer"}}})


def _request(
    last: str, *, stream: bool = False, user: str | None = None, seed: int | None = None
) -> ChatRequest:
    history = [
        Message("user", [TextPart("What does clause 3 say?")]),
        Message("assistant", [ToolCallPart("call_1", "lookup", '{"n": 3}')]),
        Message("tool", [ToolResultPart("call_1", [TextPart("Clause 3: be kind.")])]),
        Message("assistant", [TextPart("It says: be kind.")]),
        Message("user", [TextPart(last)]),
    ]
    return ChatRequest(
        "gpt-4o-mini",
        history,
        system=[TextPart(SYSTEM)],
        tools=[TOOL],
        temperature=0.3,
        seed=seed,
        stream=stream,
        meta=CallMeta(request_id=f"req-{last}", user=user, wire="openai"),
    )


def _sent(req: ChatRequest) -> bytes:
    provider = OpenAIProvider("o", OpenAIProviderConfig(kind="openai", api_base="http://x/v1"))
    dep = Deployment.from_config(DeploymentConfig(id="d", provider="o", model="gpt-4o-mini"))
    return provider._body(req, dep)


def _common_prefix(a: bytes, b: bytes) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_same_request_encodes_to_the_same_bytes() -> None:
    assert _sent(_request("And clause 4?")) == _sent(_request("And clause 4?"))


def test_prefix_is_identical_up_to_the_new_message() -> None:
    a = _sent(_request("And clause 4?"))
    b = _sent(_request("And clause 9?", stream=True, user="someone", seed=7))
    shared = _common_prefix(a, b)
    # Everything before the last user message is byte-identical (model, system, history) ...
    last = a.index(b"And clause 4?")
    assert shared == last + len(b"And clause ")
    # ... and no per-request value (request id, user, stream, seed) comes before it.
    for noise in (b"req-", b"someone", b'"stream":', b'"seed":', b'"user":'):
        assert noise not in b[:shared]


def test_tools_and_stable_fields_encode_identically() -> None:
    a = orjson.loads(_sent(_request("x")))
    b = orjson.loads(_sent(_request("y", stream=True)))
    assert orjson.dumps(a["tools"]) == orjson.dumps(b["tools"])
    assert list(a)[:2] == ["model", "messages"]  # the prompt comes first in the body
