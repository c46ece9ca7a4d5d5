"""Route stage: public model name → the ordered deployments that may serve it."""

from __future__ import annotations

from sluice.pipeline.context import CallContext, Handler, Result
from sluice.runtime import Runtime


class RouteStage:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        ctx.plan = list(self._runtime.deployments_for(ctx.request.model))
        return await nxt(ctx)
