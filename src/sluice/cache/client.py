"""The `sluice cache` commands' side of the admin API: one HTTP call each, plain text out.

The admin key comes from `SLUICE_ADMIN_KEY` (never a flag, so it stays out of shell
history and process lists); without it, only a gateway on loopback will answer.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp
import orjson

ADMIN_KEY_ENV = "SLUICE_ADMIN_KEY"


class AdminError(Exception):
    """The gateway refused or could not be reached; the message says which."""


def purge_body(
    entry_id: str | None, route: str | None, tenant: str | None, everything: bool, cache: str | None
) -> dict[str, Any]:
    given = {k: v for k, v in (("entry_id", entry_id), ("route", route), ("tenant", tenant)) if v}
    if len(given) + everything != 1:
        raise AdminError("give exactly one of --entry-id, --route, --tenant or --all")
    body: dict[str, Any] = {"all": True} if everything else given
    if cache:
        body["cache"] = cache
    return body


def call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return asyncio.run(_call(url, method, path, body))


async def _call(url: str, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    key = os.environ.get(ADMIN_KEY_ENV)
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = orjson.dumps(body) if body is not None else None
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(method, url.rstrip("/") + path, data=data, headers=headers) as resp,
        ):
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AdminError(f"cannot reach the gateway at {url}: {exc!r}") from None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AdminError(f"HTTP {status} from {url}{path}: not JSON") from None
    if status >= 400 or not isinstance(doc, dict):
        error = doc.get("error") if isinstance(doc, dict) else None
        message = error.get("message") if isinstance(error, dict) else raw[:200].decode()
        hint = f" (set {ADMIN_KEY_ENV})" if status == 401 and not key else ""
        raise AdminError(f"HTTP {status}: {message}{hint}")
    return doc


def format_stats(doc: dict[str, Any]) -> str:
    lines = []
    for kind, stats in sorted(doc.get("caches", {}).items()):
        lines.append(f"{kind}:")
        lines += [f"  {name:<20} {_value(value)}" for name, value in stats.items()]
    return "\n".join(lines) or "no caches are enabled"


def _value(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
