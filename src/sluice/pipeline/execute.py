"""Execute stage: call the provider adapter for the chosen deployment.

For streams the first event is awaited here, before anything is sent to the client, so an
upstream failure before the first byte is an ordinary error (right status, JSON body) that
later stages can retry or fall back on — never a 200 stream that immediately errors.
"""

from __future__ import annotations

from sluice.pipeline.context import CallContext, Result
from sluice.runtime import Runtime
from sluice.types import EventStream, StreamEvent


class ExecuteStage:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def __call__(self, ctx: CallContext) -> Result:
        dep = ctx.plan[0]
        ctx.deployment = dep
        ctx.attempts += 1
        provider = self._runtime.provider_for(dep)
        if not ctx.request.stream:
            return await provider.complete(ctx.request, dep)
        events = provider.stream(ctx.request, dep)
        try:
            first = await anext(events)
        except StopAsyncIteration:
            first = None
        except BaseException:
            await events.aclose()
            raise
        return _prepend(first, events)


async def _prepend(first: StreamEvent | None, rest: EventStream) -> EventStream:
    try:
        if first is not None:
            yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()
