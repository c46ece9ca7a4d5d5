"""Mid-stream failover rules with scripted streams: what is continued, restarted, refused."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from sluice.config import ModelPlanConfig
from sluice.errors import UpstreamMalformedError
from sluice.pipeline.context import CallContext, Result
from sluice.providers.base import Deployment
from sluice.reliability.midstream import CONTINUE_PROMPT, MidstreamFailoverStage
from sluice.types import (
    BatchStream,
    ChatRequest,
    ChatResponse,
    EventStream,
    Finish,
    Message,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
    next_batch,
)


def dep(name: str) -> Deployment:
    from sluice.config import parse_config
    from sluice.runtime import Runtime

    runtime = Runtime.build(
        parse_config(
            "providers: {p: {kind: openai}}\n"
            "deployments: [{id: a, provider: p, model: m}, {id: b, provider: p, model: m}]"
        )
    )
    return runtime.deployments[name]


# Every test runs twice: one event per await, and in batches of up to three events
# (`next_batch`, as the providers deliver one network read), which must give the same stream.
BATCHES = {"on": False}


@pytest.fixture(params=["events", "batches"], autouse=True)
def batch_mode(request: pytest.FixtureRequest) -> None:
    BATCHES["on"] = request.param == "batches"


def script(events: list[StreamEvent], fail: bool) -> EventStream:
    if BATCHES["on"]:
        return BatchStream(_in_threes(events, fail))
    return _one_by_one(events, fail)


async def _one_by_one(events: list[StreamEvent], fail: bool) -> AsyncGenerator[StreamEvent, None]:
    for event in events:
        yield event
    if fail:
        raise UpstreamMalformedError("cut", deployment="x")


async def _in_threes(
    events: list[StreamEvent], fail: bool
) -> AsyncGenerator[list[StreamEvent], None]:
    for i in range(0, len(events), 3):
        yield events[i : i + 3]
    if fail:
        raise UpstreamMalformedError("cut", deployment="x")


class Upstream:
    """The pipeline behind the stage: each call serves the next scripted stream."""

    def __init__(self, streams: list[tuple[list[StreamEvent], bool]]) -> None:
        self.streams = streams
        self.requests: list[ChatRequest] = []

    async def __call__(self, ctx: CallContext) -> Result:
        events, fail = self.streams.pop(0)
        if ctx.rewrite_for is not None:
            self.requests.append(ctx.rewrite_for("openai"))
        ctx.deployment = dep("a" if not self.requests else "b")
        return script(events, fail)


async def run(
    streams: list[tuple[list[StreamEvent], bool]], plans: dict[str, ModelPlanConfig] | None = None
) -> tuple[list[StreamEvent], Upstream, MidstreamFailoverStage]:
    stage = MidstreamFailoverStage(plans or {}, lambda ctx, exclude: True)
    upstream = Upstream(streams)
    ctx = CallContext(ChatRequest("m", [Message("user", [TextPart("hi")])], stream=True))
    result = await stage(ctx, upstream)
    out: list[StreamEvent] = []
    assert not isinstance(result, ChatResponse)
    if BATCHES["on"]:
        while True:
            try:
                batch = await next_batch(result)
            except StopAsyncIteration:
                break
            assert batch, "a batch holds at least one event"
            out.extend(batch)
    else:
        async for event in result:
            out.append(event)
    return out, upstream, stage


START = StreamStart("s", "m")


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_text_is_continued_once_without_a_second_start_or_a_repeat() -> None:
    events, upstream, stage = await run(
        [
            ([START, TextDelta("The river runs to "), TextDelta("the sea and")], True),
            ([START, TextDelta("to the sea and then it rests."), Finish("stop")], False),
        ]
    )
    assert sum(isinstance(e, StreamStart) for e in events) == 1
    assert text_of(events) == "The river runs to the sea and then it rests."
    [continued] = upstream.requests
    assert [m.role for m in continued.messages] == ["user", "assistant", "user"]
    assert continued.messages[-1].parts == [TextPart(CONTINUE_PROMPT)]
    assert stage.stats["continued"] == 1 and stage.stats["completed"] == 1


async def test_nothing_sent_yet_restarts_the_call() -> None:
    events, upstream, stage = await run(
        [([START], True), ([START, TextDelta("fresh answer"), Finish("stop")], False)]
    )
    assert text_of(events) == "fresh answer" and upstream.requests == []
    assert stage.stats["restarted"] == 1


async def test_a_tool_call_already_sent_ends_with_the_error() -> None:
    first: list[StreamEvent] = [
        START,
        ToolCallStart(0, "call_1", "lookup"),
        ToolCallDelta(0, '{"q": '),
    ]
    with pytest.raises(UpstreamMalformedError):
        await run([(first, True), ([START, Finish("stop")], False)])


async def test_opted_out_model_is_not_resumed() -> None:
    plans = {"m": ModelPlanConfig(midstream_failover=False)}
    with pytest.raises(UpstreamMalformedError):
        await run([([START, TextDelta("partial")], True), ([START], False)], plans)


async def test_events_after_a_continuations_short_head_keep_their_place() -> None:
    # The head is shorter than the overlap window, so the Finish ends it: the Finish is put
    # back in front of the stream, and so must be the events after it in the same read.
    tail: list[StreamEvent] = [Finish("stop"), UsageUpdate(Usage(5, 7)), TextDelta("")]
    events, _, _ = await run(
        [
            ([START, TextDelta("The river runs to "), TextDelta("the sea")], True),
            ([START, TextDelta(" and"), TextDelta(" on."), *tail], False),
        ]
    )
    assert text_of(events) == "The river runs to the sea and on."
    assert [type(e).__name__ for e in events[-2:]] == ["Finish", "UsageUpdate"]
