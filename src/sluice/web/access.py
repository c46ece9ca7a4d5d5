"""Who may use the operator surface: /ui, /admin/cache/*, and (with
`observability.metrics_auth`) /metrics and the alerts endpoint.

With `SLUICE_ADMIN_KEY` set (read once, when the first of these is installed on an app) a
request needs `Authorization: Bearer <key>` or the `sluice_admin` cookie that `/ui/login`
sets (its value is an HMAC of the key, not the key). Without the variable, loopback clients
only. Refusals are 401 with a JSON body. The virtual-key admin API (`keys_admin`) is
stricter: without the variable it is off.

Callers of the data plane (virtual keys) are authenticated elsewhere, by
`sluice.governance.auth.Authenticator.authenticate`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass

import orjson
from aiohttp import web

ADMIN_KEY_ENV = "SLUICE_ADMIN_KEY"
COOKIE = "sluice_admin"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@dataclass(frozen=True, slots=True)
class AdminAccess:
    admin_key: str | None  # None: auth off, loopback clients only
    session_token: str | None  # the cookie value: an HMAC of the key, not the key


ACCESS = web.AppKey("access", AdminAccess)


def install_access(app: web.Application) -> AdminAccess:
    """Read `SLUICE_ADMIN_KEY` once for this app (later calls return the same settings)."""
    existing = app.get(ACCESS)
    if existing is not None:
        return existing
    key = os.environ.get(ADMIN_KEY_ENV) or None
    token = None
    if key is not None:
        token = hmac.new(key.encode(), b"sluice-ui-session-v1", hashlib.sha256).hexdigest()
    app[ACCESS] = access = AdminAccess(admin_key=key, session_token=token)
    return access


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def unauthorized(message: str) -> web.Response:
    resp = web.Response(
        body=orjson.dumps({"error": {"code": "unauthorized", "message": message}}),
        status=401,
        content_type="application/json",
        headers=SECURITY_HEADERS,
    )
    resp.headers["www-authenticate"] = 'Bearer realm="sluice-ui"'
    return resp


def check_access(request: web.Request) -> web.Response | None:
    """None when the request may use the operator surface, else the 401 to send."""
    settings = request.app[ACCESS]  # installed with any route that checks it
    if settings.admin_key is None or settings.session_token is None:
        if is_loopback(request.remote):
            return None
        return unauthorized(
            f"{ADMIN_KEY_ENV} is not set, so the dashboard is served to loopback clients only"
        )
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and same_secret(credentials.strip(), settings.admin_key):
        return None
    cookie = request.cookies.get(COOKIE)
    if cookie and same_secret(cookie, settings.session_token):
        return None
    return unauthorized(
        "admin key required: send 'Authorization: Bearer <key>' or log in at /ui/login"
    )
