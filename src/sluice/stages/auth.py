"""The auth stage, first in the pipeline: `CallContext.credentials` → `CallContext.identity`.

Every tenant-scoped thing after it (caches, idempotency keys, sessions, limits and budgets,
records) keys on `ctx.identity`, so no entry point can skip it: a call that reaches the
pipeline without credentials while auth is on is refused (401), never served as another
tenant. With auth off every call is `Identity.anonymous()`.

It is the only writer of `ctx.identity` (helper calls made on a call's behalf copy their
parent's). It also refuses models the key may not use and settles the request labels
(`CallMeta`'s precedence rule), through `Authenticator.admit`.
"""

from __future__ import annotations

from sluice.governance.auth import Authenticator
from sluice.pipeline.context import CallContext, Handler, Result


class AuthStage:
    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        given = ctx.credentials
        if given.resolved is not None and not (self.auth.enabled and given.resolved.is_anonymous):
            identity = given.resolved  # authenticated by the entry point from these headers
        else:
            identity = await self.auth.authenticate_key(given.key)
        ctx.identity = identity  # set first: a refused call is still attributed to its tenant
        self.auth.admit(identity, ctx.request)
        return await nxt(ctx)
