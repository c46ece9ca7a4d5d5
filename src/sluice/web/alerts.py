"""`GET /v1/sluice/alerts` and the alert engine's wiring into a gateway app.

`install(app, config)` puts an `AlertEngine` (`sluice.observe.alerts`) on an app built by
`sluice.server.create_app`: it adds `engine.observe` to the gateway recorder's `observers`,
starts and stops the engine with the app, and serves the endpoint (active alerts, recent
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
    if engine.enabled:
        app[GATEWAY].recorder.observers.append(engine.observe)

    async def _start(app: web.Application) -> None:
        await app[ALERTS].start()

    async def _close(app: web.Application) -> None:
        await app[ALERTS].close()

    app.router.add_get(ENDPOINT, _alerts_endpoint)
    app.on_startup.append(_start)
    app.on_cleanup.append(_close)
    return engine
