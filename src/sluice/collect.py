"""Fold a neutral event stream into the `ChatResponse` it amounts to.

Used wherever a streamed answer must be seen whole: usage accounting, caching a streamed
miss, tests that compare streamed and non-streamed answers.
"""

from __future__ import annotations

from sluice.types import (
    ChatResponse,
    Finish,
    Part,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    UsageUpdate,
)


class StreamCollector:
    __slots__ = ("_calls", "_order", "_response", "_text", "_thinking", "finished")

    def __init__(self) -> None:
        self._response = ChatResponse(id="", model="", parts=[])
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, *argument fragments]
        self._order: list[str] = []  # "thinking" | "text" | "tool:<index>", first-seen order
        self.finished = False

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._seen("text")
            self._text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self._calls.setdefault(event.index, ["", ""]).append(event.arguments)
        elif isinstance(event, ToolCallStart):
            self._seen(f"tool:{event.index}")
            call = self._calls.setdefault(event.index, ["", ""])
            call[0], call[1] = event.id, event.name
        elif isinstance(event, ThinkingDelta):
            self._seen("thinking")
            self._thinking.append(event.thinking)
        elif isinstance(event, StreamStart):
            self._response.id, self._response.model = event.id, event.model
            self._response.created = event.created
            if event.usage is not None:
                self._response.usage = event.usage
            self._response.ratelimit = event.ratelimit
        elif isinstance(event, Finish):
            self.finished = True
            self._response.finish_reason = event.reason
            self._response.stop_sequence = event.stop_sequence
        elif isinstance(event, UsageUpdate):
            self._response.usage = event.usage

    def _seen(self, key: str) -> None:
        if key not in self._order:
            self._order.append(key)

    def response(self) -> ChatResponse:
        parts: list[Part] = []
        for key in self._order:
            if key == "text":
                parts.append(TextPart("".join(self._text)))
            elif key == "thinking":
                parts.append(ThinkingPart("".join(self._thinking)))
            else:
                call = self._calls[int(key[5:])]
                parts.append(ToolCallPart(call[0], call[1], "".join(call[2:])))
        self._response.parts = parts
        return self._response
