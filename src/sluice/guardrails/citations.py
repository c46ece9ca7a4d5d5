"""`file_citation` positions moved with the answer's text when the guard changes it.

The grounding stage puts each `file_citation`'s `index` at its `[n]` marker in the answer as
the model wrote it (placeholders and all). The caller gets that text restored (`<EMAIL_1>` →
the address), masked (`[email]`) or sanitized, so the positions move: the k-th `[n]` marker
of the model's text stays the k-th `[n]` of the caller's text (no change the guard makes
adds or removes one: placeholders, values and `[email]` hold no `[digits]`).

`moved_citations` does it for a whole answer; `MarkerTrack` for a stream — fed the text on
both sides as it passes (a marker may be split across deltas), it maps each citation when
it goes out, and gives the same positions as the whole answer whatever the chunking.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

MARKER = re.compile(r"\[\d{1,3}\]")  # the grounding stage's `[n]` (`retrieval.grounding`)
MAX_MARKER = len("[999]")
# Markers kept per side that no citation has used yet (the citations of a delta come right
# after it; a replayed answer's after its whole text): beyond, the oldest are forgotten.
MAX_TRACKED = 4096


def moved_citations(
    old: str, new: str, citations: list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    """`file_citation` positions (`index`, at a `[n]` marker) moved from `old` to `new`, the
    same text after restoring, masking or sanitizing: the k-th `[n]` stays the k-th."""
    if not citations or old == new:
        return citations
    out = []
    for cite in citations:
        at = cite.get("index")
        if cite.get("type") == "file_citation" and isinstance(at, int):
            marker = MARKER.match(old, at)
            if marker is not None:
                nth = old.count(marker.group(), 0, at)
                pos = -1
                for _ in range(nth + 1):
                    pos = new.find(marker.group(), pos + 1)
                    if pos < 0:
                        break
                if pos >= 0:
                    cite = {**cite, "index": pos}
        out.append(cite)
    return out


def restored_citation(cite: dict[str, Any], restore: Callable[[str], str]) -> dict[str, Any]:
    """A citation with the caller's values back in its texts: Anthropic's `cited_text` and
    `document_title` quote the documents, which went to the model masked."""
    out = cite
    for key, value in cite.items():
        if isinstance(value, str) and "<" in value:
            back = restore(value)
            if back != value:
                out = {**out, key: back}
    return out


class _Markers:
    """The `[n]` markers of one side's text as it arrives: position ↔ (marker, rank among
    the same marker), in text order."""

    __slots__ = ("_at", "_base", "_counts", "_order", "_rank", "_tail")

    def __init__(self) -> None:
        self._tail = ""  # a marker's beginning (`[`, `[1`) that the next piece may finish
        self._base = 0  # the position of `_tail` in the text
        self._counts: dict[str, int] = {}
        self._order: deque[tuple[int, str, int]] = deque()  # (position, marker, rank)
        self._at: dict[int, tuple[str, int]] = {}  # position → (marker, rank)
        self._rank: dict[tuple[str, int], int] = {}  # (marker, rank) → position

    def feed(self, text: str) -> None:
        base = self._base
        if "[" not in text and not self._tail:
            self._base = base + len(text)
            return
        buf = self._tail + text
        end = 0
        for match in MARKER.finditer(buf):
            marker = match.group()
            rank = self._counts.get(marker, 0)
            self._counts[marker] = rank + 1
            pos = base + match.start()
            self._order.append((pos, marker, rank))
            self._at[pos] = (marker, rank)
            self._rank[(marker, rank)] = pos
            end = match.end()
        while len(self._order) > MAX_TRACKED:
            self._forget(self._order[0][0] + 1)
        keep = len(buf)
        open_at = buf.rfind("[", max(end, len(buf) - MAX_MARKER + 1))
        if open_at != -1 and (open_at == len(buf) - 1 or buf[open_at + 1 :].isdigit()):
            keep = open_at
        self._tail = buf[keep:]
        self._base = base + keep

    def at(self, pos: int) -> tuple[str, int] | None:
        """The marker at `pos` and its rank; the markers before it are forgotten."""
        found = self._at.get(pos)
        self._forget(pos)
        return found

    def find(self, marker: str, rank: int) -> int | None:
        """The position of the `rank`-th `marker`; the markers before it are forgotten."""
        pos = self._rank.get((marker, rank))
        if pos is not None:
            self._forget(pos)
        return pos

    def _forget(self, before: int) -> None:
        order = self._order
        while order and order[0][0] < before:
            pos, marker, rank = order.popleft()
            del self._at[pos]
            del self._rank[(marker, rank)]


class MarkerTrack:
    """Maps a streamed answer's `file_citation` positions from the model's text to the
    caller's: `model` sees each delta as it comes, `sent` each one as it goes out, and
    `move` is asked once the text up to the citation's marker has gone out."""

    __slots__ = ("_model", "_sent", "model", "sent")

    def __init__(self) -> None:
        self._model = _Markers()
        self._sent = _Markers()
        # Called per delta: the feeds themselves (no extra frame).
        self.model: Callable[[str], None] = self._model.feed
        self.sent: Callable[[str], None] = self._sent.feed

    def move(self, cite: dict[str, Any]) -> dict[str, Any]:
        """The citation with its `index` in the caller's text (as it was if its marker is
        not known: not a `file_citation`, or not at a marker)."""
        at = cite.get("index")
        if cite.get("type") != "file_citation" or not isinstance(at, int):
            return cite
        found = self._model.at(at)
        if found is None:
            return cite
        pos = self._sent.find(*found)
        return cite if pos is None or pos == at else {**cite, "index": pos}
