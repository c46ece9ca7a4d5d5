"""Play a whole `ChatResponse` as a neutral event stream (degraded answers, cache hits)."""

from __future__ import annotations

from sluice.types import (
    BlockEvent,
    ChatResponse,
    CitationDelta,
    EventStream,
    Finish,
    OpaquePart,
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
    yield StreamStart(
        resp.id,
        resp.model,
        resp.created,
        system_fingerprint=resp.system_fingerprint,
        service_tier=resp.service_tier,
    )
    tool_index = 0
    for part in resp.parts:
        if isinstance(part, TextPart):
            yield TextDelta(part.text)
            for citation in part.citations or ():
                yield CitationDelta(citation)
        elif isinstance(part, OpaquePart):
            yield BlockEvent(part)
        elif isinstance(part, ToolCallPart):
            yield ToolCallStart(tool_index, part.id, part.name)
            if part.arguments:
                yield ToolCallDelta(tool_index, part.arguments)
            tool_index += 1
        elif isinstance(part, ThinkingPart):
            yield ThinkingDelta(part.thinking, part.signature)
    yield Finish(resp.finish_reason, resp.stop_sequence)
    yield UsageUpdate(resp.usage)
