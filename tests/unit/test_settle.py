"""Settle: usage and cost summed per call; an unknown price is unknown, never $0."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sluice.config import parse_config
from sluice.pipeline.context import CallContext
from sluice.runtime import Runtime
from sluice.stages.settle import SettleStage
from sluice.types import (
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    TextDelta,
    TextPart,
    Usage,
    UsageUpdate,
)

CONFIG = """
providers: {p: {kind: anthropic}}
deployments:
  - {id: priced, provider: p, model: claude-3-5-haiku-20241022}
  - {id: mystery, provider: p, model: some-private-model}
"""


def settle_twice(dep_id: str) -> CallContext:
    runtime = Runtime.build(parse_config(CONFIG))
    stage = SettleStage(runtime)
    ctx = CallContext(ChatRequest("m", [Message("user", [TextPart("x")])]))
    ctx.deployment = runtime.deployments[dep_id]
    seen: list[Decimal | None] = []
    ctx.on_settled.append(seen.append)
    usage = Usage(input_tokens=1150, output_tokens=120, cache_read_tokens=800)
    for _ in range(2):  # e.g. a structured-output repair: two upstream answers
        stage.settle(ctx, ChatResponse("r", "m", [], usage=usage))
    assert len(seen) == 2
    return ctx


def test_costs_add_up_from_the_price_table() -> None:
    ctx = settle_twice("priced")
    # 350 uncached at $0.80 + 800 cache-read at $0.08 + 120 output at $4.00 per MTok = $0.000824
    assert ctx.cost_usd == Decimal("0.000824") * 2
    assert ctx.usage == Usage(2300, 240, 1600, 0)


def test_unknown_price_is_none_not_zero() -> None:
    ctx = settle_twice("mystery")
    assert ctx.cost_usd is None and not ctx.cost_known
    assert ctx.usage.output_tokens == 240


class _Stream:
    """An upstream stream that ran to its end with the provider's usage."""

    def __init__(self, events: list[object]) -> None:
        self._events = iter(events)

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> object:
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        return None


async def test_a_continuation_does_not_teach_the_cut_stream_estimate() -> None:
    """A mid-stream continuation is billed by its provider for the original prompt *plus*
    the prefilled partial answer; learning the input ratio from it against the original
    request's estimate made later cut streams overcharge (788 vs 680 tokens over 10 cuts)."""
    runtime = Runtime.build(parse_config(CONFIG))
    stage = SettleStage(runtime)
    request = ChatRequest("m", [Message("user", [TextPart("tell me about rivers " * 20)])])
    ctx = CallContext(request)
    ctx.deployment = runtime.deployments["priced"]
    ctx.rewrite_for = lambda kind: request  # the executor sends a continuation
    usage = Usage(input_tokens=5_000, output_tokens=40)  # prompt + a long prefill

    async def continuation(call: CallContext) -> Any:
        return _Stream([TextDelta("and then the sea. " * 10), Finish("stop"), UsageUpdate(usage)])

    stream = await stage(ctx, continuation)
    assert not isinstance(stream, ChatResponse)
    async for _ in stream:
        pass
    assert ctx.usage.input_tokens == 5_000  # charged as reported
    assert stage.delivered.inputs.samples(ctx.deployment.model) == 0
    assert stage.delivered.outputs.samples(ctx.deployment.model) == 0
