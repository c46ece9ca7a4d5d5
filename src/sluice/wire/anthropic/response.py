"""Anthropic Messages response ⇄ neutral `ChatResponse` (non-streaming)."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.errors import UpstreamMalformedError
from sluice.types import (
    ChatResponse,
    FinishReason,
    OpaquePart,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)
from sluice.wire import mapping
from sluice.wire.anthropic.request import arguments_object

STOP_FROM_ANTHROPIC: dict[str, FinishReason] = {
    "end_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "stop_sequence": "stop_sequence",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
STOP_TO_ANTHROPIC: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
    "content_filter": "refusal",
}

_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def decode_usage(raw: dict[str, Any] | None, base: Usage | None = None) -> Usage:
    """Anthropic counts cached tokens apart from input_tokens; neutral input includes them."""
    usage = Usage() if base is None else Usage(**{f: getattr(base, f) for f in _FIELDS})
    if not raw:
        return usage
    read = raw.get("cache_read_input_tokens")
    write = raw.get("cache_creation_input_tokens")
    if read is not None:
        usage.cache_read_tokens = int(read)
    if write is not None:
        usage.cache_write_tokens = int(write)
    if raw.get("input_tokens") is not None:
        usage.input_tokens = (
            int(raw["input_tokens"]) + usage.cache_read_tokens + usage.cache_write_tokens
        )
    if raw.get("output_tokens") is not None:
        usage.output_tokens = int(raw["output_tokens"])
    return usage


def encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": max(
            usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0
        ),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def decode_response(body: Any) -> ChatResponse:
    try:
        parts: list[Part] = []
        for block in body["content"]:
            kind = block.get("type")
            if kind == "text":
                citations = block.get("citations")
                parts.append(TextPart(block["text"], citations=citations or None))
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                parts.append(ToolCallPart(block["id"], block["name"], arguments))
            elif kind == "thinking":
                parts.append(ThinkingPart(block.get("thinking", ""), block.get("signature")))
            elif isinstance(kind, str):
                parts.append(OpaquePart("anthropic", block))  # redacted_thinking, server tools
        return ChatResponse(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or ""),
            parts=parts,
            finish_reason=STOP_FROM_ANTHROPIC.get(body.get("stop_reason") or "end_turn", "stop"),
            usage=decode_usage(body.get("usage")),
            stop_sequence=body.get("stop_sequence"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise UpstreamMalformedError(f"unexpected Anthropic response shape: {exc!r}") from exc


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in resp.parts:
        if isinstance(part, TextPart):
            text: dict[str, Any] = {"type": "text", "text": part.text}
            if part.citations:
                text["citations"] = part.citations
            content.append(text)
        elif isinstance(part, OpaquePart) and part.wire == "anthropic":
            content.append(part.block)
        elif isinstance(part, ToolCallPart):
            content.append(
                {
                    "type": "tool_use",
                    "id": part.id,
                    "name": part.name,
                    "input": arguments_object(part.arguments),
                }
            )
        elif isinstance(part, ThinkingPart):
            content.append(
                {"type": "thinking", "thinking": part.thinking, "signature": part.signature or ""}
            )
    return {
        "id": mapping.answer_id(resp.id, "msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_TO_ANTHROPIC[resp.finish_reason],
        "stop_sequence": resp.stop_sequence,
        "usage": encode_usage(resp.usage),
    }
