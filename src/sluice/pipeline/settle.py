"""Settle stage: after every upstream answer, add its usage and cost to the call.

It sits right around the executor, so each call the pipeline makes — a structured-output
repair, an escalation — is counted. A stream is settled when it ends, however it ends, with
the usage the upstream reported so far.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

from sluice.collect import StreamCollector
from sluice.cost.compute import compute_cost
from sluice.cost.prices import Price, resolve_price
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.runtime import Runtime
from sluice.types import ChatResponse, EventStream, StreamEvent


class SettleStage:
    def __init__(self, runtime: Runtime) -> None:
        self._prices: dict[str, Price | None] = {
            dep.id: resolve_price(dep.price, runtime.provider_kind(dep), dep.model)
            for dep in runtime.deployments.values()
        }

    def price_of(self, deployment_id: str) -> Price | None:
        return self._prices.get(deployment_id)

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        result = await nxt(ctx)
        if isinstance(result, ChatResponse):
            self.settle(ctx, result)
            return result
        return _SettlingStream(result, ctx, self)

    def settle(self, ctx: CallContext, resp: ChatResponse) -> None:
        ctx.last_response = resp
        usage = resp.usage
        total = ctx.usage
        total.input_tokens += usage.input_tokens
        total.output_tokens += usage.output_tokens
        total.cache_read_tokens += usage.cache_read_tokens
        total.cache_write_tokens += usage.cache_write_tokens
        if ctx.degraded or ctx.deployment is None:
            cost: Decimal | None = Decimal(0)
        else:
            cost = compute_cost(usage, self._prices.get(ctx.deployment.id))
        if cost is None:
            ctx.cost_known = False  # an unknown price makes the total unknown, never $0
            ctx.cost_usd = None
        elif ctx.cost_known:
            ctx.cost_usd = (ctx.cost_usd or Decimal(0)) + cost
        for callback in ctx.on_settled:
            callback(cost)


class _SettlingStream:
    """Passes events through and settles once when the stream ends or is closed."""

    __slots__ = ("_collector", "_ctx", "_events", "_settled", "_stage")

    def __init__(self, events: EventStream, ctx: CallContext, stage: SettleStage) -> None:
        self._events = events
        self._ctx = ctx
        self._stage = stage
        self._collector = StreamCollector()
        self._settled = False

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        try:
            event = await anext(self._events)
        except BaseException:
            self._settle()
            raise
        self._collector.add(event)
        return event

    async def aclose(self) -> None:
        self._settle()
        await self._events.aclose()

    def _settle(self) -> None:
        if not self._settled:
            self._settled = True
            self._stage.settle(self._ctx, self._collector.response())
