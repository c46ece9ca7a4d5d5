"""`RouterStage`: a request for a route name runs on the model the route picks.

It rewrites `ctx.request.model` to the chosen public model (the plan executor serves it),
records the decision on the context and in `x-sluice-route-decision`, and runs a cascade
when one is configured and the cheap target was picked. Requests for plain model names pass
through untouched, at the cost of one dict lookup.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sluice.config import SluiceConfig
from sluice.pipeline.context import CURRENT_CALL, CallContext, Handler, Result
from sluice.routing.cascade import DECISION_HEADER, run_cascade
from sluice.routing.classifier import Complete
from sluice.routing.features import route_input
from sluice.routing.router import Router
from sluice.routing.targets import targets_of

if TYPE_CHECKING:
    from sluice.embed import Embedder


def build_routers(
    config: SluiceConfig, complete: Complete | None = None, embedder: Embedder | None = None
) -> dict[str, Router]:
    targets = targets_of(config)
    needs_model = any(
        r.semantic is not None or r.learned is not None for r in config.routes.values()
    )
    if embedder is None and needs_model:
        from sluice.embed import EmbedderUnavailableError, get_embedder

        try:
            embedder = get_embedder(config.embedding)  # shared with the semantic cache
        except EmbedderUnavailableError:
            if any(r.semantic is not None for r in config.routes.values()):
                raise
            # learned routes then fail safe (strong model) and say why in the decision
    return {
        name: Router(name, route, targets, embedder=embedder, complete=complete)
        for name, route in config.routes.items()
    }


class RouterStage:
    def __init__(self, routers: dict[str, Router]) -> None:
        self.routers = routers

    async def prepare(self) -> None:
        """Load the embedding model and build centroids before the first request."""
        for router in self.routers.values():
            await router.prepare()

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        router = self.routers.get(ctx.request.model)
        if router is None:
            return await nxt(ctx)
        inp = route_input(ctx.request, ctx.over_soft_budget, ctx.identity.tier)
        token = CURRENT_CALL.set(ctx)  # a classifier's model call is charged to this call
        try:
            decision = await router.decide(inp, ctx.request.meta)
        finally:
            CURRENT_CALL.reset(token)
        ctx.route = router.name
        ctx.route_reference = router.reference
        ctx.route_decision = decision.summary
        ctx.response_headers[DECISION_HEADER] = _header_safe(decision.summary)
        ctx.rewrite(dataclasses.replace(ctx.request, model=decision.target), "router")
        cascade = router.cascade
        if (
            cascade is not None
            and decision.target == cascade.cheap
            and decision.strategy != "budget"
            and router.fits(cascade.strong, inp)
        ):
            return await run_cascade(ctx, nxt, cascade)
        learned = router.learned
        if decision.self_check and learned is not None and router.fits(learned.config.strong, inp):
            return await run_cascade(ctx, nxt, learned.self_check_cascade)
        return await nxt(ctx)


def _header_safe(text: str) -> str:
    return text.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
