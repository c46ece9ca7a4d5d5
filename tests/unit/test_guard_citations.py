"""`file_citation` positions through the guard: the grounding stage puts each one at its `[n]`
marker in the text the model wrote (placeholders and all); the caller gets the text restored,
masked or sanitized, and each citation must still point at its marker there — in a stream
exactly as in the whole answer, whatever the chunking (one character per delta up to the
whole answer at once, the citations right after the delta that completed their marker)."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.guardrails.citations import MarkerTrack, moved_citations
from sluice.guardrails.config import GuardrailsConfig
from sluice.guardrails.mask import PLACEHOLDER
from sluice.guardrails.stage import GuardStage
from sluice.pipeline.context import CallContext, Result
from sluice.types import (
    ChatRequest,
    ChatResponse,
    CitationDelta,
    Finish,
    Message,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Usage,
    UsageUpdate,
)
from tests.unit.test_guard_stream import pieces

CALLER = "I am bob.tables@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111."
WORDS = ["vacuum", "reclaims", "dead", "tuples", "in", "the", "background", "<b>see</b>", "["]
# Values the model writes itself (masked in the answer when `pii.output` is `mask`).
OWN = ["jane.doe@example.com", "192.168.10.42", "078-05-1120"]
CITE = re.compile(r"\[(\d)\]")
CONFIGS = {
    "restore": {"pii": {"mode": "mask"}},
    "restore+mask+window": {
        "pii": {"mode": "mask", "output": "mask"},
        "output": {"window_tokens": 16},
    },
    "restore+secrets": {"pii": {"mode": "mask"}, "output": {"secrets": "block"}},
    "sanitize": {"pii": {"mode": "mask"}, "output": {"html": "sanitize"}},
}


def model_answer(seed: int, length: int, placeholders: list[str]) -> str:
    """The answer as the model writes it: the caller's placeholders, values of its own,
    words, `[n]` markers (some of sources that do not exist)."""
    rnd = random.Random(seed)
    out: list[str] = []
    while sum(map(len, out)) < length:
        roll = rnd.random()
        if roll < 0.2:
            out.append(rnd.choice(placeholders))
        elif roll < 0.3:
            out.append(rnd.choice(OWN))
        elif roll < 0.55:
            out.append(f"[{rnd.randint(1, 4)}]")
        else:
            out.append(rnd.choice(WORDS))
        out.append(rnd.choice([" ", "", ", ", ".\n"]))
    return "".join(out)


def citations(text: str) -> list[dict[str, Any]]:
    """What the grounding stage cites: a `[1]`..`[3]` marker (there is no source 4)."""
    return [
        {"type": "file_citation", "index": m.start(), "file_id": f"file-{m.group(1)}"}
        for m in CITE.finditer(text)
        if m.group(1) != "4"
    ]


def request() -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", [TextPart(CALLER)])])


def placeholders_of(ctx: CallContext) -> list[str]:
    first = ctx.request.messages[0].parts[0]
    assert isinstance(first, TextPart)
    found = [m.group() for m in PLACEHOLDER.finditer(first.text)]
    assert len(found) == 3
    return found


async def whole(cfg: dict[str, Any], seed: int, length: int) -> tuple[str, list[dict[str, Any]]]:
    async def nxt(ctx: CallContext) -> Result:
        text = model_answer(seed, length, placeholders_of(ctx))
        return ChatResponse(id="r", model="m", parts=[TextPart(text, citations=citations(text))])

    guard = GuardStage(GuardrailsConfig.model_validate(cfg))
    result = await guard(CallContext(request()), nxt)
    assert isinstance(result, ChatResponse)
    part = result.parts[0]
    assert isinstance(part, TextPart)
    return part.text, part.citations or []


async def streamed(
    cfg: dict[str, Any], seed: int, length: int, sizes: list[int]
) -> tuple[str, list[dict[str, Any]]]:
    async def gen(text: str) -> AsyncIterator[StreamEvent]:
        yield StreamStart("r", "m")
        cites = citations(text)
        at = 0
        for piece in pieces(text, sizes):
            at += len(piece)
            yield TextDelta(piece)
            while cites and cites[0]["index"] + 3 <= at:  # its marker is complete
                yield CitationDelta(cites.pop(0))
            yield UsageUpdate(Usage(5, at))  # usage on every chunk (vLLM and others)
        yield Finish("stop")

    async def nxt(ctx: CallContext) -> Result:
        return gen(model_answer(seed, length, placeholders_of(ctx)))  # type: ignore[return-value]

    guard = GuardStage(GuardrailsConfig.model_validate(cfg))
    result = await guard(CallContext(request()), nxt)
    assert not isinstance(result, ChatResponse)
    text: list[str] = []
    cites: list[dict[str, Any]] = []
    async for event in result:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, CitationDelta):
            cites.append(event.citation)
    return "".join(text), cites


def assert_at_markers(text: str, cites: list[dict[str, Any]]) -> None:
    for cite in cites:
        at = cite["index"]
        assert text[at : at + 3] == f"[{cite['file_id'][-1]}]", (at, text[at - 10 : at + 10])


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
@given(
    seed=st.integers(0, 10_000),
    length=st.integers(20, 600),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
)
@settings(max_examples=40, deadline=None)
def test_streamed_citations_point_where_the_whole_answers_do(
    cfg: dict[str, Any], seed: int, length: int, sizes: list[int]
) -> None:
    text, cites = asyncio.run(whole(cfg, seed, length))
    assert_at_markers(text, cites)
    sent, sent_cites = asyncio.run(streamed(cfg, seed, length, sizes))
    assert sent == text
    assert sent_cites == cites


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
async def test_every_chunk_size_gives_the_same_positions(cfg: dict[str, Any]) -> None:
    """Chunk sizes 1..N over one answer (and the whole answer at once, a cache replay)."""
    text, cites = await whole(cfg, 7, 240)
    assert cites and text.count("bob.tables@example.com")  # positions moved indeed
    assert_at_markers(text, cites)
    for size in [*range(1, 40), 10_000]:
        assert await streamed(cfg, 7, 240, [size]) == (text, cites), size


def test_a_marker_split_anywhere_is_found_once() -> None:
    track = MarkerTrack()
    model = "ab <EMAIL_1> [1] x [[2]] [1] [12] [1234] [1]"
    sent = "ab bob@example.com [1] x [[2]] [1] [12] [1234] [1]"
    for size in range(1, len(model) + 1):
        track = MarkerTrack()
        for piece in pieces(model, [size]):
            track.model(piece)
        for piece in pieces(sent, [size]):
            track.sent(piece)
        for m in re.finditer(r"\[\d{1,3}\]", model):
            cite = track.move({"type": "file_citation", "index": m.start()})
            assert sent[cite["index"] :].startswith(m.group()), (size, m.start())
            assert sent.count(m.group(), 0, cite["index"]) == model.count(m.group(), 0, m.start())


def test_what_is_not_a_file_citation_at_a_marker_is_left_alone() -> None:
    track = MarkerTrack()
    track.model("<EMAIL_1> [1]")
    track.sent("bob@example.com [1]")
    other = {"type": "char_location", "cited_text": "x", "start_char_index": 10}
    assert track.move(other) is other
    off_marker = {"type": "file_citation", "index": 3}
    assert track.move(off_marker) is off_marker
    assert track.move({"type": "file_citation", "index": 10}) == {
        "type": "file_citation",
        "index": 16,
    }
    assert moved_citations("<EMAIL_1> [1]", "bob@example.com [1]", [off_marker]) == [off_marker]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_quoted_document_citation_gets_the_callers_values_back(stream: bool) -> None:
    """Anthropic cites the documents it was sent — masked — so `cited_text` quoted
    `<EMAIL_1>` where the caller's document said the address."""
    quote = {
        "type": "char_location",
        "cited_text": "Escalations go to <EMAIL_1>.",
        "document_index": 0,
        "document_title": "Contacts of <EMAIL_1>",
        "start_char_index": 0,
        "end_char_index": 28,
    }
    want = {
        **quote,
        "cited_text": "Escalations go to bob.tables@example.com.",
        "document_title": "Contacts of bob.tables@example.com",
    }
    guard = GuardStage(GuardrailsConfig.model_validate({"pii": {"mode": "mask"}}))

    async def gen() -> AsyncIterator[StreamEvent]:
        yield StreamStart("r", "m")
        yield TextDelta("Ask <EMAIL_1>")
        yield CitationDelta(quote)
        yield Finish("stop")

    async def nxt(ctx: CallContext) -> Result:
        if stream:
            return gen()  # type: ignore[return-value]
        return ChatResponse(id="r", model="m", parts=[TextPart("Ask <EMAIL_1>", citations=[quote])])

    result = await guard(CallContext(request()), nxt)
    if isinstance(result, ChatResponse):
        part = result.parts[0]
        assert isinstance(part, TextPart)
        assert part.citations == [want]
    else:
        cites = [e.citation async for e in result if isinstance(e, CitationDelta)]
        assert cites == [want]


def test_markers_no_citation_uses_are_bounded() -> None:
    """An answer full of `[n]` that no citation points at (a list, unknown sources): the
    tracked markers stay bounded and a later citation still maps."""
    from sluice.guardrails.citations import MAX_TRACKED

    track = MarkerTrack()
    for _ in range(3 * MAX_TRACKED):
        track.model("<EMAIL_1> [7] ")
        track.sent("bob@example.com [7] ")
    assert len(track._model._order) <= MAX_TRACKED and len(track._sent._at) <= MAX_TRACKED
    at = 3 * MAX_TRACKED * len("<EMAIL_1> [7] ")
    track.model("[1]")
    track.sent("[1]")
    moved = track.move({"type": "file_citation", "index": at})
    assert moved["index"] == 3 * MAX_TRACKED * len("bob@example.com [7] ")
