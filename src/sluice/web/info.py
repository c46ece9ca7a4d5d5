"""The read-only data-plane endpoints: `/v1/models` (+ one model), `/v1/sluice/usage`,
`/healthz` and `/readyz` (split out of `sluice.server`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sluice.errors import ModelNotFoundError, NotFoundError, ServiceUnavailableError
from sluice.frontends import models
from sluice.governance.counters import CounterBackendError
from sluice.web.appkeys import GATEWAY

if TYPE_CHECKING:
    from sluice.gateway import Gateway


def _owner(gateway: Gateway, name: str) -> str:
    """Who a listed model belongs to: its first deployment's provider, or `sluice` (a route)."""
    deployments = gateway.runtime.by_model.get(name)
    return deployments[0].provider if deployments else "sluice"


async def list_models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    identity = await gateway.authenticate(request.headers)
    names = sorted(
        n for n in {*gateway.runtime.by_model, *gateway.config.routes} if identity.allows(n)
    )
    if models.wants_anthropic(request.headers):
        body = models.anthropic_list(names)
    else:
        data = [models.openai_card(n, _owner(gateway, n)) for n in names]
        body = {"object": "list", "data": data}
    return web.json_response(body, dumps=_dumps)


async def get_model(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    identity = await gateway.authenticate(request.headers)
    name = request.match_info["model"]
    if not identity.allows(name):
        raise ModelNotFoundError(f"model {name!r} does not exist or this key may not use it")
    if name not in gateway.config.routes:
        gateway.runtime.deployments_for(name)  # 404 for an unknown name
    if models.wants_anthropic(request.headers):
        body = models.anthropic_card(name)
    else:
        body = models.openai_card(name, _owner(gateway, name))
    return web.json_response(body, dumps=_dumps)


async def usage(request: web.Request) -> web.Response:
    """The caller's own limits and budgets: used, reserved, remaining, reset times."""
    gateway = request.app[GATEWAY]
    identity = await gateway.authenticate(request.headers)  # a key sees only its own
    if gateway.limits is None:
        raise NotFoundError("usage is not tracked: limits are not enabled (limits.enabled)")
    try:
        body = await gateway.limits.usage(identity)
    except CounterBackendError as exc:
        raise ServiceUnavailableError(
            "usage cannot be read right now (counter store unreachable)",
            headers={"retry-after": "1"},
        ) from exc
    return web.json_response(body, dumps=_dumps)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = {
        "status": "ready" if gateway.ready else "stopping",
        "deployments": gateway.executor.breaker_states(),
        "models": sorted(gateway.runtime.by_model),
        # Each supervised part's state, without error details (they can name hosts).
        "parts": {k: v.split(":", 1)[0] for k, v in gateway.supervisor.health().items()},
    }
    return web.json_response(body, status=200 if gateway.ready else 503, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def install(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/sluice/usage", usage)
