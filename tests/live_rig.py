"""Gateways with live evaluation on (shadow traffic, online judging), as the integration
tests drive them: a candidate simulator, the config, calls through the official openai SDK,
the live-eval state and the call records the gateway wrote."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from sqlalchemy import select

from sluice.config import SluiceConfig
from sluice.eval.live import LiveEval
from sluice.observe.store import RecordStore
from sluice.sim.config import SimConfig, SimModel
from sluice.sim.server import start as start_sim
from sluice.web.appkeys import GATEWAY
from tests.conftest import gateway_config
from tests.governance_rig import keyed_config, set_env

# Every call mirrored to gpt-4o / judged by gpt-4o-mini (both on the simulator).
MIRROR_ALL: dict[str, Any] = {"candidate": "gpt-4o", "sample": 1.0}
JUDGE_ALL: dict[str, Any] = {"sample": 1.0, "judge_model": "gpt-4o-mini"}


@asynccontextmanager
async def candidate_sim(**model: Any) -> AsyncIterator[str]:
    """A second simulator serving the shadow candidate, with its own latency or faults."""
    faults = model.pop("faults", None)
    config = SimConfig(port=0, models={"cand": SimModel(**model)})
    if faults:
        config = config.model_copy(update={"fault_rate": 1.0, "faults": faults})
    runner, port = await start_sim(config)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def live_config(
    sim_url: str,
    records: str,
    cand_url: str | None = None,
    *,
    shadow: dict[str, Any] | None = None,
    online: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
) -> SluiceConfig:
    """Route `support` (gpt-4o-mini) with the given shadow / online_eval settings, records
    in `records`, caches off; `cand_url` adds the candidate simulator's model `cand`."""
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"].update({"enabled": True, "store_url": records})
    data["cache"]["exact"]["enabled"] = False
    data["cache"]["semantic"]["enabled"] = False
    if cand_url is not None:
        data["providers"]["cand-sim"] = {
            "kind": "openai",
            "api_base": cand_url + "/v1",
        }
        data["deployments"].append(
            {
                "id": "cand",
                "provider": "cand-sim",
                "model": "cand",
                "serves": ["cand"],
                "price": {"input": 1.0, "output": 1.0},
            }
        )
    route: dict[str, Any] = {"targets": ["gpt-4o-mini"], "default": "gpt-4o-mini"}
    if shadow is not None:
        route["shadow"] = shadow
    if online is not None:
        route["online_eval"] = online
    data["routes"] = {"support": route}
    if limits is not None:
        data["limits"] = limits
    return SluiceConfig.model_validate(data)


def keyed_live_config(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SluiceConfig, str]:
    """Virtual-key auth on (SQLite key store) and every `support` call mirrored and judged;
    returns the config and its records URL."""
    set_env(monkeypatch)
    records = f"sqlite:///{tmp_path / 'records.db'}"
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    live = live_config(sim_url, records, shadow=MIRROR_ALL, online=JUDGE_ALL).model_dump()
    data["routes"] = live["routes"]
    data["observability"]["records"].update({"enabled": True, "store_url": records})
    return SluiceConfig.model_validate(data), records


def live_eval(app: web.Application) -> LiveEval:
    live = app[GATEWAY].live_eval
    assert live is not None
    return live


def live_stats(app: web.Application, route: str = "support") -> tuple[dict[str, int], ...]:
    """(shadow, online) outcome counts of `route` so far."""
    stats = live_eval(app).stats
    return dict(stats.shadow[route]), dict(stats.online[route])


async def calls(
    base: str, n: int, *, stream: bool = False, text: str = "hello", **kw: Any
) -> list[str]:
    """`n` calls of route `support` (message `{text} {i}`); their request ids."""
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
    ids = []
    try:
        for i in range(n):
            messages: Any = [{"role": "user", "content": f"{text} {i}"}]
            if stream:
                raw = await client.chat.completions.with_raw_response.create(
                    model="support", messages=messages, stream=True, **kw
                )
                async for _ in raw.parse():
                    pass
            else:
                raw = await client.chat.completions.with_raw_response.create(
                    model="support", messages=messages, **kw
                )
            ids.append(raw.headers["x-sluice-request-id"])
    finally:
        await client.close()
    return ids


def call_records(url: str, ids: list[str] | None = None) -> list[Any]:
    store = RecordStore(url)
    try:
        t = store.table
        with store.engine.connect() as conn:
            rows = list(conn.execute(select(t).where(t.c.kind == "call")))
    finally:
        store.close()
    return [r for r in rows if ids is None or r.request_id in ids]


async def wait_records(url: str, count: int, timeout_s: float = 10.0) -> list[Any]:
    """The call records once there are `count` (the sink writes in batches), or at timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await asyncio.to_thread(call_records, url)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)
