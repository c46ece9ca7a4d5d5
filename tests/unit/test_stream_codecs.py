"""Stream encoders and decoders: what goes in comes out, tool-call arguments included."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.collect import StreamCollector
from sluice.types import (
    ChatResponse,
    Finish,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from sluice.wire.anthropic.stream import EventDecoder, EventEncoder
from sluice.wire.openai.stream import ChunkDecoder, ChunkEncoder
from tests.sse import parse_sse
from tests.unit.strategies import usage


def collect(events: list[StreamEvent]) -> ChatResponse:
    collector = StreamCollector()
    for event in events:
        collector.add(event)
    return collector.response()


def via_openai(events: list[StreamEvent]) -> list[StreamEvent]:
    encoder = ChunkEncoder("m", include_usage=True)
    raw = b"".join(encoder.encode(e) for e in events) + encoder.close()
    decoder = ChunkDecoder()
    out: list[StreamEvent] = []
    parsed = parse_sse(raw)
    assert parsed[-1] == (None, "[DONE]")
    for _, data in parsed[:-1]:
        out.extend(decoder.feed(data))
    return out


def via_anthropic(events: list[StreamEvent]) -> list[StreamEvent]:
    encoder = EventEncoder("m")
    raw = b"".join(encoder.encode(e) for e in events) + encoder.close()
    parsed = parse_sse(raw)
    assert [name for name, _ in parsed][-2:] == ["message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in parsed)
    _assert_blocks_sequential(parsed)
    decoder = EventDecoder()
    out: list[StreamEvent] = []
    for _, data in parsed:
        out.extend(decoder.feed(data))
    return out


def _assert_blocks_sequential(parsed: list[tuple[str | None, Any]]) -> None:
    """Anthropic blocks never overlap: start i, deltas i, stop i, start i+1."""
    open_index = None
    expected = 0
    for name, data in parsed:
        if name == "content_block_start":
            assert open_index is None and data["index"] == expected
            open_index = data["index"]
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index, expected = None, expected + 1
    assert open_index is None


@st.composite
def answers(draw: Any, reasons: list[str]) -> list[StreamEvent]:
    events: list[StreamEvent] = [StreamStart("id1", "m", 1700000000)]
    for fragment in draw(st.lists(st.text(min_size=1, max_size=8), max_size=5)):
        events.append(TextDelta(fragment))
    for index in range(draw(st.integers(0, 3))):
        events.append(ToolCallStart(index, f"call_{index}", f"tool_{index}"))
        for fragment in draw(st.lists(st.text(min_size=1, max_size=6), max_size=4)):
            events.append(ToolCallDelta(index, fragment))
    events.append(Finish(draw(st.sampled_from(reasons))))
    events.append(UsageUpdate(draw(usage)))
    return events


@settings(max_examples=150)
@given(answers(["stop", "length", "tool_calls", "content_filter"]))
def test_openai_stream_roundtrip(events: list[StreamEvent]) -> None:
    got = collect(via_openai(events))
    want = collect(events)
    assert (got.parts, got.finish_reason, got.usage, got.id) == (
        want.parts,
        want.finish_reason,
        want.usage,
        "chatcmpl-" + want.id,  # OpenAI-shaped answers carry OpenAI-shaped ids
    )


@settings(max_examples=150)
@given(answers(["stop", "length", "tool_calls", "stop_sequence", "content_filter"]))
def test_anthropic_stream_roundtrip(events: list[StreamEvent]) -> None:
    got = collect(via_anthropic(events))
    want = collect(events)
    assert (got.parts, got.finish_reason, got.usage, got.id) == (
        want.parts,
        want.finish_reason,
        want.usage,
        "msg_" + want.id,
    )


def test_interleaved_parallel_tool_calls_keep_their_arguments_through_anthropic() -> None:
    events: list[StreamEvent] = [
        StreamStart("id", "m"),
        ToolCallStart(0, "call_a", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallStart(1, "call_b", "get_time"),
        ToolCallDelta(1, '{"tz":'),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallDelta(1, '"CET"}'),
        Finish("tool_calls"),
        UsageUpdate(Usage(10, 5)),
    ]
    got = collect(via_anthropic(events))
    assert [(p.id, p.name, p.arguments) for p in got.parts] == [  # type: ignore[union-attr]
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz":"CET"}'),
    ]
    assert got.finish_reason == "tool_calls"


def test_openai_usage_chunk_only_when_asked() -> None:
    events: list[StreamEvent] = [
        StreamStart("id", "m"),
        TextDelta("hi"),
        Finish("stop"),
        UsageUpdate(Usage(3, 1)),
    ]
    for include, expect_usage in ((False, False), (True, True)):
        encoder = ChunkEncoder("m", include_usage=include)
        raw = b"".join(encoder.encode(e) for e in events) + encoder.close()
        chunks = [d for _, d in parse_sse(raw) if d != "[DONE]"]
        assert any("usage" in c for c in chunks) is expect_usage
        if include:
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 4


async def test_sse_reader_handles_any_split_and_line_endings() -> None:
    """Events split at every byte boundary, with CRLF endings, parse the same."""
    from sluice.providers.http import READ_BOUNDARY, sse_events

    wire = (
        b'event: a\r\ndata: {"x": 1}\r\n\r\n: comment\r\n\r\n'
        b"data: line1\r\ndata: line2\r\n\r\ndata: [DONE]\r\n\r\n"
    )

    async def reads(pieces: list[bytes]) -> Any:
        for piece in pieces:
            yield piece

    expected = [("a", '{"x": 1}'), (None, "line1\nline2"), (None, "[DONE]")]
    for size in range(1, len(wire) + 1):
        pieces = [wire[i : i + size] for i in range(0, len(wire), size)]
        events = [e async for e in sse_events(reads(pieces), "d")]
        got = [(e.event, e.data) for e in events if e is not READ_BOUNDARY]
        assert got == expected, size
        assert sum(e is READ_BOUNDARY for e in events) == len(pieces)  # one per network read


def test_openai_decoder_text_fast_path_and_its_own_start_and_finish() -> None:
    """The one-field text delta skips `_decode_delta`; deltas with more fields do not, and
    the decoder itself puts the rate limit on the start and notes the finish."""
    from sluice.types import RateLimitInfo, ThinkingDelta

    limit = RateLimitInfo(limit_requests=10)
    decoder = ChunkDecoder(limit)
    lp = [{"token": "a", "logprob": -0.1}]
    first = decoder.feed({"id": "x", "choices": [{"delta": {"role": "assistant", "content": ""}}]})
    assert len(first) == 1 and isinstance(first[0], StreamStart)
    assert first[0].ratelimit is limit
    assert decoder.feed({"choices": [{"delta": {"content": ""}}]}) == []
    assert decoder.feed(
        {"choices": [{"delta": {"content": "a"}, "logprobs": {"content": lp}}]}
    ) == [TextDelta("a", lp)]
    assert decoder.feed({"choices": [{"delta": {"reasoning_content": "r", "content": "b"}}]}) == [
        ThinkingDelta("r"),
        TextDelta("b"),
    ]
    assert decoder.feed({"choices": [{"index": 1, "delta": {"content": "other"}}]}) == []
    assert not decoder.finished
    assert decoder.feed({"choices": [{"delta": {}, "finish_reason": "length"}]}) == [
        Finish("length")
    ]
    assert decoder.finished
