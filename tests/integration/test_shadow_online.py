"""Shadow traffic and online quality sampling end to end: the official openai SDK against
the gateway over loopback, the simulator as upstream (a second, slow or failing simulator
as the shadow candidate), the simulator as a deterministic judge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from sqlalchemy import select

from sluice.config import SluiceConfig
from sluice.eval.live import JUDGE_FEATURE, SHADOW_FEATURE, LiveEval
from sluice.eval.live_store import LiveStore
from sluice.observe.store import RecordStore
from sluice.sim.config import SimConfig, SimModel
from sluice.sim.server import start as start_sim
from sluice.web.appkeys import GATEWAY
from tests.conftest import gateway_config
from tests.governance_rig import gateway

pytestmark = pytest.mark.integration


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


def _live(app: web.Application) -> LiveEval:
    live = app[GATEWAY].live_eval
    assert live is not None
    return live


async def _calls(base: str, n: int, *, stream: bool = False, text: str = "hello") -> list[str]:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
    ids = []
    try:
        for i in range(n):
            messages: Any = [{"role": "user", "content": f"{text} {i}"}]
            if stream:
                raw = await client.chat.completions.with_raw_response.create(
                    model="support", messages=messages, stream=True
                )
                async for _ in raw.parse():
                    pass
            else:
                raw = await client.chat.completions.with_raw_response.create(
                    model="support", messages=messages
                )
            ids.append(raw.headers["x-sluice-request-id"])
    finally:
        await client.close()
    return ids


def _records(url: str, ids: list[str] | None = None) -> list[Any]:
    store = RecordStore(url)
    try:
        t = store.table
        with store.engine.connect() as conn:
            rows = list(conn.execute(select(t).where(t.c.kind == "call")))
    finally:
        store.close()
    return [r for r in rows if ids is None or r.request_id in ids]


async def _wait_records(url: str, count: int, timeout_s: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await asyncio.to_thread(_records, url)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def test_shadow_mirrors_after_the_answer_with_its_own_record_and_pairs(
    sim_url: str, tmp_path: Path
) -> None:
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(sim_url, records, shadow={"candidate": "gpt-4o", "sample": 1.0})
    async with gateway(config) as (base, app):
        ids = await _calls(base, 3) + await _calls(base, 2, stream=True)
        await _live(app).join()
        rows = await _wait_records(records, 10)
    by_parent = {r.parent_request_id: r for r in rows if r.feature == SHADOW_FEATURE}
    assert set(by_parent) == set(ids)
    for shadow in by_parent.values():
        assert shadow.tenant == "sluice-shadow"
        assert shadow.model_requested == "gpt-4o"
        assert shadow.status == 200
    callers = [r for r in rows if r.request_id in ids]
    assert {r.tenant for r in callers} == {"default"}
    store = LiveStore.open(records)
    try:
        pairs = store.pairs_since(0)
    finally:
        store.close()
    assert {p.request_id for p in pairs} == set(ids)
    assert all(p.production and p.candidate_output and p.error is None for p in pairs)
