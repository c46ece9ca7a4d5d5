"""Evaluation on a gateway app: the `quality_drop` alert rule and the dashboard's eval panel.

`install(app)` (called by `sluice.server.create_app` after the alerts are installed):

- adds the online judge's `QualityDrop` rule (`sluice.eval.live`) to the app's alert engine,
  so a quality drop is notified, listed and resolved like a cost or error alert;
- serves `GET /ui/api/eval` behind the dashboard's access check: saved eval runs
  (`sluice eval run --store`), shadow traffic (counts since start, stored pairs), online
  quality per route and model, and feedback rates per route and model, all from the records
  store's database over the dashboard's period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from sqlalchemy import inspect

from sluice.eval.export import feedback_rates
from sluice.eval.live_store import PAIRS, SCORES, LiveStore
from sluice.eval.result_store import TABLE as RESULTS
from sluice.eval.result_store import EvalResultStore
from sluice.observe.store import RecordStore
from sluice.web.alerts import ALERTS
from sluice.web.appkeys import GATEWAY
from sluice.web.ui.app import _guarded
from sluice.web.ui.data import DEFAULT_PERIOD, PERIODS

log = logging.getLogger("sluice.web")
ENDPOINT = "/ui/api/eval"
RUNS_LIMIT = 20


def install(app: web.Application) -> None:
    gateway = app[GATEWAY]
    live = gateway.live_eval
    engine = app.get(ALERTS)
    if live is not None and engine is not None and engine.enabled and live.quality_rule.enabled:
        engine.rules.append(live.quality_rule)
    app.router.add_get(ENDPOINT, _guarded(api_eval))


async def api_eval(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    period = PERIODS.get(request.query.get("period", DEFAULT_PERIOD))
    if period is None:
        return _error(400, "invalid_request", f"period: one of {', '.join(PERIODS)}")
    since = time.time() - period.seconds
    live = gateway.live_eval
    body: dict[str, Any] = {
        "period": period.name,
        "shadow_live": {} if live is None else live.stats.shadow,
        "online_live": {} if live is None else live.stats.online,
        "runs": [],
        "shadow": [],
        "quality": [],
        "feedback": {"route": [], "model": []},
    }
    url = gateway.config.observability.records.store_url
    if gateway.recorder.store is None or url is None:
        body["records"] = False
        return web.json_response(body)
    body["records"] = True
    try:
        body.update(await asyncio.to_thread(_read, url, since))
    except Exception:
        log.exception("dashboard: reading evaluation data failed")
        return _error(503, "record_store_error", "reading evaluation data failed; see the log")
    return web.json_response(body)


def _read(url: str, since: float) -> dict[str, Any]:
    records = RecordStore(url)
    try:
        tables = set(inspect(records.engine).get_table_names())
    finally:
        records.close()
    out: dict[str, Any] = {}
    if RESULTS in tables:
        saved = EvalResultStore(url)
        try:
            out["runs"] = [s.to_json() for s in saved.runs(RUNS_LIMIT)]
        finally:
            saved.close()
    if PAIRS in tables and SCORES in tables:
        live = LiveStore(url)  # read only: the gateway's own LiveStore migrated it
        try:
            out["shadow"] = _floats(live.shadow_stats(since))
            out["quality"] = live.quality(since)
        finally:
            live.close()
    out["feedback"] = {
        by: [r.to_json() for r in feedback_rates(url, since, by)] for by in ("route", "model")
    }
    return out


def _floats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (float(v) if k.endswith("_ms") and v is not None else v) for k, v in r.items()}
        for r in rows
    ]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
