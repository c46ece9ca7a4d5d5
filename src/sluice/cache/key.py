"""The cache key: a sha256 over a canonical JSON of what can change the answer.

Included: the public model, system text, every message part (text, images, tool calls,
tool results, thinking), tools, tool choice, parallel tool calls, response format, sampling
parameters (temperature, top_p, top_k, seed), stop sequences, max_tokens and the wire's
extra fields. Excluded: `stream` (a stored answer can be played either way), `meta` (request
id, headers, user, metadata) and `cache_control` markers (they steer the provider's prompt
cache, not the answer).

Canonical means: object keys sorted at every depth, no whitespace, tool-call arguments that
are JSON parsed and dumped again (so `{"a": 1, "b": 2}` and `{"b":2,"a":1}` are one key),
and numbers that mean the same value written the same way (`temperature` 0 and 0.0).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import orjson

from sluice.types import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    OpaquePart,
    Part,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)

KEY_VERSION = 1  # bump when the canonical form changes, so old entries are not read


def cache_key(req: ChatRequest, tenant: str, namespace: str) -> str:
    """A hex sha256 that is equal for two requests exactly when their answer-relevant
    parts are equal, within one tenant and one namespace."""
    choice = req.tool_choice
    doc = {
        "v": KEY_VERSION,
        "tenant": tenant,
        "ns": namespace,
        "model": req.model,
        "system": [p.text for p in req.system],
        "messages": [_message(m) for m in req.messages],
        "tools": [_tool(t) for t in req.tools],
        "tool_choice": None if choice is None else [choice.mode, choice.name],
        "parallel_tool_calls": req.parallel_tool_calls,
        "response_format": req.response_format,
        "temperature": _num(req.temperature),
        "top_p": _num(req.top_p),
        "top_k": req.top_k,
        "stop": req.stop,
        "seed": req.seed,
        "max_tokens": req.max_tokens,
        "extras": req.extras,
    }
    if req.native_tools:
        doc["native_tools"] = req.native_tools
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


def _message(msg: Message) -> list[Any]:
    return [msg.role, msg.name, [_part(p) for p in msg.parts]]


def _part(part: Part) -> list[Any]:
    if isinstance(part, TextPart):
        return ["text", part.text]
    if isinstance(part, ImagePart):
        return ["image", part.url, part.detail]
    if isinstance(part, ToolCallPart):
        return ["tool_call", part.id, part.name, *_arguments(part.arguments)]
    if isinstance(part, ToolResultPart):
        return [
            "tool_result",
            part.tool_call_id,
            part.is_error,
            [_part(p) for p in part.content],
        ]
    if isinstance(part, ThinkingPart):
        return ["thinking", part.thinking, part.signature]
    if isinstance(part, OpaquePart):
        return ["opaque", part.wire, part.block]
    if isinstance(part, DocumentPart | AudioPart):
        # The caller's block when there is one (same bytes, same key), else every field.
        fields = dataclasses.asdict(part)
        return [type(part).__name__, fields.pop("raw", None) or fields]
    raise TypeError(f"unknown part type {type(part).__name__}")  # pragma: no cover


def _arguments(raw: str) -> list[str]:
    """Canonical JSON text (keys sorted, no whitespace), or the raw text when it is not
    JSON; tagged so that the two cannot collide. The standard library parses here because it
    keeps integers exact at any size (orjson turns big ones into floats)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return ["raw", raw]
    return ["json", json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)]


def _tool(tool: Tool) -> list[Any]:
    base = [tool.name, tool.description, tool.parameters]
    return base if tool.strict is None else [*base, tool.strict]
