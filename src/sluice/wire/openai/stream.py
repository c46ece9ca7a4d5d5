"""OpenAI `chat.completion.chunk` SSE ⇄ neutral stream events."""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.errors import SluiceError, UpstreamMalformedError
from sluice.types import (
    Finish,
    RateLimitInfo,
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
from sluice.wire.openai.response import (
    FINISH_FROM_OPENAI,
    FINISH_TO_OPENAI,
    decode_usage,
    encode_usage,
)

DONE = b"data: [DONE]\n\n"
_TEXT_TAIL = b'},"logprobs":null,"finish_reason":null}]}\n\n'


class ChunkDecoder:
    """Turns upstream chunks (parsed JSON) into neutral events, one chunk at a time."""

    __slots__ = ("_ratelimit", "_started", "finished")

    def __init__(self, ratelimit: RateLimitInfo | None = None) -> None:
        self._started = False
        self._ratelimit = ratelimit  # the upstream's rate-limit headers, on the StreamStart
        self.finished = False  # a Finish was decoded: the caller checks once, not per event

    def feed(self, chunk: Any) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            raise UpstreamMalformedError("stream chunk is not a JSON object")
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            fingerprint, tier = chunk.get("system_fingerprint"), chunk.get("service_tier")
            events.append(
                StreamStart(
                    id=str(chunk.get("id") or ""),
                    model=str(chunk.get("model") or ""),
                    created=int(chunk.get("created") or 0),
                    system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
                    service_tier=tier if isinstance(tier, str) else None,
                    ratelimit=self._ratelimit,
                )
            )
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            raise UpstreamMalformedError(f"upstream stream error: {err.get('message', chunk)}")
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            logprobs = choice.get("logprobs")
            content = logprobs.get("content") if logprobs and isinstance(logprobs, dict) else None
            delta = choice.get("delta") or {}
            if len(delta) == 1 and "content" in delta:  # the usual chunk: a piece of text
                if text := delta["content"]:
                    events.append(TextDelta(text, content or None))
            else:
                self._decode_delta(delta, events, content or None)
            reason = choice.get("finish_reason")
            if reason:
                self.finished = True
                events.append(Finish(FINISH_FROM_OPENAI.get(reason, "stop")))
        if chunk.get("usage"):
            events.append(UsageUpdate(decode_usage(chunk["usage"])))
        return events

    @staticmethod
    def _decode_delta(
        delta: dict[str, Any], events: list[StreamEvent], logprobs: list[Any] | None
    ) -> None:
        reasoning = delta.get("reasoning_content")
        if reasoning:
            events.append(ThinkingDelta(reasoning))
        content = delta.get("content")
        if content:
            events.append(TextDelta(content, logprobs))
        refusal = delta.get("refusal")
        if refusal:
            events.append(TextDelta(refusal))
        for call in delta.get("tool_calls") or ():
            index = int(call.get("index", 0))
            fn = call.get("function") or {}
            if call.get("id"):
                events.append(ToolCallStart(index, call["id"], fn.get("name") or ""))
            if fn.get("arguments"):
                events.append(ToolCallDelta(index, fn["arguments"]))


class ChunkEncoder:
    """Turns neutral events into the client's SSE bytes."""

    __slots__ = ("_created", "_extra", "_id", "_include_usage", "_model", "_text_head", "_usage")

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = ""
        self._created = 0
        self._usage: Usage | None = None
        self._extra: dict[str, str] = {}  # system_fingerprint, service_tier: on every chunk
        # The bytes of a text chunk up to its text (the same for every chunk of a stream):
        # most chunks are text, and joining bytes is cheaper than dumping the whole dict.
        self._text_head: bytes | None = None

    def _text(self, text: str) -> bytes:
        """`_delta({"content": text})`, byte for byte (test_openai_stream_encoder)."""
        head = self._text_head
        if head is None:
            self._text_head = head = (
                self._chunk([{"index": 0, "delta": {"content": ""}}]).partition(
                    b'"choices":[{"index":0,"delta":{"content":'
                )[0]
                + b'"choices":[{"index":0,"delta":{"content":'
            )
        return head + orjson.dumps(text) + _TEXT_TAIL

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            **self._extra,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def _delta(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: list[dict[str, Any]] | None = None,
    ) -> bytes:
        lp = None if logprobs is None else {"content": logprobs, "refusal": None}
        return self._chunk([{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}])

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            if event.logprobs is None:
                if (head := self._text_head) is not None:  # `_text`, without its call
                    return head + orjson.dumps(event.text) + _TEXT_TAIL
                return self._text(event.text)
            return self._delta({"content": event.text}, logprobs=event.logprobs)
        if isinstance(event, ToolCallDelta):
            return self._delta(
                {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
            )
        if isinstance(event, StreamStart):
            self._text_head = None  # id, created and extras change here
            self._id = mapping.answer_id(event.id, "chatcmpl-")
            self._created = event.created or int(time.time())
            if event.system_fingerprint is not None:
                self._extra["system_fingerprint"] = event.system_fingerprint
            if event.service_tier is not None:
                self._extra["service_tier"] = event.service_tier
            return self._delta({"role": "assistant", "content": ""})
        if isinstance(event, ToolCallStart):
            call = {
                "index": event.index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return self._delta({"tool_calls": [call]})
        if isinstance(event, Finish):
            return self._delta({}, FINISH_TO_OPENAI[event.reason])
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
        return b""

    def close(self) -> bytes:
        """The tail after the last event: the usage chunk (if asked for) and [DONE]."""
        tail = b""
        if self._include_usage and self._usage is not None:
            tail = self._chunk([], usage=encode_usage(self._usage))
        return tail + DONE

    def error(self, err: SluiceError) -> bytes:
        """A well-formed error chunk for a failure after the stream started."""
        return b"data: " + orjson.dumps(err.openai_body()) + b"\n\n"
