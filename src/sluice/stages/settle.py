"""Settle stage: after every upstream answer, add its usage and cost to the call.

It sits right around the executor, so each call the pipeline makes — a structured-output
repair, an escalation — is counted. A stream is settled when it ends, however it ends: with
the provider's usage when it arrived, else with what was delivered (`sluice.stages.delivered`:
a dropped or cut stream is charged for its delivered tokens, marked `estimated`).
"""

from __future__ import annotations

from decimal import Decimal

from sluice.collect import WatchedStream
from sluice.cost.compute import compute_cost
from sluice.cost.prices import Price, resolve_price
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.runtime import Runtime
from sluice.stages.delivered import DeliveredUsage, UsageSource
from sluice.types import ChatResponse


class SettleStage:
    def __init__(self, runtime: Runtime) -> None:
        self._prices: dict[str, Price | None] = {
            dep.id: resolve_price(dep.price, runtime.provider_kind(dep), dep.model)
            for dep in runtime.deployments.values()
        }
        self.delivered = DeliveredUsage()

    def price_of(self, deployment_id: str) -> Price | None:
        return self._prices.get(deployment_id)

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        result = await nxt(ctx)
        if isinstance(result, ChatResponse):
            self.settle(ctx, result)
            return result

        # A mid-stream continuation (`ctx.rewrite_for`, cleared once the stream is open) is
        # billed for the prompt plus the prefilled partial answer, which `ctx.request` does
        # not hold: charged as reported, but no sample for the cut-stream estimate.
        learn = ctx.rewrite_for is None

        async def settle_at_end(resp: ChatResponse, completed: bool) -> None:
            self.settle_stream(ctx, resp, completed, learn=learn)

        return WatchedStream(result, settle_at_end)

    def settle_stream(
        self, ctx: CallContext, resp: ChatResponse, completed: bool, *, learn: bool = True
    ) -> None:
        """A stream, however it ended: a dropped or cut one is charged what it delivered."""
        dep = ctx.deployment
        if dep is None or ctx.degraded:
            self.settle(ctx, resp)
            return
        usage, source = self.delivered.of_stream(
            ctx.request, resp, completed, dep.model, learn=learn
        )
        resp.usage = usage
        self.settle(ctx, resp, source)

    def settle(
        self, ctx: CallContext, resp: ChatResponse, source: UsageSource = "provider"
    ) -> None:
        ctx.last_response = resp
        if ctx.usage_source != "estimated":
            ctx.usage_source = source  # one estimated part makes the whole call estimated
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
        if ctx.attempt_log and (attempt := ctx.attempt_log[-1]).status < 400:
            attempt.input_tokens = usage.input_tokens
            attempt.output_tokens = usage.output_tokens
            attempt.cost_usd = cost
        if cost is None:
            ctx.cost_known = False  # an unknown price makes the total unknown, never $0
            ctx.cost_usd = None
        elif ctx.cost_known:
            ctx.cost_usd = (ctx.cost_usd or Decimal(0)) + cost
        for callback in ctx.on_settled:
            callback(cost)
