"""Cascade: escalate exactly when the cheap answer is unsure; the client never sees the marker."""

from __future__ import annotations

import pytest

from sluice.errors import UnprocessableError
from sluice.pipeline.context import CallContext, Result
from sluice.routing.cascade import run_cascade, strip_marker, uncertainty
from sluice.routing.config import CascadeConfig
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextDelta, TextPart

CASCADE = CascadeConfig(cheap="gpt-4o-mini", strong="gpt-4o")


def answer(text: str, logprobs: list[float] | None = None) -> ChatResponse:
    return ChatResponse(id="r", model="m", parts=[TextPart(text)], logprobs=logprobs)


class FakeNext:
    """Answers per model from a script, records what it was asked."""

    def __init__(self, answers: dict[str, ChatResponse | Exception]) -> None:
        self.answers = answers
        self.seen: list[ChatRequest] = []

    async def __call__(self, ctx: CallContext) -> Result:
        self.seen.append(ctx.request)
        reply = self.answers[ctx.request.model]
        if isinstance(reply, Exception):
            raise reply
        return reply


def context(stream: bool = False) -> CallContext:
    req = ChatRequest(
        model="gpt-4o-mini",
        messages=[Message("user", [TextPart("hi")])],
        stream=stream,
        meta=CallMeta(),
    )
    ctx = CallContext(req)
    ctx.route_decision = "default: no strategy decided -> gpt-4o-mini"
    return ctx


def text_of(result: Result) -> str:
    assert isinstance(result, ChatResponse)
    return "".join(p.text for p in result.parts if isinstance(p, TextPart))


async def test_a_sure_cheap_answer_is_final_and_the_strong_model_is_not_called() -> None:
    nxt = FakeNext({"gpt-4o-mini": answer("Paris."), "gpt-4o": answer("strong")})
    ctx = context()
    assert text_of(await run_cascade(ctx, nxt, CASCADE)) == "Paris."
    assert [r.model for r in nxt.seen] == ["gpt-4o-mini"]
    assert "cascade" not in (ctx.route_decision or "")


async def test_the_marker_escalates_and_is_stripped_from_the_final_answer() -> None:
    nxt = FakeNext(
        {"gpt-4o-mini": answer("UNCERTAIN: maybe 42"), "gpt-4o": answer("UNCERTAIN - it is 41")}
    )
    ctx = context()
    result = await run_cascade(ctx, nxt, CASCADE)
    assert [r.model for r in nxt.seen] == ["gpt-4o-mini", "gpt-4o"]
    assert text_of(result) == "it is 41"
    assert ctx.route_decision is not None
    assert ctx.route_decision.endswith("; cascade: escalated (marker UNCERTAIN) -> gpt-4o")
    assert ctx.response_headers["x-sluice-route-decision"] == ctx.route_decision


def test_the_marker_only_counts_at_the_start() -> None:
    assert uncertainty(answer("I am not UNCERTAIN at all"), CASCADE) is None
    assert uncertainty(answer("  UNCERTAIN\nno idea"), CASCADE) == "marker UNCERTAIN"
    kept = answer("The word UNCERTAIN stays here")
    assert strip_marker(kept, "UNCERTAIN") is kept


async def test_low_mean_logprob_escalates_and_high_does_not() -> None:
    cfg = CascadeConfig(cheap="gpt-4o-mini", strong="gpt-4o", marker=None, min_mean_logprob=-1.0)
    low = FakeNext({"gpt-4o-mini": answer("hmm", [-0.2, -3.0]), "gpt-4o": answer("sure")})
    assert text_of(await run_cascade(context(), low, cfg)) == "sure"
    high = FakeNext({"gpt-4o-mini": answer("ok", [-0.2, -0.4]), "gpt-4o": answer("sure")})
    assert text_of(await run_cascade(context(), high, cfg)) == "ok"
    assert len(high.seen) == 1
    assert high.seen[0].extras == {"logprobs": True}  # asked of the cheap (OpenAI) call


async def test_failed_structured_output_escalates_other_422s_do_not() -> None:
    invalid = UnprocessableError("bad json", code="structured_output_invalid")
    nxt = FakeNext({"gpt-4o-mini": invalid, "gpt-4o": answer('{"ok": true}')})
    ctx = context()
    assert text_of(await run_cascade(ctx, nxt, CASCADE)) == '{"ok": true}'
    assert "invalid structured output" in (ctx.route_decision or "")
    other = FakeNext({"gpt-4o-mini": UnprocessableError("nope"), "gpt-4o": answer("x")})
    with pytest.raises(UnprocessableError):
        await run_cascade(context(), other, CASCADE)
    off = CascadeConfig(cheap="gpt-4o-mini", strong="gpt-4o", on_invalid_output=False)
    with pytest.raises(UnprocessableError):
        await run_cascade(context(), FakeNext({"gpt-4o-mini": invalid}), off)


async def test_a_streaming_caller_gets_the_final_answer_as_events() -> None:
    nxt = FakeNext({"gpt-4o-mini": answer("UNCERTAIN: hm"), "gpt-4o": answer("final")})
    result = await run_cascade(context(stream=True), nxt, CASCADE)
    assert not isinstance(result, ChatResponse)
    texts = [e.text async for e in result if isinstance(e, TextDelta)]
    assert "".join(texts) == "final"
    assert all(not r.stream for r in nxt.seen)  # both calls inspected whole


async def test_instruction_is_added_to_the_cheap_call_only() -> None:
    cfg = CascadeConfig(
        cheap="gpt-4o-mini", strong="gpt-4o", instruction="Say UNCERTAIN if unsure."
    )
    nxt = FakeNext({"gpt-4o-mini": answer("UNCERTAIN"), "gpt-4o": answer("ok")})
    await run_cascade(context(), nxt, cfg)
    assert [p.text for p in nxt.seen[0].system] == ["Say UNCERTAIN if unsure."]
    assert nxt.seen[1].system == []
