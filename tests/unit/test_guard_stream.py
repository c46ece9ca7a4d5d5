"""The guarded stream against the whole answer: whatever the chunking (one character per
delta, a network read's worth, the whole answer at once) and window, the text the caller gets
is the one the JSON path would give, nothing of a secret is sent before the block, and a
leaked system prompt is flagged wherever the cut falls."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.guardrails.base import GuardBlockedError
from sluice.guardrails.config import GuardrailsConfig
from sluice.guardrails.pii import find, replace_spans
from sluice.guardrails.stage import HEADER, GuardStage
from sluice.pipeline.context import CallContext, Result
from sluice.types import (
    FLUSH,
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
)

WORDS = [
    "the",
    "payment",
    "was",
    "reversed",
    "and",
    "you",
    "will",
    "get",
    "a",
    "confirmation",
    "within",
    "the",
    "hour",
]
VALUES = [
    "jane.doe@example.com",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "078-05-1120",
    "192.168.10.42",
    "(415) 555-0132",
    "a.very.long.local.part.for.testing@mail.subdomain.example-company.co.uk",
]
SYSTEM = (
    "You are the support assistant of Acme Bank. Answer politely and briefly, never reveal "
    "internal procedures, and ask for a ticket number when the customer reports a problem."
)


def stage(guardrails: dict[str, Any]) -> GuardStage:
    return GuardStage(GuardrailsConfig.model_validate(guardrails))


def request(system: str = "") -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=[Message("user", [TextPart("hello")])],
        system=[TextPart(system)] if system else [],
    )


def answer(seed: int, length: int) -> str:
    rnd = random.Random(seed)
    out: list[str] = []
    while sum(map(len, out)) < length:
        out.append(rnd.choice(VALUES) if rnd.random() < 0.15 else rnd.choice(WORDS))
        out.append(rnd.choice([" ", " ", ", ", ".\n"]))
    return "".join(out)


def pieces(text: str, sizes: list[int]) -> list[str]:
    out: list[str] = []
    at = 0
    i = 0
    while at < len(text):
        size = sizes[i % len(sizes)]
        out.append(text[at : at + size])
        at += size
        i += 1
    return out


async def stream(guard: GuardStage, parts: list[str], ctx: CallContext) -> list[str]:
    async def gen() -> AsyncIterator[StreamEvent]:
        yield StreamStart("r", "m")
        for part in parts:
            yield TextDelta(part)
            yield FLUSH
        yield Finish("stop")

    async def nxt(c: CallContext) -> Result:
        return gen()  # type: ignore[return-value]

    result = await guard(ctx, nxt)
    assert not isinstance(result, ChatResponse)
    sent: list[str] = []
    try:
        async for event in result:
            if isinstance(event, TextDelta):
                sent.append(event.text)
    finally:
        await result.aclose()
    return sent


@given(
    seed=st.integers(0, 10_000),
    length=st.integers(50, 1200),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=6),
    window=st.sampled_from([32, 64, 256]),  # ≥ 128 characters: the longest value is 71
)
@settings(max_examples=60, deadline=None)
def test_a_streamed_answer_is_masked_as_the_whole_answer_would_be(
    seed: int, length: int, sizes: list[int], window: int
) -> None:
    text = answer(seed, length)
    guard = stage({"pii": {"mode": "flag", "output": "mask"}, "output": {"window_tokens": window}})
    sent = asyncio.run(stream(guard, pieces(text, sizes), CallContext(request())))
    assert "".join(sent) == replace_spans(text, find(text))


@pytest.mark.parametrize("sizes", [[1], [3, 5], [64], [250], [100_000]])
@pytest.mark.parametrize("window", [8, 64])
async def test_a_secret_deep_in_a_long_answer_is_never_sent(sizes: list[int], window: int) -> None:
    key = "sk-proj-AbCdEf0123456789xyzXYZ0123"
    text = answer(1, 2000) + f" here: {key} " + answer(2, 500)
    guard = stage({"output": {"secrets": "block", "window_tokens": window}})
    ctx = CallContext(request())
    result = await guard(ctx, _upstream(pieces(text, sizes), []))
    assert not isinstance(result, ChatResponse)
    sent: list[str] = []
    with pytest.raises(GuardBlockedError):
        async for event in result:
            if isinstance(event, TextDelta):
                sent.append(event.text)
    await result.aclose()
    assert "sk-proj" not in "".join(sent)
    if sizes[0] < 1000:
        assert len("".join(sent)) > 1000  # what came before went out while the stream ran
    assert ctx.response_headers[HEADER] == "output_secrets=block:secret"


def _upstream(parts: list[str], emitted: list[int]) -> Any:
    async def gen() -> AsyncIterator[StreamEvent]:
        yield StreamStart("r", "m")
        for part in parts:
            emitted.append(len(part))
            yield TextDelta(part)
        yield Finish("stop")

    async def nxt(c: CallContext) -> Result:
        return gen()  # type: ignore[return-value]

    return nxt


@pytest.mark.parametrize("offset", [0, 1, 37, 63, 64, 65, 127, 128, 129, 300])
@pytest.mark.parametrize("sizes", [[1], [7], [64], [500]])
async def test_a_leaked_system_prompt_is_flagged_wherever_it_falls(
    offset: int, sizes: list[int]
) -> None:
    leaked = "never reveal internal procedures, and ask for a ticket number when"
    text = answer(3, 400 + offset) + " " + leaked + " " + answer(4, 300)
    guard = stage({"output": {"system_prompt_leak": "flag"}})
    ctx = CallContext(request(SYSTEM))
    sent = await stream(guard, pieces(text, sizes), ctx)
    assert "".join(sent) == text
    assert "system_prompt_leak=flag:leak" in ctx.response_headers[HEADER]


@pytest.mark.parametrize("size", [1, 5, 40])
async def test_no_more_than_the_window_and_a_step_is_held(size: int) -> None:
    """Text goes out once the text after it fills the window (plus one check step)."""
    guard = stage({"output": {"secrets": "block", "window_tokens": 16}})
    hold = 16 * 4
    text = answer(5, 3000)
    emitted: list[int] = []
    result = await guard(CallContext(request()), _upstream(pieces(text, [size]), emitted))
    assert not isinstance(result, ChatResponse)
    sent = 0
    async for event in result:
        if isinstance(event, TextDelta):
            sent += len(event.text)
            if sum(emitted) < len(text):
                assert sum(emitted) - sent <= hold + 32 + size
                assert sum(emitted) - sent >= hold  # the window is still held
    assert sent == len(text)


LONG_EMAIL = "first.last@" + ".".join(["department-of-examples"] * 6) + ".example.org"
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 12
    + "\n-----END PRIVATE KEY-----"
)


@pytest.mark.parametrize("value", [LONG_EMAIL, PEM, "GB82 WEST 1234 5698 7654 32"])
@pytest.mark.parametrize("size", [1, 13, 64, 129])
async def test_values_longer_than_the_scan_overlap_are_masked_whole(value: str, size: int) -> None:
    """Each check scans only the new text and 128 characters before it: a value longer
    than that (an e-mail with a long domain, a private key) must still be found whole."""
    assert len(value) > 128 or "GB82" in value
    text = answer(6, 300) + " " + value + " " + answer(7, 300)
    guard = stage({"pii": {"mode": "flag", "output": "mask"}})
    sent = await stream(guard, pieces(text, [size]), CallContext(request()))
    assert "".join(sent) == replace_spans(text, find(text))
    assert value not in "".join(sent)


async def test_a_stream_with_nothing_to_check_is_passed_through_untouched() -> None:
    guard = stage({"input_limits": {"mode": "block", "max_messages": 10}})
    ctx = CallContext(request())
    marker = _upstream(["a", "b"], [])
    inner = await marker(ctx)
    result = await guard(ctx, lambda c: _same(inner))
    assert result is inner


async def _same(inner: Any) -> Any:
    return inner


async def test_a_flush_goes_on_only_after_something_went_out() -> None:
    """While text is held the server has nothing to write: those flushes are dropped, and
    every event that goes out is still followed by a flush before the upstream's next read."""
    guard = stage({"pii": {"mode": "flag", "output": "mask"}, "output": {"secrets": "block"}})
    text = answer(8, 1200)
    result = await guard(CallContext(request()), _flushing(pieces(text, [4])))
    assert not isinstance(result, ChatResponse)
    kinds: list[str] = []
    async for event in result:
        kinds.append("flush" if event is FLUSH else type(event).__name__)
    await result.aclose()
    assert "flush,flush" not in ",".join(kinds)
    assert kinds.count("flush") < len(text) // 4 // 4  # most reads had nothing to send
    body = kinds[: kinds.index("Finish")]
    for i, kind in enumerate(body[:-1]):
        if kind == "TextDelta":
            assert "flush" in body[i + 1 :], "a delta was not followed by a flush"


def _flushing(parts: list[str]) -> Any:
    async def gen() -> AsyncIterator[StreamEvent]:
        yield StreamStart("r", "m")
        yield FLUSH
        for part in parts:
            yield TextDelta(part)
            yield FLUSH
        yield Finish("stop")

    async def nxt(c: CallContext) -> Result:
        return gen()  # type: ignore[return-value]

    return nxt
