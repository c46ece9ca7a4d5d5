"""`file_citation` annotations for a streamed grounded answer (Responses API `file_search`).

`CitationScanner` finds the `[n]` markers in the text as it streams — a marker split across
deltas (`"[1"` then `"]"`) is found once it is complete — and `AnnotatedStream` puts a
`CitationDelta` (OpenAI's `file_citation`: file_id, filename, index = the marker's position in
the answer) right after the text delta that completed the marker. The Responses encoder turns
each into `response.output_text.annotation.added` and keeps it for `response.completed`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from sluice.retrieval.grounding import _CITE, Source
from sluice.types import CitationDelta, EventStream, StreamEvent, TextDelta

_MAX_MARKER = 5  # "[999]"


class CitationScanner:
    """Feed the answer text piece by piece; get the citations each piece completed."""

    __slots__ = ("_base", "_buf", "_by_n")

    def __init__(self, sources: list[Source]) -> None:
        self._by_n = {s.n: s for s in sources}
        self._buf = ""  # the text not scanned yet for good (at most a partial marker)
        self._base = 0  # the position of `_buf` in the answer

    def feed(self, text: str) -> list[dict[str, Any]]:
        buf = self._buf + text
        out: list[dict[str, Any]] = []
        end = 0
        for match in _CITE.finditer(buf):
            end = match.end()
            source = self._by_n.get(int(match.group(1)))
            if source is not None:
                chunk = source.result.chunk
                out.append(
                    {
                        "type": "file_citation",
                        "index": self._base + match.start(),
                        "file_id": chunk.file_id,
                        "filename": chunk.filename,
                    }
                )
        keep = end
        open_at = buf.rfind("[", end)
        if open_at != -1 and len(buf) - open_at < _MAX_MARKER and buf[open_at + 1 :].isdigit():
            keep = open_at  # "[", "[1", "[12": may become a marker with the next piece
        elif open_at != -1 and open_at == len(buf) - 1:
            keep = open_at
        else:
            keep = len(buf)
        self._base += keep
        self._buf = buf[keep:]
        return out


class AnnotatedStream:
    """A stream with a `CitationDelta` after each text delta that completed a `[n]` marker of
    a known source. Passes `aclose` / `end_early` through to the stream it wraps."""

    __slots__ = ("_events", "_pending", "_scanner")

    def __init__(self, events: EventStream, sources: list[Source]) -> None:
        self._events = events
        self._scanner = CitationScanner(sources)
        self._pending: deque[StreamEvent] = deque()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._pending:
            return self._pending.popleft()
        event = await anext(self._events)
        if isinstance(event, TextDelta) and event.text:
            self._pending.extend(CitationDelta(c) for c in self._scanner.feed(event.text))
        return event

    async def aclose(self) -> None:
        await self._events.aclose()

    async def end_early(self) -> None:
        early = getattr(self._events, "end_early", None)
        if early is not None:
            await early()
