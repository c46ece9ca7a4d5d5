"""Per-call records and /metrics, from a real workload through the gateway and simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sluice import server
from sluice.cost.compute import compute_cost
from sluice.cost.prices import resolve_price
from sluice.observe.store import RecordStore
from sluice.types import Usage
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> int:
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers or {}) as r:
        await r.read()
        return r.status


async def test_every_call_is_recorded_and_matches_upstream_usage(
    sim_url: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    config = gateway_config(sim_url)
    data = config.model_dump()
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(config.model_validate(data))
    url = f"http://127.0.0.1:{port}"
    ask = {
        "messages": [
            {"role": "user", "content": "Email me at jane.doe@example.com or call +1 415 555 0100"}
        ]
    }
    async with aiohttp.ClientSession() as http:
        statuses = [
            await post(
                http,
                url,
                {"model": "gpt-4o-mini", **ask},
                {"x-sluice-user": "u1", "x-sluice-feature": "support"},
            ),
            await post(
                http, url, {"model": "claude-haiku", "stream": True, **ask}, {"x-sluice-user": "u2"}
            ),
            await post(http, url, {"model": "gpt-4o", "temperature": 5, **ask}),
            await post(http, url, {"model": "nope", **ask}),
            await post(http, url, {"model": "gpt-4o", **ask}, {"x-sim-fault": "500"}),
        ]
        async with http.get(sim_url + "/sim/stats") as r:
            sim = await r.json()
        async with http.get(url + "/metrics") as r:
            metrics = await r.text()
    await runner.cleanup()  # flushes the sink

    assert statuses[:2] == [200, 200] and statuses[3] == 404 and statuses[4] == 500
    store = RecordStore.open(db)
    records = store.query()
    store.close()
    calls = [r for r in records if r.kind == "call"]
    attempts = [r for r in records if r.kind == "attempt"]
    assert len(calls) == 5
    by_model = {r.model_requested: r for r in calls if r.status == 200}
    plain, streamed = by_model["gpt-4o-mini"], by_model["claude-haiku"]
    assert (plain.user_id, plain.feature, plain.deployment) == ("u1", "support", "sim-gpt-4o-mini")
    assert streamed.stream and streamed.user_id == "u2" and streamed.ttft_ms is not None
    for rec, model in ((plain, "gpt-4o-mini"), (streamed, "claude-3-5-haiku-latest")):
        upstream = sim["by_model"][model]
        assert (rec.input_tokens, rec.output_tokens) == (
            upstream["input_tokens"],
            upstream["output_tokens"],
        )
        assert rec.finish_reason == "stop" and rec.attempts == 1
    price = resolve_price(None, "openai", "gpt-4o-mini")
    dep_price = gateway_config(sim_url).deployments[0].price
    assert plain.cost_usd == compute_cost(
        Usage(plain.input_tokens, plain.output_tokens),
        resolve_price(dep_price, "openai", "gpt-4o-mini"),
    )
    assert price is not None and plain.cost_usd is not None and plain.cost_usd > 0
    # previews are redacted: no e-mail address or phone number is stored
    assert plain.input_preview is not None and "jane.doe" not in plain.input_preview
    assert "[email]" in plain.input_preview and "555" not in plain.input_preview
    assert plain.output_preview and plain.output_preview.startswith("[simulated]")
    failed = [r for r in calls if r.status >= 400]
    assert {r.status for r in failed} == {400, 404, 500}
    assert all(r.output_preview is None for r in failed)
    # the 500 was retried: its attempts are recorded and linked to the call
    retried = next(r for r in calls if r.status == 500)
    assert retried.attempts == 3
    linked = [a for a in attempts if a.attempt_of == retried.request_id]
    assert len(linked) == 3 and all(a.status == 500 for a in linked)
    # metrics
    assert (
        'sluice_requests_total{deployment="sim-gpt-4o-mini",route="gpt-4o-mini",status="200"}'
        in metrics
    )
    assert 'sluice_breaker_state{deployment="sim-gpt-4o"}' in metrics
    assert "sluice_cost_usd_total" in metrics


async def test_records_can_be_switched_off_and_previews_too(sim_url: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"].update(store_url=db, previews=False)
    runner, port = await server.start(gateway_config(sim_url).model_validate(data))
    async with aiohttp.ClientSession() as http:
        await post(
            http,
            f"http://127.0.0.1:{port}",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
    await runner.cleanup()
    store = RecordStore.open(db)
    (record,) = store.query()
    store.close()
    assert record.input_preview is None and record.output_preview is None


async def test_cache_hits_are_recorded_as_free_with_the_saving(
    sim_url: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(gateway_config(sim_url).model_validate(data))
    body = {
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [{"role": "user", "content": "cache me"}],
    }
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            assert await post(http, f"http://127.0.0.1:{port}", body) == 200
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            metrics = await r.text()
    await runner.cleanup()
    store = RecordStore.open(db)
    miss, hit = store.query()
    store.close()
    assert (miss.cache_status, hit.cache_status) == ("miss", "exact")
    assert miss.cost_usd is not None and miss.cost_usd > 0
    assert hit.cost_usd == 0 and hit.deployment is None and hit.output_tokens == 0
    assert hit.cost_saved_usd == miss.cost_usd  # what the answer cost the first time
    assert 'sluice_cache_hits_total{kind="exact"} 1.0' in metrics


async def test_idempotent_replays_cost_nothing(sim_url: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(gateway_config(sim_url).model_validate(data))
    body = {"model": "claude-haiku", "messages": [{"role": "user", "content": "order 42"}]}
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            status = await post(
                http, f"http://127.0.0.1:{port}", body, {"Idempotency-Key": "order-42"}
            )
            assert status == 200
    await runner.cleanup()
    store = RecordStore.open(db)
    first, replay = store.query()
    store.close()
    assert first.cost_usd is not None and first.cost_usd > 0 and first.attempts == 1
    assert replay.cost_usd == 0 and replay.attempts == 0
