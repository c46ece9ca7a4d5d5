"""Forward-mode batches are charged like every other call (h-forward-money): each forwarded
item leaves a spend-ledger row and updates the budget counters that apply to its caller,
at the provider's batch price, exactly once. Real gateway, official SDK, the simulator's
batch API; limits on with a ledger store."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from sluice.config import SluiceConfig
from sluice.governance.ledger import spend_since
from sluice.observe.report import run_report
from sluice.state import migrations
from sluice.web.appkeys import GATEWAY
from sluice.web.batches import RUNNER, STORE
from tests.governance_rig import admin, create_key, gateway, keyed_config, set_env
from tests.integration.test_adv_async import _lines

pytestmark = pytest.mark.integration

N = 6
HALF_PRICE = (Decimal("0.15") / 2, Decimal("0.60") / 2)  # gpt-4o-mini, per million tokens


def _config(sim_url: str, tmp: str, backend: str) -> SluiceConfig:
    data = keyed_config(sim_url, f"sqlite:///{tmp}/keys.db").model_dump()
    data["cache"]["exact"]["enabled"] = False
    data["cache"]["semantic"]["enabled"] = False
    data["observability"]["records"]["enabled"] = True
    data["observability"]["records"]["store_url"] = f"sqlite:///{tmp}/records.db"
    data["limits"].update(
        {
            "enabled": True,
            "backend": backend,
            "key_prefix": f"sluice:test:{uuid.uuid4().hex}:",
        }
    )
    data["limits"]["ledger"].update({"store_url": f"sqlite:///{tmp}/ledger.db"})
    data["batch"].update(
        {"models": {"gpt-4o-mini": "forward"}, "forward_poll_s": 0.1, "max_concurrency": 1}
    )
    return SluiceConfig.model_validate(data)


async def _done(client: openai.AsyncOpenAI, batch_id: str) -> Any:
    done = await client.batches.retrieve(batch_id)
    for _ in range(600):
        if done.status in ("completed", "failed", "expired", "cancelled"):
            break
        await asyncio.sleep(0.1)
        done = await client.batches.retrieve(batch_id)
    return done


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_forwarded_items_reach_the_spend_ledger_and_budget_counters(
    sim_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """A forwarded batch used to leave call records at the batch price but no ledger row
    and no budget-counter update: tenant spend reports understated it, and a budget given
    to the key while the provider ran the batch never counted what it cost. Now each item
    settles through the limits stage: one ledger row per item (attributed to the caller's
    key, tenant and user), and the key's budget counters carry the spend. Results mapped a
    second time (a poll after a restart) charge nothing more."""
    set_env(monkeypatch)
    async with gateway(_config(sim_url, str(tmp_path), backend)) as (base, app):
        gw = app[GATEWAY]
        runner = app[RUNNER]
        forwarder = runner.forwarder
        assert forwarder is not None
        async with aiohttp.ClientSession() as http:
            made_key = await create_key(http, base, user="ann", team="red")
        key, key_id = made_key["key"], made_key["key_id"]
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        try:
            upload = await client.files.create(file=("in.jsonl", _lines(N)), purpose="batch")
            forwarder.poll_s = 3600.0  # hold the results back until the budget is added
            made = await client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            forwarder._polled[made.id] = time.monotonic()
            stored = await app[STORE].get_any(made.id)
            assert stored is not None and stored.mode == "forward"  # no budget: forwarded
            for _ in range(100):  # submitted to the provider
                stored = await app[STORE].get_any(made.id)
                if stored is not None and stored.provider and "id" in stored.provider:
                    break
                await asyncio.sleep(0.1)
            assert stored is not None and stored.provider and "id" in stored.provider
            # A budget given to the key while the provider runs the batch.
            async with aiohttp.ClientSession() as http:
                status, body = await admin(
                    http,
                    "PATCH",
                    f"{base}/admin/keys/{key_id}",
                    {"budgets": [{"period": "monthly", "tokens": 10_000_000, "usd": 1000}]},
                )
                assert status == 200, body
            forwarder.poll_s = 0.1
            forwarder._polled.pop(made.id, None)
            done = await _done(client, made.id)
            assert done.status == "completed" and done.request_counts is not None
            assert done.request_counts.completed == N

            assert gw.limits is not None
            ledger = gw.limits.ledger
            assert ledger is not None
            await ledger.flush()
            migrations.upgrade(str(ledger.config.store_url), "governance")  # even if unused
            by_key = spend_since(ledger.engine, "key_id", 0.0, tenant="acme")
            assert set(by_key) == {key_id}
            spent = by_key[key_id]
            assert spent["calls"] == N and spent["tokens"] > 0
            assert set(spend_since(ledger.engine, "user_id", 0.0)) == {"ann"}
            # The ledger's sum is the items' batch-priced cost (their call records).
            url = str(gw.config.observability.records.store_url)
            row: dict[str, Any] | None = None
            for _ in range(100):
                report = orjson.loads(run_report(url, "1h", "batch", as_json=True))
                row = next((g for g in report["groups"] if g["group"] == made.id), None)
                if row is not None and row["calls"] == N:
                    break
                await asyncio.sleep(0.1)
            assert row is not None and row["calls"] == N
            assert abs(Decimal(str(row["cost_usd"])) - spent["usd"]) < Decimal("1e-9")
            expected = (
                row["input_tokens"] * HALF_PRICE[0] + row["output_tokens"] * HALF_PRICE[1]
            ) / Decimal(1_000_000)
            assert abs(spent["usd"] - expected) < Decimal("1e-9")
            by_user = orjson.loads(run_report(url, "1h", "user", as_json=True))["groups"]
            assert [(g["group"], g["calls"]) for g in by_user] == [("ann", N)]

            # The key's budget counters carry it (what /v1/sluice/usage answers).
            async with aiohttp.ClientSession() as http:
                headers = {"authorization": f"Bearer {key}"}
                async with http.get(f"{base}/v1/sluice/usage", headers=headers) as resp:
                    assert resp.status == 200
                    usage = await resp.json()
            budgets = {b["unit"]: b for b in usage["budgets"] if b["scope"] == f"key:{key_id}"}
            assert budgets["tokens"]["spent"] == spent["tokens"]
            assert abs(Decimal(str(budgets["usd"]["spent"])) - spent["usd"]) < Decimal("1e-8")

            # Exactly once: the provider's results mapped again (a poll after a restart).
            batch = await app[STORE].get_any(made.id)
            assert batch is not None and batch.provider is not None
            client_of = forwarder.client_for(str(batch.provider["provider"]))
            await forwarder._collect(batch, str(batch.provider["id"]), client_of)
            await ledger.flush()
            again = spend_since(ledger.engine, "key_id", 0.0, tenant="acme")[key_id]
            assert again["calls"] == N and again["usd"] == spent["usd"]
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{base}/v1/sluice/usage", headers=headers) as resp,
            ):
                usage = await resp.json()
            tokens = [
                b
                for b in usage["budgets"]
                if b["scope"] == f"key:{key_id}" and b["unit"] == "tokens"
            ]
            assert tokens[0]["spent"] == spent["tokens"]
        finally:
            await client.close()


async def test_a_run_item_whose_answer_cannot_be_encoded_keeps_its_record_and_charge(
    sim_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review4: encoding the answer sat after the item's try. Had it raised after the
    upstream answered, the item ended errored with neither a call record nor a charge."""
    import dataclasses

    import sluice.web.batch_run as batches_web

    def boom(response: Any, model: str) -> dict[str, Any]:
        raise RuntimeError("cannot encode")

    from sluice.frontends.openai import OPENAI_FRONTEND

    broken = dataclasses.replace(OPENAI_FRONTEND, encode_response=boom)
    monkeypatch.setattr(batches_web, "OPENAI_FRONTEND", broken)
    set_env(monkeypatch)
    data = _config(sim_url, str(tmp_path), "memory").model_dump()
    data["batch"]["models"] = {}  # run mode: through the gateway's own pipeline
    async with gateway(SluiceConfig.model_validate(data)) as (base, app):
        gw = app[GATEWAY]
        async with aiohttp.ClientSession() as http:
            made_key = await create_key(http, base, user="ann", team="red")
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=made_key["key"], max_retries=0)
        try:
            upload = await client.files.create(file=("in.jsonl", _lines(2)), purpose="batch")
            made = await client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            done = await _done(client, made.id)
            assert done.request_counts is not None and done.request_counts.failed == 2
            assert gw.limits is not None and gw.limits.ledger is not None
            spent: dict[str | None, dict[str, Any]] = {}
            for _ in range(100):  # the held charges settle in the runner's housekeeping
                await gw.limits.ledger.flush()
                spent = spend_since(gw.limits.ledger.engine, "key_id", 0.0, tenant="acme")
                if spent and next(iter(spent.values()))["calls"] == 2:
                    break
                await asyncio.sleep(0.1)
            assert next(iter(spent.values()))["calls"] == 2  # both calls charged
        finally:
            await client.close()
    url = str(gw.config.observability.records.store_url)
    report = orjson.loads(run_report(url, "1h", "batch", as_json=True))
    row = next(g for g in report["groups"] if g["group"] == made.id)
    assert row["calls"] == 2  # and recorded
