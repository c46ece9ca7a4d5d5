"""Fold a neutral event stream into the `ChatResponse` it amounts to.

Used wherever a streamed answer must be seen whole: usage accounting, caching a streamed
miss, tests that compare streamed and non-streamed answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sluice.types import (
    BlockEvent,
    ChatResponse,
    CitationDelta,
    EventStream,
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
    next_batch,
)


class StreamCollector:
    __slots__ = (
        "_calls",
        "_citations",
        "_logprobs",
        "_opaque",
        "_order",
        "_response",
        "_text",
        "_thinking",
        "finished",
    )

    def __init__(self) -> None:
        self._response = ChatResponse(id="", model="", parts=[])
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, *argument fragments]
        # "thinking" | "text" | "tool:<index>" | "opaque:<n>", first-seen order
        self._order: list[str] = []
        self._opaque: list[BlockEvent] = []
        self._citations: list[dict[str, Any]] = []
        self._logprobs: list[dict[str, Any]] = []
        self.finished = False

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            if "text" not in self._order:  # `_seen("text")`, without the call per event
                self._order.append("text")
            self._text.append(event.text)
            if event.logprobs:
                self._logprobs.extend(event.logprobs)
        elif isinstance(event, ToolCallDelta):
            self._calls.setdefault(event.index, ["", ""]).append(event.arguments)
        elif isinstance(event, ToolCallStart):
            self._seen(f"tool:{event.index}")
            call = self._calls.setdefault(event.index, ["", ""])
            call[0], call[1] = event.id, event.name
        elif isinstance(event, ThinkingDelta):
            self._seen("thinking")
            self._thinking.append(event.thinking)
        elif isinstance(event, BlockEvent):
            self._order.append(f"opaque:{len(self._opaque)}")
            self._opaque.append(event)
        elif isinstance(event, CitationDelta):
            self._seen("text")
            self._citations.append(event.citation)
        elif isinstance(event, StreamStart):
            self._response.id, self._response.model = event.id, event.model
            self._response.created = event.created
            self._response.system_fingerprint = event.system_fingerprint
            self._response.service_tier = event.service_tier
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
                parts.append(TextPart("".join(self._text), citations=self._citations or None))
            elif key.startswith("opaque:"):
                parts.append(self._opaque[int(key[7:])].part)
            elif key == "thinking":
                parts.append(ThinkingPart("".join(self._thinking)))
            else:
                call = self._calls[int(key[5:])]
                parts.append(ToolCallPart(call[0], call[1], "".join(call[2:])))
        self._response.parts = parts
        if self._logprobs:
            self._response.logprobs_detail = {"content": self._logprobs, "refusal": None}
            self._response.logprobs = [float(t.get("logprob", 0.0)) for t in self._logprobs]
        return self._response


OnEnd = Callable[[ChatResponse, bool], Awaitable[None]]


class WatchedStream:
    """Passes a stream's events through, folding them, and calls `on_end(response, completed)`
    exactly once: `completed` is True when the stream ran to its end with a finish; False when
    it failed, was cancelled, or was closed early (`response` then holds what arrived)."""

    __slots__ = ("_collector", "_done", "_events", "_on_end")

    def __init__(self, events: EventStream, on_end: OnEnd) -> None:
        self._events = events
        self._on_end = on_end
        self._collector = StreamCollector()
        self._done = False

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        try:
            event = await anext(self._events)
        except StopAsyncIteration:
            await self._end(self._collector.finished)
            raise
        except BaseException:
            await self._end(False)
            raise
        self._collector.add(event)
        return event

    async def next_batch(self) -> list[StreamEvent]:
        """`__anext__` for the events of one read (`sluice.types.next_batch`)."""
        try:
            events = await next_batch(self._events)
        except StopAsyncIteration:
            await self._end(self._collector.finished)
            raise
        except BaseException:
            await self._end(False)
            raise
        add = self._collector.add
        for event in events:
            add(event)
        return events

    async def aclose(self) -> None:
        """Settle first, then close the upstream: closing may drain it (or be cut short by
        a shutdown), and what was delivered must be charged either way."""
        try:
            await self.end_early()
        finally:
            await self._events.aclose()

    async def end_early(self) -> None:
        """Run `on_end` now for a stream being abandoned, innermost wrapper first (so the
        usage is settled before budgets read it), without touching the upstream."""
        early = getattr(self._events, "end_early", None)  # a wrapper that settles too
        try:
            if early is not None:
                await early()
        finally:
            await self._end(False)

    async def _end(self, completed: bool) -> None:
        if not self._done:
            self._done = True
            await self._on_end(self._collector.response(), completed)
