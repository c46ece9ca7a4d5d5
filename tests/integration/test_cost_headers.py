"""What a call cost, as the caller and the records see it: `x-sluice-cost-usd` on every
answer, cache hits served by deployment `cache` and credited with what the answer cost the
first time, failed calls that used no tokens costed $0 (not "unknown")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from sluice import server
from sluice.config import default_config
from sluice.observe.store import RecordStore
from tests.conftest import gateway_config
from tests.live_rig import wait_records

pytestmark = pytest.mark.integration


async def test_cost_header_cache_deployment_and_saved_cost(sim_url: str) -> None:
    records_url = default_config().observability.records.store_url or ""  # in state_dir
    app = server.create_app(gateway_config(sim_url))
    runner, port = await server.start_app(app)
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    try:

        async def ask() -> Any:
            return await oai.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "cost me once"}],
                temperature=0,
                max_tokens=30,
            )

        first = await ask()
        paid = Decimal(first.headers["x-sluice-cost-usd"])
        assert paid > 0
        assert first.headers["x-sluice-deployment"] != "cache"
        hit = await ask()
        assert hit.headers["x-sluice-cache"] == "exact"
        assert hit.headers["x-sluice-deployment"] == "cache"
        assert Decimal(hit.headers["x-sluice-cost-usd"]) == 0
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
                headers={"x-sim-fault": "500"},
            ) as resp,
        ):
            assert resp.status >= 500
            assert resp.headers["x-sluice-cost-usd"] == "0"
        await wait_records(records_url, 3, timeout_s=30)  # the sink writes every 0.5 s
    finally:
        await oai.close()
        await runner.cleanup()
    store = RecordStore.open(records_url)
    records = [r for r in store.query() if r.kind == "call"]
    store.close()
    assert len(records) == 3
    first_rec, hit_rec, failed_rec = records
    assert first_rec.cost_usd == paid
    assert hit_rec.cost_usd == 0 and hit_rec.cost_saved_usd == paid  # the first call's cost
    assert failed_rec.status >= 500 and failed_rec.cost_usd == 0  # known: no tokens, $0
