"""Play a whole `ChatResponse` as a neutral event stream (degraded answers, cache hits)."""

from __future__ import annotations

from sluice.types import (
    ChatResponse,
    EventStream,
    Finish,
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


async def events_from_response(resp: ChatResponse) -> EventStream:
    yield StreamStart(resp.id, resp.model, resp.created)
    tool_index = 0
    for part in resp.parts:
        if isinstance(part, TextPart):
            yield TextDelta(part.text)
        elif isinstance(part, ToolCallPart):
            yield ToolCallStart(tool_index, part.id, part.name)
            if part.arguments:
                yield ToolCallDelta(tool_index, part.arguments)
            tool_index += 1
        elif isinstance(part, ThinkingPart):
            yield ThinkingDelta(part.thinking, part.signature)
    yield Finish(resp.finish_reason, resp.stop_sequence)
    yield UsageUpdate(resp.usage)
