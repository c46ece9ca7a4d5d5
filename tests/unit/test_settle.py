"""Settle: usage and cost summed per call; an unknown price is unknown, never $0."""

from __future__ import annotations

from decimal import Decimal

from sluice.config import parse_config
from sluice.pipeline.context import CallContext
from sluice.runtime import Runtime
from sluice.stages.settle import SettleStage
from sluice.types import ChatRequest, ChatResponse, Message, TextPart, Usage

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
