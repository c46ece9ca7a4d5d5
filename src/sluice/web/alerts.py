"""`GET /v1/sluice/alerts` and the alert engine's wiring into a gateway app.

`install(app, config)` puts an `AlertEngine` (`sluice.observe.alerts`) on an app built by
`sluice.server.create_app`: it adds `engine.observe` to the gateway recorder's `observers`,
registers the engine with the gateway's supervisor (started and stopped with the gateway),
and serves the endpoint (active alerts, recent
notifications, counters).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from sluice.config import AlertsConfig
from sluice.observe.alerts import ENDPOINT, AlertEngine
from sluice.web.appkeys import GATEWAY

__all__ = ["ALERTS", "ENDPOINT", "install"]

ALERTS = web.AppKey("alerts", AlertEngine)


async def _alerts_endpoint(request: web.Request) -> web.Response:
    body = request.app[ALERTS].snapshot()
    return web.json_response(body, dumps=lambda v: orjson.dumps(v).decode())


def install(app: web.Application, config: AlertsConfig) -> AlertEngine:
    """Put an alert engine on a gateway app (before it starts); idempotent: a second call
    returns the engine already installed."""
    existing = app.get(ALERTS)
    if existing is not None:
        return existing
    engine = AlertEngine(config)
    app[ALERTS] = engine
    gateway = app[GATEWAY]
    if engine.enabled:
        gateway.recorder.observers.append(engine.observe)
    # Started and stopped by the gateway's supervisor, which owns its evaluation loop.
    supervisor = gateway.supervisor
    supervisor.add("alerts", lambda: engine.start(supervisor.spawn), engine.close)
    app.router.add_get(ENDPOINT, _alerts_endpoint)
    return engine
