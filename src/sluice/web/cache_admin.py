"""Cache operations over HTTP: purge and stats for every cache the gateway runs.

    POST /admin/cache/purge   {"entry_id": "…"} | {"route": "…"} | {"tenant": "…"} | {"all": true}
                              optional "cache": "exact" | "semantic" | … (default: every cache)
                              → {"purged": {"exact": 3, …}, "total": 3}
    GET  /admin/cache/stats   → {"caches": {"exact": {...}, …}}

Access is the dashboard's (`sluice.web.access.check_access`): `Authorization: Bearer
$SLUICE_ADMIN_KEY`, or loopback clients only when the variable is unset.

A cache takes part by satisfying `sluice.cache.purgeable.Purgeable` and being in
`Gateway.caches`; the exact cache
does, and any other cache (semantic) registers the same way. Both methods may be sync or
async.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from sluice.cache.purgeable import Purgeable
from sluice.web.access import check_access, install_access

log = logging.getLogger("sluice.cache")

SELECTORS = ("entry_id", "route", "tenant")
_T = TypeVar("_T")


CACHES = web.AppKey("caches", list[Purgeable])


def install(app: web.Application, caches: list[Purgeable]) -> None:
    """Add the admin routes; `caches` is kept by reference, so later registrations count.
    Access is `sluice.web.access.check_access`."""
    install_access(app)
    app[CACHES] = caches
    app.router.add_post("/admin/cache/purge", purge)
    app.router.add_get("/admin/cache/stats", stats)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _invalid(message: str) -> web.Response:
    return _json({"error": {"code": "invalid_request", "message": message}}, 400)


async def _settled(value: _T | Awaitable[_T]) -> _T:
    if inspect.isawaitable(value):
        return await value
    return value


def parse_purge(body: Any) -> tuple[dict[str, str | None], str | None]:
    """The selector keyword arguments and the optional cache kind; ValueError when unclear."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {*SELECTORS, "all", "cache"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    given = {k: body[k] for k in SELECTORS if body.get(k) is not None}
    everything = body.get("all")
    if everything not in (None, True):
        raise ValueError("'all' must be true when given")
    if len(given) + (everything is True) != 1:
        raise ValueError('give exactly one of "entry_id", "route", "tenant" or "all": true')
    for name, value in given.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name!r} must be a non-empty string")
    kind = body.get("cache")
    if kind is not None and not isinstance(kind, str):
        raise ValueError("'cache' must be a string")
    return {k: given.get(k) for k in SELECTORS}, kind


async def purge(request: web.Request) -> web.StreamResponse:
    refusal = check_access(request)
    if refusal is not None:
        return refusal
    try:
        body = orjson.loads(await request.read() or b"null")
        selectors, kind = parse_purge(body)
    except (orjson.JSONDecodeError, ValueError) as exc:
        return _invalid(str(exc))
    caches = [c for c in request.app[CACHES] if kind is None or c.cache_kind == kind]
    if kind is not None and not caches:
        known = ", ".join(c.cache_kind for c in request.app[CACHES]) or "none"
        return _invalid(f"no cache {kind!r} (running: {known})")
    purged: dict[str, int] = {}
    for cache in caches:
        try:
            purged[cache.cache_kind] = await _settled(cache.purge(**selectors))
        except (TypeError, ValueError) as exc:
            return _invalid(f"{cache.cache_kind}: {exc}")
        except Exception as exc:
            return _unavailable(cache.cache_kind, exc)
    log.info("cache purge %s: %s", {k: v for k, v in selectors.items() if v}, purged)
    return _json({"purged": purged, "total": sum(purged.values())})


async def stats(request: web.Request) -> web.StreamResponse:
    refusal = check_access(request)
    if refusal is not None:
        return refusal
    out: dict[str, Any] = {}
    for cache in request.app[CACHES]:
        try:
            out[cache.cache_kind] = dict(await _settled(cache.stats_json()))
        except Exception as exc:
            return _unavailable(cache.cache_kind, exc)
    return _json({"caches": out})


def _unavailable(kind: str, exc: Exception) -> web.Response:
    log.warning("cache %s admin operation failed: %r", kind, exc)
    message = f"the {kind} cache backend failed: {type(exc).__name__}"
    return _json({"error": {"code": "cache_unavailable", "message": message}}, 503)
