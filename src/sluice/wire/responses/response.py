"""Neutral `ChatResponse` → OpenAI Responses API `response` object (non-streaming).

An answer is a list of output items: one `message` item holding the text as `output_text`,
then one `function_call` item per tool call. The same item builders serve the stream
encoder, so a streamed answer's `response.completed` equals the plain answer.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sluice.types import ChatResponse, FinishReason, TextPart, ToolCallPart, Usage
from sluice.wire.responses.request import ResponsesParams


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (`resp_…`, `msg_…`, `fc_…`): 24 random bytes, hex."""
    return f"{prefix}_{secrets.token_hex(24)}"


def encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(resp: ChatResponse) -> list[dict[str, Any]]:
    texts = [p.text for p in resp.parts if isinstance(p, TextPart)]
    items: list[dict[str, Any]] = []
    if texts:
        items.append(message_item(new_id("msg"), "".join(texts)))
        # Grounded answers (file_search, sluice.retrieval): `file_citation` annotations.
        offset, notes = 0, []
        for part in resp.parts:
            if isinstance(part, TextPart):
                for cite in part.citations or ():
                    if cite.get("type") == "file_citation":
                        notes.append({**cite, "index": offset + int(cite.get("index", 0))})
                offset += len(part.text)
        items[0]["content"][0]["annotations"] = notes
    for part in resp.parts:
        if isinstance(part, ToolCallPart):
            items.append(call_item(new_id("fc"), part.id, part.name, part.arguments))
    return items


def status_of(finish: FinishReason | None) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) for a finish reason."""
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(
    response_id: str,
    model: str,
    params: ResponsesParams,
    *,
    created_at: float,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `response` object, echoing the request as the SDK's `Response` model expects."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(created_at),
        "completed_at": int(time.time()) if status == "completed" else None,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": params.instructions,
        "max_output_tokens": params.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": params.parallel_tool_calls,
        "previous_response_id": params.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": params.store,
        "temperature": params.temperature,
        "text": {"format": params.text_format},
        "tool_choice": params.tool_choice,
        "tools": params.tools,
        "top_p": params.top_p,
        "truncation": "disabled",
        "usage": encode_usage(usage) if usage is not None else None,
        "user": params.user,
        "metadata": params.metadata,
    }


def encode_response(
    resp: ChatResponse, model: str, response_id: str, params: ResponsesParams, created_at: float
) -> dict[str, Any]:
    status, incomplete = status_of(resp.finish_reason)
    return response_object(
        response_id,
        model,
        params,
        created_at=created_at,
        status=status,
        output=output_items(resp),
        usage=resp.usage,
        incomplete=incomplete,
    )
