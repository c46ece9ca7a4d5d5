"""The web dashboard: one page, its static files, and the JSON API the page reads.

`install(app)` adds these routes to an app built by `sluice.server.create_app` (before it
starts):

    GET /ui                      the page (index.html)
    GET /ui/static/{file}        app.js, style.css
    GET /ui/login                a login form; POST /ui/login (form field `key`) sets the
                                 admin cookie. Never a key in the query string: addresses
                                 end up in proxy logs and browser history
    GET /ui/logout               clears it
    GET /ui/api/info             whether auth is on, whether there is a record store
    GET /ui/api/summary          ?period=1h|24h|7d[&until=epoch]: totals over the period
    GET /ui/api/timeseries       same parameters: per-bucket cost, latency, rates
    GET /ui/api/top-users        same parameters, [&limit=10]: users by cost
    GET /ui/api/calls            [?limit=50][&until=epoch]: the newest call records
    GET /ui/api/alerts           active alerts (from an `alerts` app key, if any)
    GET /ui/api/breakers         circuit-breaker state per deployment

Access (`sluice.web.access`): with `SLUICE_ADMIN_KEY` set (read once, at install time)
every route but `/ui/login` needs `Authorization: Bearer <key>` or the `sluice_admin` cookie that
`/ui/login` sets (HttpOnly, SameSite=Strict; its value is derived from the key, not the key
itself). Without the variable, the dashboard is served to loopback clients only, and the
page says that auth is off. Refusals are 401 with a JSON body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sluice.observe.store import RecordStore
from sluice.web.access import (
    ACCESS,
    ADMIN_KEY_ENV,
    COOKIE,
    SECURITY_HEADERS,
    check_access,
    install_access,
    is_loopback,
    same_secret,
    unauthorized,
)
from sluice.web.appkeys import GATEWAY
from sluice.web.batches import STORE as BATCH_STORE
from sluice.web.ui import data

if TYPE_CHECKING:
    from sluice.gateway import Gateway

log = logging.getLogger("sluice.ui")

__all__ = ["ADMIN_KEY_ENV", "COOKIE", "check_access", "install", "is_loopback"]

COOKIE_MAX_AGE_S = 12 * 3600
RECENT_LIMIT = 50
TOP_USERS_LIMIT = 10
STATIC_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
_SECURITY_HEADERS = SECURITY_HEADERS
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_NO_STORE_MESSAGE = (
    "No call-record store: call records are disabled or observability.records.store_url "
    "is null, so there is nothing to chart. Set a store URL (SQLite or PostgreSQL) and "
    "restart the gateway."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class UiSettings:
    files: dict[str, bytes]


UI = web.AppKey("ui", UiSettings)


def install(app: web.Application) -> None:
    """Add the dashboard's routes to `app` (built by `create_app`, not yet started).
    Calling it again on the same app does nothing."""
    if UI in app:
        return
    install_access(app)
    static = resources.files("sluice.web.ui").joinpath("static")
    files = {name: static.joinpath(name).read_bytes() for name in STATIC_FILES}
    app[UI] = UiSettings(files=files)

    add = app.router.add_get
    add("/ui", _guarded(page))
    add("/ui/", _to_page)
    add("/ui/static/{file}", _guarded(static_file))
    add("/ui/login", login_form)
    app.router.add_post("/ui/login", login)
    add("/ui/logout", logout)
    add("/ui/api/info", _guarded(api_info))
    add("/ui/api/summary", _guarded(api_summary))
    add("/ui/api/timeseries", _guarded(api_timeseries))
    add("/ui/api/top-users", _guarded(api_top_users))
    add("/ui/api/calls", _guarded(api_calls))
    add("/ui/api/alerts", _guarded(api_alerts))
    add("/ui/api/breakers", _guarded(api_breakers))
    add("/ui/api/batches", _guarded(api_batches))


# --- responses ------------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, default=_json_default),
        status=status,
        content_type="application/json",
        headers=_SECURITY_HEADERS,
    )


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)  # Decimal, datetime, enums, anything else an alert may carry


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status)


# --- access ---------------------------------------------------------------------------------


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        refusal = check_access(request)
        if refusal is not None:
            return refusal
        return await handler(request)

    return guarded


_LOGIN_FORM = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice - log in</title>
<link rel="icon" href="data:,"></head>
<body><form method="post" action="/ui/login">
<label>Admin key <input type="password" name="key" autocomplete="current-password"
autofocus></label> <button type="submit">Log in</button></form></body></html>
"""


async def login_form(request: web.Request) -> web.StreamResponse:
    """`GET /ui/login`: the form that POSTs the key. A `?key=` is not accepted: a key in an
    address ends up in proxy logs and browser history."""
    if "key" in request.query:
        return unauthorized("send the admin key in a POST form to /ui/login, not in the URL")
    return web.Response(
        body=_LOGIN_FORM,
        content_type="text/html",
        headers={**_SECURITY_HEADERS, "content-security-policy": _PAGE_CSP},
    )


async def login(request: web.Request) -> web.StreamResponse:
    """`POST /ui/login` with the form field `key`: on the right key, set the cookie and go
    to the page."""
    settings = request.app[ACCESS]
    if settings.admin_key is None or settings.session_token is None:
        refusal = check_access(request)
        return refusal if refusal is not None else _to_page_response()
    form = await request.post()
    value = form.get("key")
    given = value if isinstance(value, str) else None
    if not given or not same_secret(given, settings.admin_key):
        return unauthorized("wrong or missing admin key")
    resp = _to_page_response()
    resp.set_cookie(
        COOKIE,
        settings.session_token,
        max_age=COOKIE_MAX_AGE_S,
        path="/ui",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    resp = _to_page_response()
    resp.del_cookie(COOKIE, path="/ui")
    return resp


def _to_page_response() -> web.Response:
    return web.Response(status=303, headers={**_SECURITY_HEADERS, "location": "/ui"})


async def _to_page(request: web.Request) -> web.StreamResponse:
    return _to_page_response()


# --- the page -------------------------------------------------------------------------------


async def page(request: web.Request) -> web.StreamResponse:
    return _file(request, "index.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["file"]
    if name not in STATIC_FILES or name == "index.html":
        return _error(404, "not_found", f"no static file {name!r}")
    return _file(request, name)


def _file(request: web.Request, name: str) -> web.Response:
    resp = web.Response(
        body=request.app[UI].files[name],
        content_type=STATIC_FILES[name],
        charset="utf-8",
        headers=_SECURITY_HEADERS,
    )
    if name == "index.html":
        resp.headers["content-security-policy"] = _PAGE_CSP
    return resp


# --- the API --------------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


def _window(request: web.Request) -> tuple[data.Period, float, float]:
    name = request.query.get("period", data.DEFAULT_PERIOD)
    period = data.PERIODS.get(name)
    if period is None:
        raise _BadRequest(f"period must be one of {', '.join(data.PERIODS)}, not {name!r}")
    until = _until(request)
    return period, until - period.seconds, until


def _until(request: web.Request) -> float:
    raw = request.query.get("until")
    if raw is None:
        return time.time()
    try:
        until = float(raw)
    except ValueError:
        raise _BadRequest("until must be a time in epoch seconds") from None
    if not math.isfinite(until) or until <= 0:
        raise _BadRequest("until must be a time in epoch seconds")
    return until


def _limit(request: web.Request, default: int, most: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise _BadRequest(f"limit must be a whole number from 1 to {most}")
    return int(raw)


def _gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def _store(request: web.Request) -> RecordStore | None:
    return _gateway(request).recorder.store


def _with_store(
    compute: Callable[[web.Request, RecordStore], Awaitable[dict[str, Any]]],
) -> Handler:
    """The API endpoints that read records: parameter errors → 400, no store → 503 with an
    explanation the page shows, store failures → 503 (details in the log)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        store = _store(request)
        if store is None:
            return _error(503, "no_record_store", _NO_STORE_MESSAGE)
        try:
            return _json(await compute(request, store))
        except _BadRequest as exc:
            return _error(400, "invalid_request", str(exc))
        except Exception:
            log.exception("dashboard: reading call records failed")
            return _error(503, "record_store_error", "reading call records failed; see the log")

    return handle


def _window_json(period: data.Period, since: float, until: float) -> dict[str, Any]:
    return {"period": period.name, "since": since, "until": until}


async def _summary(request: web.Request, store: RecordStore) -> dict[str, Any]:
    period, since, until = _window(request)
    calls = await asyncio.to_thread(data.load_calls, store, since, until)
    return {**_window_json(period, since, until), **data.summary(calls)}


async def _timeseries(request: web.Request, store: RecordStore) -> dict[str, Any]:
    period, since, until = _window(request)
    calls = await asyncio.to_thread(data.load_calls, store, since, until)
    series = data.timeseries(calls, since, until, period.bucket_s)
    return {**_window_json(period, since, until), **series}


async def _top_users(request: web.Request, store: RecordStore) -> dict[str, Any]:
    period, since, until = _window(request)
    limit = _limit(request, TOP_USERS_LIMIT, 100)
    stats = await asyncio.to_thread(data.load_user_stats, store, since, until)
    return {
        **_window_json(period, since, until),
        "users": data.top_users(stats, limit),
        "total_users": len(stats),
    }


async def _calls(request: web.Request, store: RecordStore) -> dict[str, Any]:
    until = _until(request)
    limit = _limit(request, RECENT_LIMIT, 500)
    records = await asyncio.to_thread(data.load_recent, store, until, limit)
    return {"until": until, "calls": [data.record_json(r) for r in records]}


api_summary = _with_store(_summary)
api_timeseries = _with_store(_timeseries)
api_top_users = _with_store(_top_users)
api_calls = _with_store(_calls)


async def api_info(request: web.Request) -> web.StreamResponse:
    settings = request.app[ACCESS]
    return _json(
        {
            "auth": "admin_key" if settings.admin_key is not None else "off_loopback_only",
            "records": _store(request) is not None,
            "periods": list(data.PERIODS),
            "default_period": data.DEFAULT_PERIOD,
            "now": time.time(),
        }
    )


async def api_breakers(request: web.Request) -> web.StreamResponse:
    states = _gateway(request).executor.breaker_states()
    return _json({"breakers": [{"deployment": d, "state": s} for d, s in sorted(states.items())]})


async def api_batches(request: web.Request) -> web.StreamResponse:
    """The newest batches of every tenant (run mode and forwarded), with their progress."""
    store = request.app.get(BATCH_STORE)
    if store is None:
        return _json({"batches": []})
    recent = await store.recent(20)
    return _json(
        {
            "batches": [
                {
                    "id": b.id,
                    "tenant": b.tenant,
                    "api": b.wire,
                    "status": b.status,
                    "total": b.total,
                    "done": b.counts.finished,
                    "failed": b.counts.errored + b.counts.cancelled + b.counts.expired,
                    "created_at": b.created_at,
                }
                for b in recent
            ]
        }
    )


async def api_alerts(request: web.Request) -> web.StreamResponse:
    source = _alerts_source(request.app)
    if source is None:
        return _json({"available": False, "alerts": []})
    try:
        alerts = await _active_alerts(source)
    except Exception:
        log.exception("dashboard: reading active alerts failed")
        return _error(503, "alerts_error", "reading active alerts failed; see the log")
    return _json({"available": True, "alerts": alerts})


_ALERTS_KEY_NAME = "sluice.web.alerts.alerts"  # sluice.web.alerts.ALERTS


def _alerts_source(app: web.Application) -> Any:
    """The alert engine stored under an app key named `alerts` (Sluice's own
    `sluice.web.alerts.ALERTS` first, then any AppKey whose name ends in `.alerts`, or
    the plain string), or None when no alerting is installed. Found by name, so the
    dashboard works with or without that component."""
    found: list[tuple[bool, Any]] = []
    for key in app:
        name = key if isinstance(key, str) else getattr(key, "_name", "")
        if isinstance(name, str) and (name == "alerts" or name.endswith(".alerts")):
            found.append((name != _ALERTS_KEY_NAME, app[key]))
    found.sort(key=lambda pair: pair[0])
    return found[0][1] if found else None


async def _active_alerts(source: Any) -> list[Any]:
    """Active alerts as JSON-ready values, from a list, an object with `active` (a method,
    sync or async, or an attribute) or `active_alerts()`, or a callable."""
    found: Any = source
    for attr in ("active", "active_alerts"):
        if hasattr(source, attr):
            found = getattr(source, attr)
            break
    if callable(found):
        found = found()
    if inspect.isawaitable(found):
        found = await found
    if found is None:
        return []
    if isinstance(found, dict):
        found = list(found.values())
    return [_alert_json(a) for a in found]


def _alert_json(alert: Any) -> Any:
    to_json = getattr(alert, "to_json", None)
    if callable(to_json):
        return to_json()
    if dataclasses.is_dataclass(alert) and not isinstance(alert, type):
        return dataclasses.asdict(alert)
    if isinstance(alert, dict | str | int | float):
        return alert
    return {"message": str(alert)}
