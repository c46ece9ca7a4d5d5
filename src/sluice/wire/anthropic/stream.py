"""Anthropic Messages SSE events ⇄ neutral stream events.

The encoder must produce strictly sequential content blocks (start, deltas, stop), while a
neutral stream from an OpenAI upstream may interleave parallel tool calls. The first tool
call streams live; tool calls that start while it is open are buffered and emitted, whole
and in order, when it closes — arguments are never lost or mixed between calls.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.errors import SluiceError, UpstreamMalformedError, UpstreamStatusError
from sluice.tokens import estimate_request_tokens
from sluice.types import (
    BlockEvent,
    ChatRequest,
    CitationDelta,
    Finish,
    FinishReason,
    OpaquePart,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from sluice.wire import mapping
from sluice.wire.anthropic.response import (
    STOP_FROM_ANTHROPIC,
    STOP_TO_ANTHROPIC,
    decode_usage,
    encode_usage,
)

_ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "invalid_request_error": 400,
    "request_too_large": 413,
}


class EventDecoder:
    """Turns upstream (event name, data) pairs into neutral events."""

    __slots__ = ("_opaque", "_tool_of_block", "_tools", "_usage")

    def __init__(self) -> None:
        self._usage = Usage()
        self._tool_of_block: dict[int, int] = {}
        self._tools = 0
        # Blocks with no neutral meaning, by index: the start block + input_json fragments,
        # passed on whole at content_block_stop.
        self._opaque: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def feed(self, data: Any) -> list[StreamEvent]:
        if not isinstance(data, dict):
            raise UpstreamMalformedError("stream event is not a JSON object")
        kind = data.get("type")
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            msg = data.get("message") or {}
            self._usage = decode_usage(msg.get("usage"))
            return [
                StreamStart(str(msg.get("id", "")), str(msg.get("model", "")), usage=self._usage)
            ]
        if kind == "message_delta":
            self._usage = decode_usage(data.get("usage"), self._usage)
            delta = data.get("delta") or {}
            events: list[StreamEvent] = []
            if delta.get("stop_reason"):
                reason = STOP_FROM_ANTHROPIC.get(delta["stop_reason"], "stop")
                events.append(Finish(reason, delta.get("stop_sequence")))
            events.append(UsageUpdate(self._usage))
            return events
        if kind == "error":
            err = data.get("error") or {}
            err_type = err.get("type", "api_error")
            raise UpstreamStatusError(
                f"upstream stream error ({err_type}): {err.get('message', '')}",
                upstream_status=_ERROR_STATUS.get(err_type, 500),
            )
        if kind == "content_block_stop":
            return self._block_stop(data)
        return []  # ping, message_stop, unknown future events

    def _block_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        held = self._opaque.pop(int(data.get("index", 0)), None)
        if held is None:
            return []
        block, fragments = held
        if fragments:
            try:
                block = {**block, "input": orjson.loads("".join(fragments))}
            except orjson.JSONDecodeError as exc:
                raise UpstreamMalformedError("a server tool's input is not JSON") from exc
        return [BlockEvent(OpaquePart("anthropic", block))]

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind not in ("tool_use", "text", "thinking") and isinstance(kind, str):
            self._opaque[int(data.get("index", 0))] = (block, [])
            return []
        if kind == "tool_use":
            tool = self._tools
            self._tools += 1
            self._tool_of_block[int(data.get("index", 0))] = tool
            return [ToolCallStart(tool, str(block.get("id", "")), str(block.get("name", "")))]
        if block.get("type") == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        return []

    def _delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(delta.get("text", ""))]
        if kind == "citations_delta" and isinstance(delta.get("citation"), dict):
            return [CitationDelta(delta["citation"])]
        if kind == "input_json_delta":
            fragment = delta.get("partial_json", "")
            held = self._opaque.get(int(data.get("index", 0)))
            if held is not None:
                held[1].append(fragment)
                return []
            tool = self._tool_of_block.get(int(data.get("index", 0)))
            if fragment and tool is not None:
                return [ToolCallDelta(tool, fragment)]
            return []
        if kind == "thinking_delta":
            return [ThinkingDelta(delta.get("thinking", ""))]
        if kind == "signature_delta":
            return [ThinkingDelta("", delta.get("signature"))]
        return []


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventEncoder:
    """Turns neutral events into the client's Anthropic SSE bytes."""

    def __init__(self, model: str, req: ChatRequest | None = None) -> None:
        self._model = model
        self._req = req  # to announce input tokens when the upstream did not (OpenAI)
        self._index = -1  # index of the open block; -1 when none is open
        self._open: str | None = None  # "text" | "thinking" | "tool"
        self._live_tool: int | None = None
        self._pending: dict[int, list[str]] = {}  # buffered tool calls: [id, name, *args]
        self._pinged = False
        self._finish: FinishReason = "stop"
        self._stop_sequence: str | None = None
        self._usage = Usage()

    def _start_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self._index += 1
        self._open = kind
        out += _sse(
            "content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": block},
        )
        if not self._pinged:
            self._pinged = True
            out += _sse("ping", {"type": "ping"})
        return out

    def _block_delta(self, delta: dict[str, Any]) -> bytes:
        return _sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        out = _sse("content_block_stop", {"type": "content_block_stop", "index": self._index})
        was_tool = self._open == "tool"
        self._open = None
        self._live_tool = None
        if was_tool and self._pending:
            pending, self._pending = self._pending, {}
            for call in pending.values():
                out += self._start_block("tool", _tool_block(call[0], call[1]))
                if len(call) > 2:
                    out += self._block_delta(
                        {"type": "input_json_delta", "partial_json": "".join(call[2:])}
                    )
                out += _sse(
                    "content_block_stop", {"type": "content_block_stop", "index": self._index}
                )
                self._open = None
        return out

    def _whole_block(self, part: OpaquePart) -> bytes:
        """A server-tool block as the API streams it: start (input empty), the input as one
        input_json_delta, stop."""
        block = part.block
        has_input = "input" in block and block["input"] != {}
        start = {**block, "input": {}} if has_input else block
        out = self._start_block("opaque", start)
        if has_input:
            fragment = orjson.dumps(block["input"]).decode()
            out += self._block_delta({"type": "input_json_delta", "partial_json": fragment})
        return out + self._close_block()

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, BlockEvent):
            return self._whole_block(event.part) if event.part.wire == "anthropic" else b""
        if isinstance(event, CitationDelta):
            out = (
                b""
                if self._open == "text"
                else self._start_block("text", {"type": "text", "text": "", "citations": []})
            )
            return out + self._block_delta({"type": "citations_delta", "citation": event.citation})
        if isinstance(event, TextDelta):
            out = (
                b""
                if self._open == "text"
                else self._start_block("text", {"type": "text", "text": ""})
            )
            return out + self._block_delta({"type": "text_delta", "text": event.text})
        if isinstance(event, ToolCallDelta):
            if event.index == self._live_tool:
                return self._block_delta(
                    {"type": "input_json_delta", "partial_json": event.arguments}
                )
            self._pending.setdefault(event.index, ["", ""]).append(event.arguments)
            return b""
        if isinstance(event, ToolCallStart):
            if self._open == "tool":
                self._pending[event.index] = [event.id, event.name]
                return b""
            out = self._start_block("tool", _tool_block(event.id, event.name))
            self._live_tool = event.index
            return out
        if isinstance(event, ThinkingDelta):
            out = (
                b""
                if self._open == "thinking"
                else self._start_block("thinking", {"type": "thinking", "thinking": ""})
            )
            if event.signature:
                return out + self._block_delta(
                    {"type": "signature_delta", "signature": event.signature}
                )
            return out + self._block_delta({"type": "thinking_delta", "thinking": event.thinking})
        if isinstance(event, StreamStart):
            if event.usage is not None:
                self._usage = event.usage
            elif self._req is not None:  # the count is known before the call: announce it
                self._usage = Usage(input_tokens=estimate_request_tokens(self._req))
            message: dict[str, Any] = {
                "id": mapping.answer_id(event.id, "msg_"),
                "type": "message",
                "role": "assistant",
                "model": self._model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": encode_usage(self._usage),
            }
            return _sse("message_start", {"type": "message_start", "message": message})
        if isinstance(event, Finish):
            self._finish, self._stop_sequence = event.reason, event.stop_sequence
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        return b""

    def close(self) -> bytes:
        out = self._close_block()
        out += _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": STOP_TO_ANTHROPIC[self._finish],
                    "stop_sequence": self._stop_sequence,
                },
                "usage": encode_usage(self._usage),
            },
        )
        return out + _sse("message_stop", {"type": "message_stop"})

    def error(self, err: SluiceError) -> bytes:
        return _sse("error", err.anthropic_body())


def _tool_block(call_id: str, name: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}
