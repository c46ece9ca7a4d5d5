"""A gateway the way an attacker meets it in production: virtual-key auth on, limits and
budgets in Redis, call records and the spend ledger in PostgreSQL (a private schema)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine, text

from sluice import server
from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.governance_rig import create_key, postgres_schema, set_env
from tests.integration.test_limits_redis import REDIS_URL


@dataclass
class Rig:
    url: str
    store_url: str
    key: str
    http: aiohttp.ClientSession
    app: Any

    def auth(self, wire: str = "openai") -> dict[str, str]:
        if wire == "openai":
            return {"authorization": f"Bearer {self.key}"}
        return {"x-api-key": self.key, "anthropic-version": "2023-06-01"}

    def count(self, sql: str) -> int:
        engine = create_engine(self.store_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(sql)).scalar_one())
        finally:
            engine.dispose()


def hostile_config(sim_url: str, store_url: str, prefix: str, **server: Any) -> SluiceConfig:
    data = gateway_config(sim_url).model_dump()
    data["server"].update(server)
    data["governance"]["store_url"] = store_url
    data["governance"]["auth"].update({"enabled": True})
    data["observability"]["records"].update({"enabled": True, "store_url": store_url})
    data["limits"].update(
        {
            "enabled": True,
            "backend": "redis",
            "redis_url": REDIS_URL,
            "key_prefix": prefix,
            "ledger": {"store_url": store_url, "flush_interval_s": 0.05},
        }
    )
    return SluiceConfig.model_validate(data)


@asynccontextmanager
async def hostile_gateway(
    sim_url: str, monkeypatch: pytest.MonkeyPatch, **server_cfg: Any
) -> AsyncIterator[Rig]:
    set_env(monkeypatch)
    prefix = f"sluice-test:hostile:{uuid.uuid4().hex}:"
    with postgres_schema() as store_url:
        config = hostile_config(sim_url, store_url, prefix, **server_cfg)
        app = server.create_app(config)
        runner, port = await server.start_app(app)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                key = await create_key(http, base, budgets=[{"usd": 1000, "period": "total"}])
                yield Rig(base, store_url, key["key"], http, app)
        finally:
            await runner.cleanup()
