"""OpenAI Chat Completions response ⇄ neutral `ChatResponse` (non-streaming)."""

from __future__ import annotations

import time
from typing import Any

from sluice.errors import UpstreamMalformedError
from sluice.types import (
    ChatResponse,
    FinishReason,
    Part,
    TextPart,
    ToolCallPart,
    Usage,
)
from sluice.wire import mapping

FINISH_FROM_OPENAI: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
FINISH_TO_OPENAI: dict[FinishReason, str] = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def decode_usage(raw: dict[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cache_read_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(
            details.get("cache_write_tokens") or raw.get("cache_creation_input_tokens") or 0
        ),
    )


def encode_usage(usage: Usage) -> dict[str, Any]:
    details: dict[str, Any] = {"cached_tokens": usage.cache_read_tokens}
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": details,
    }
    if usage.cache_write_tokens:
        # No OpenAI field exists for cache writes (Anthropic upstreams have them); this
        # name is the one LiteLLM clients already read.
        details["cache_write_tokens"] = usage.cache_write_tokens
        out["cache_creation_input_tokens"] = usage.cache_write_tokens
    return out


def decode_response(body: Any) -> ChatResponse:
    try:
        choice = body["choices"][0]
        message = choice["message"]
        parts: list[Part] = []
        content = message.get("content")
        if isinstance(content, str) and content:
            parts.append(TextPart(content))
        elif isinstance(content, list):
            parts.extend(TextPart(p["text"]) for p in content if p.get("type") == "text")
        refusal = message.get("refusal")
        if refusal:
            parts.append(TextPart(refusal))
        for call in message.get("tool_calls") or []:
            fn = call["function"]
            parts.append(ToolCallPart(call["id"], fn["name"], fn.get("arguments") or ""))
        finish = FINISH_FROM_OPENAI.get(choice.get("finish_reason") or "stop", "stop")
        if refusal and finish == "stop":
            finish = "content_filter"
        detail = choice.get("logprobs")
        annotations = message.get("annotations")
        return ChatResponse(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or ""),
            parts=parts,
            finish_reason=finish,
            usage=decode_usage(body.get("usage")),
            created=int(body.get("created") or 0),
            logprobs=_logprobs(detail),
            logprobs_detail=detail if isinstance(detail, dict) else None,
            system_fingerprint=_str_or_none(body.get("system_fingerprint")),
            service_tier=_str_or_none(body.get("service_tier")),
            annotations=annotations if isinstance(annotations, list) and annotations else None,
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UpstreamMalformedError(f"unexpected OpenAI response shape: {exc!r}") from exc


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _logprobs(raw: Any) -> list[float] | None:
    """Per-token logprobs of `choices[0].logprobs.content`, when present."""
    content = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(content, list) or not content:
        return None
    return [float(t["logprob"]) for t in content if isinstance(t, dict) and "logprob" in t]


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    texts = [p.text for p in resp.parts if isinstance(p, TextPart)]
    calls = [p for p in resp.parts if isinstance(p, ToolCallPart)]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    annotations = resp.annotations or mapping.url_annotations(
        [(p.text, p.citations) for p in resp.parts if isinstance(p, TextPart)]
    )
    if annotations:
        message["annotations"] = annotations
    out: dict[str, Any] = {
        "id": mapping.answer_id(resp.id, "chatcmpl-"),
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": resp.logprobs_detail,
                "finish_reason": FINISH_TO_OPENAI[resp.finish_reason],
            }
        ],
        "usage": encode_usage(resp.usage),
    }
    if resp.system_fingerprint is not None:
        out["system_fingerprint"] = resp.system_fingerprint
    if resp.service_tier is not None:
        out["service_tier"] = resp.service_tier
    return out
