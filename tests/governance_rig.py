"""Gateways with virtual-key auth on, over SQLite or a private PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import create_engine, text

from sluice import server
from sluice.config import SluiceConfig
from tests.conftest import gateway_config

PEPPER = "test-pepper-" + "x" * 20
ADMIN_KEY = "admin-" + uuid.uuid4().hex
POSTGRES = os.environ.get(
    "SLUICE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL whose tables live in a fresh schema, dropped afterwards."""
    schema = "sluice_keys_test_" + uuid.uuid4().hex[:12]
    engine = create_engine(POSTGRES)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def keyed_config(sim_url: str, store_url: str, **auth: Any) -> SluiceConfig:
    config = gateway_config(sim_url)
    data = config.model_dump()
    data["governance"]["store_url"] = store_url
    data["governance"]["auth"].update({"enabled": True, **auth})
    data["observability"]["records"]["enabled"] = False
    return SluiceConfig.model_validate(data)


def set_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pepper and master key a keyed gateway reads at startup."""
    monkeypatch.setenv("SLUICE_KEY_PEPPER", PEPPER)
    monkeypatch.setenv("SLUICE_ADMIN_KEY", ADMIN_KEY)


@asynccontextmanager
async def gateway(config: SluiceConfig) -> AsyncIterator[tuple[str, web.Application]]:
    app = server.create_app(config)
    runner, port = await server.start_app(app)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


async def admin(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kw: Any
) -> tuple[int, Any]:
    headers = kw.pop("headers", ADMIN)
    async with http.request(method, url, json=body, headers=headers, **kw) as resp:
        return resp.status, await resp.json()


async def create_key(http: aiohttp.ClientSession, base: str, **fields: Any) -> dict[str, Any]:
    status, body = await admin(http, "POST", base + "/admin/keys", {"tenant": "acme", **fields})
    assert status == 201, body
    return dict(body)
