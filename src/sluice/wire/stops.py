"""Stop sequences applied by Sluice, for callers whose API reports which one matched.

An Anthropic caller gets `stop_reason: stop_sequence` and the `stop_sequence` that ended the
answer. OpenAI upstreams stop at a sequence without saying so (`finish_reason: stop` either
way), so for that pairing Sluice does not send the sequences upstream: it watches the text,
cuts it at the first match, ends the answer there and closes the upstream (which stops
generating). Usage is then Sluice's count of the prompt and of the text up to and including
the match — the upstream's own usage would only arrive at the natural end.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from sluice.tokens import count_text, estimate_request_tokens
from sluice.types import (
    ChatRequest,
    EventStream,
    Finish,
    StreamEvent,
    TextDelta,
    Usage,
    UsageUpdate,
)


class StopCutter:
    """Finds the first stop sequence across text fragments, holding back only a tail that
    could still be the start of one."""

    __slots__ = ("_held", "_keep", "_stops")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._keep = max((len(s) for s in self._stops), default=1) - 1
        self._held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """(text safe to emit now, the stop sequence that matched or None)."""
        buf = self._held + text
        hits = [(i, s) for s in self._stops if (i := buf.find(s)) >= 0]
        if hits:
            index, stop = min(hits)
            self._held = ""
            return buf[:index], stop
        safe = max(len(buf) - self._keep, 0)
        self._held = buf[safe:]
        return buf[:safe], None

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


async def cut_at_stops(events: EventStream, req: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
    """`events` with the request's stop sequences applied (see the module docstring)."""
    cutter = StopCutter(req.stop)
    sent: list[str] = []
    try:
        async for event in events:
            if isinstance(event, TextDelta):
                text, stop = cutter.feed(event.text)
                if text:
                    sent.append(text)
                    yield TextDelta(text)
                if stop is not None:
                    yield Finish("stop_sequence", stop)
                    output = count_text("".join(sent) + stop)
                    yield UsageUpdate(Usage(estimate_request_tokens(req), output))
                    return
                continue
            if isinstance(event, Finish) and (rest := cutter.flush()):
                yield TextDelta(rest)
            yield event
    finally:
        await events.aclose()
