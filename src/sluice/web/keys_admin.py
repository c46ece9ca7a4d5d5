"""The admin API for virtual keys, under `/admin/` (apart from the `/v1/` data plane).

    POST   /admin/keys            create; the answer holds the key, shown this once (201)
    GET    /admin/keys            ?tenant=&limit=&offset= : list (never the keys themselves)
    GET    /admin/keys/{key_id}   one key
    PATCH  /admin/keys/{key_id}   change the fields present in the body
    DELETE /admin/keys/{key_id}   revoke (the row stays, with revoked_at)

Every route needs `Authorization: Bearer <SLUICE_ADMIN_KEY>` (the master key that also
guards /ui; compared in constant time). Without the variable the admin API is off: 401
explains why. A virtual key is never a master key. Errors are JSON
`{"error": {"code", "message"}}`: 400 bad JSON, 401, 404 unknown key, 413, 422 a body that
does not validate, 503 store down — never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from sluice.governance.keys import KeyCreate, KeyUpdate, clean_label
from sluice.governance.runtime import Governance
from sluice.governance.store import KeyStore
from sluice.web.access import ADMIN_KEY_ENV

log = logging.getLogger("sluice.admin")

GOVERNANCE = web.AppKey("governance", Governance)
ADMIN_KEY = web.AppKey("admin_key", str)
_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
_KEY_ID = re.compile(r"^key_[0-9a-f]{16}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass(slots=True)
class AdminSite:
    """The admin API's own server when it listens on `server.admin_port`."""

    host: str
    port: int
    runner: web.AppRunner | None = None

    @property
    def bound_port(self) -> int:
        assert self.runner is not None, "the gateway has not started"
        return int(self.runner.addresses[0][1])


ADMIN_SITE = web.AppKey("admin_site", AdminSite)


def serve_apart(
    app: web.Application, governance: Governance, host: str, port: int, max_body: int
) -> None:
    """Serve the admin API on its own port, started and stopped with `app`; the data-plane
    port then has no /admin routes at all."""
    site = app[ADMIN_SITE] = AdminSite(host, port)

    async def start(_: web.Application) -> None:
        admin_app = web.Application(client_max_size=max_body)
        install(admin_app, governance)
        site.runner = web.AppRunner(admin_app, access_log=None)
        await site.runner.setup()
        await web.TCPSite(site.runner, host, port).start()
        log.info("admin API on http://%s:%d/admin/", host, site.bound_port)

    async def stop(_: web.Application) -> None:
        if site.runner is not None:
            await site.runner.cleanup()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def install(app: web.Application, governance: Governance) -> None:
    """Add the admin routes to `app`; the master key is read from the environment now."""
    app[GOVERNANCE] = governance
    app[ADMIN_KEY] = os.environ.get(ADMIN_KEY_ENV) or ""
    app.router.add_post("/admin/keys", _guarded(create_key))
    app.router.add_get("/admin/keys", _guarded(list_keys))
    app.router.add_get("/admin/keys/{key_id}", _guarded(show_key))
    app.router.add_patch("/admin/keys/{key_id}", _guarded(update_key))
    app.router.add_delete("/admin/keys/{key_id}", _guarded(revoke_key))


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=_HEADERS
    )


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            _check_master_key(request)
            return await handler(request)
        except _Refusal as r:
            resp = _json({"error": {"code": r.code, "message": r.message, **r.extra}}, r.status)
            if r.status == 401:
                resp.headers["www-authenticate"] = 'Bearer realm="sluice-admin"'
            return resp
        except (SQLAlchemyError, OSError) as exc:
            log.warning("admin %s %s: key store error %s", request.method, request.path, exc)
            body = {"error": {"code": "store_unavailable", "message": "key store unavailable"}}
            return _json(body, 503)

    return guarded


def _check_master_key(request: web.Request) -> None:
    expected = request.app[ADMIN_KEY]
    if not expected:
        raise _Refusal(401, "admin_disabled", f"the admin API is off: {ADMIN_KEY_ENV} is not set")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), expected.encode()
    ):
        raise _Refusal(401, "unauthorized", "admin API: send 'Authorization: Bearer <admin key>'")


def _store(request: web.Request) -> KeyStore:
    store = request.app[GOVERNANCE].store
    if store is None:
        pepper_env = request.app[GOVERNANCE].config.auth.pepper_env
        raise _Refusal(503, "store_disabled", f"no key store: {pepper_env} is not set")
    return store


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _Refusal(413, "request_too_large", "request body is too large") from None
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise _Refusal(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Refusal(400, "invalid_request", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid"}
        message = f"{first['field'] or 'body'}: {first['message']}"
        raise _Refusal(422, "validation_error", message, errors=errors) from None


def _int_query(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > high:
        raise _Refusal(400, "invalid_request", f"{name} must be an integer from 0 to {high}")
    return int(raw)


def _key_id(request: web.Request) -> str:
    key_id = request.match_info["key_id"]
    if not _KEY_ID.match(key_id):
        raise _Refusal(404, "key_not_found", "no such key (key ids look like key_0123456789abcdef)")
    return key_id


async def create_key(request: web.Request) -> web.StreamResponse:
    spec = await _body(request, KeyCreate)
    record, key = await asyncio.to_thread(_store(request).create, spec)
    log.info("admin: created key %s for tenant %s", record.key_id, record.tenant)
    return _json({"key": key, **record.public()}, 201)


async def list_keys(request: web.Request) -> web.StreamResponse:
    limit = _int_query(request, "limit", 100, 1000)
    offset = _int_query(request, "offset", 0, 10**9)
    tenant = request.query.get("tenant") or None
    if tenant is not None and not clean_label(tenant):
        raise _Refusal(400, "invalid_request", "tenant must be 1 to 255 printable characters")
    records = await asyncio.to_thread(_store(request).list, tenant, limit, offset)
    return _json({"data": [r.public() for r in records], "limit": limit, "offset": offset})


async def show_key(request: web.Request) -> web.StreamResponse:
    key_id = _key_id(request)
    record = await asyncio.to_thread(_store(request).get, key_id)
    if record is None:
        raise _Refusal(404, "key_not_found", f"no key {key_id!r}")
    return _json(record.public())


async def update_key(request: web.Request) -> web.StreamResponse:
    key_id = _key_id(request)
    patch = await _body(request, KeyUpdate)
    record = await asyncio.to_thread(_store(request).update, key_id, patch)
    if record is None:
        raise _Refusal(404, "key_not_found", f"no key {key_id!r}")
    await request.app[GOVERNANCE].key_changed(record.key_hash)
    log.info("admin: updated key %s", key_id)
    return _json(record.public())


async def revoke_key(request: web.Request) -> web.StreamResponse:
    key_id = _key_id(request)
    record = await asyncio.to_thread(_store(request).revoke, key_id)
    if record is None:
        raise _Refusal(404, "key_not_found", f"no key {key_id!r}")
    await request.app[GOVERNANCE].key_changed(record.key_hash)
    log.info("admin: revoked key %s", key_id)
    return _json(record.public())
