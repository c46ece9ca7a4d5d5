"""Shadow traffic and online quality sampling end to end: the official openai SDK against
the gateway over loopback, the simulator as upstream (a second, slow or failing simulator
as the shadow candidate), the simulator as a deterministic judge."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from sluice.eval.live import JUDGE_FEATURE, SHADOW_FEATURE
from sluice.eval.live_store import LiveStore
from sluice.web.appkeys import GATEWAY
from tests.governance_rig import gateway
from tests.live_rig import (
    JUDGE_ALL,
    MIRROR_ALL,
    calls,
    candidate_sim,
    keyed_live_config,
    live_config,
    live_eval,
    wait_records,
)

pytestmark = pytest.mark.integration


async def test_shadow_mirrors_after_the_answer_with_its_own_record_and_pairs(
    sim_url: str, tmp_path: Path
) -> None:
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(sim_url, records, shadow=MIRROR_ALL)
    async with gateway(config) as (base, app):
        ids = await calls(base, 3) + await calls(base, 2, stream=True)
        await live_eval(app).join()
        rows = await wait_records(records, 10)
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


async def test_a_failing_candidate_never_fails_the_caller(sim_url: str, tmp_path: Path) -> None:
    records = f"sqlite:///{tmp_path / 'records.db'}"
    async with candidate_sim(faults=["500"]) as cand:
        config = live_config(sim_url, records, cand, shadow={"candidate": "cand", "sample": 1.0})
        async with gateway(config) as (base, app):
            ids = await calls(base, 3) + await calls(base, 2, stream=True)  # all answered
            await live_eval(app).join()
            stats = dict(live_eval(app).stats.shadow["support"])
            rows = await wait_records(records, 10)
    assert stats == {"failed": 5}
    callers = [r for r in rows if r.request_id in ids]
    assert len(callers) == 5 and all(r.status == 200 for r in callers)
    shadows = [r for r in rows if r.feature == SHADOW_FEATURE]
    assert len(shadows) == 5 and all(r.status >= 500 for r in shadows)
    store = LiveStore.open(records)
    try:
        pairs = store.pairs_since(0)
    finally:
        store.close()
    assert len(pairs) == 5 and all(p.error and p.candidate_output is None for p in pairs)


async def test_a_hanging_candidate_never_delays_the_caller_and_a_full_queue_drops(
    sim_url: str, tmp_path: Path
) -> None:
    """The candidate never answers (it hangs 300 s): every caller call, plain and streamed,
    is answered while the first mirror is still waiting; one more waits in the queue (size
    1) and the rest are dropped and counted, never queued without bound."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    async with candidate_sim(faults=["hang"]) as cand:
        shadow = {"candidate": "cand", "sample": 1.0, "queue": 1, "concurrency": 1}
        config = live_config(sim_url, records, cand, shadow=shadow)
        async with gateway(config) as (base, app):
            ids = await calls(base, 4) + await calls(base, 2, stream=True)
            live = live_eval(app)
            stats = dict(live.stats.shadow["support"])
            lane = live._lanes[("shadow", "support")]
            waiting = lane.waiting
            rows = await wait_records(records, 6)
            metrics = app[GATEWAY].render_metrics().decode()
    assert len(ids) == 6
    assert {r.status for r in rows if r.request_id in ids} == {200}
    assert stats == {"dropped": 4}  # one in flight (hanging), one queued, four dropped
    assert waiting == 1
    assert not [r for r in rows if r.feature == SHADOW_FEATURE]  # none finished yet
    assert 'sluice_shadow_calls_total{outcome="dropped",route="support"} 4.0' in metrics


async def test_shadow_calls_spend_their_own_budget_line(sim_url: str, tmp_path: Path) -> None:
    """The shadow tenant's tiny hard budget refuses the mirrors (429): the caller's calls are
    answered, its tenant's spend is exactly its own calls' cost, the mirrors' cost is not in it."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    limits = {
        "enabled": True,
        "budgets": {
            "tenants": {
                "default": [{"period": "daily", "usd": 10.0}],
                "sluice-shadow": [{"period": "daily", "usd": 0.0006}],
            }
        },
    }
    config = live_config(sim_url, records, shadow=MIRROR_ALL, limits=limits)
    async with gateway(config) as (base, app):
        ids = await calls(base, 6, max_tokens=50)  # worst case of a mirror: ~$0.0005
        await live_eval(app).join()
        stats = dict(live_eval(app).stats.shadow["support"])
        rows = await wait_records(records, 12)
        limits_stage = app[GATEWAY].limits
        assert limits_stage is not None
        from sluice.identity import Identity

        caller = await limits_stage.usage(Identity())
        shadow = await limits_stage.usage(Identity(key_id="x", tenant="sluice-shadow"))
    callers = [r for r in rows if r.request_id in ids]
    assert {r.status for r in callers} == {200}
    shadows = [r for r in rows if r.feature == SHADOW_FEATURE]
    assert len(shadows) == 6
    assert {r.status for r in shadows} == {200, 429}  # the shadow line ran out, not the caller's
    assert stats.get("failed", 0) >= 1
    caller_cost = sum(Decimal(str(r.cost_usd)) for r in callers)
    spent = _spent(caller, "tenant")
    assert caller["tenant"] == "default", caller
    assert spent is not None and abs(spent - caller_cost) < Decimal("1e-9")
    shadow_spent = _spent(shadow, "tenant")
    assert shadow_spent is not None and shadow_spent > 0


def _spent(usage: Any, scope: str) -> Decimal | None:
    for budget in usage.get("budgets", []):
        if str(budget.get("scope")).startswith(scope) and budget.get("unit") == "usd":
            return Decimal(str(budget["spent"]))
    return None


async def test_online_judge_scores_metrics_store_and_quality_alert(
    sim_url: str, tmp_path: Path
) -> None:
    """Every call judged (sample 1.0) by the simulator as judge: the `sim-judge-score=2`
    written in the question makes each verdict 2 (0.25); `sim-judge-score=5` makes it 5."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    online = {
        "sample": 1.0,
        "judge_model": "gpt-4o-mini",
        "alert_below": 0.5,
        "min_scores": 4,
    }
    config = live_config(sim_url, records, online=online)
    async with gateway(config) as (base, app):
        bad = await calls(base, 3, text="sim-judge-score=2 why") + await calls(
            base, 1, stream=True, text="sim-judge-score=2 why"
        )
        good = await calls(base, 1, text="sim-judge-score=5 why")
        live = live_eval(app)
        await live.join()
        metrics = app[GATEWAY].render_metrics().decode()
        from sluice.web.alerts import ALERTS

        engine = app[ALERTS]
        assert live.quality_rule in engine.rules
        engine.evaluate()
        firing = [(a.name, a.labels) for a in engine.active]
        rows = await wait_records(records, 10)
        store = LiveStore.open(records)
        try:
            quality = store.quality(0)
        finally:
            store.close()
    assert live.stats.online["support"] == {"judged": 5}
    assert 'sluice_quality_score_count{model="gpt-4o-mini",route="support"} 5.0' in metrics
    assert 'sluice_quality_score_sum{model="gpt-4o-mini",route="support"} 2.0' in metrics
    assert 'sluice_online_eval_total{outcome="judged",route="support"} 5.0' in metrics
    assert ("quality_drop", (("route", "support"),)) in firing  # mean 0.4 < 0.5, 5 scores
    judges = {r.parent_request_id: r for r in rows if r.feature == JUDGE_FEATURE}
    assert set(judges) == set(bad + good)
    assert {r.tenant for r in judges.values()} == {"sluice-eval"}
    assert all(r.status == 200 and r.cost_usd is not None for r in judges.values())
    assert quality == [
        {
            "route": "support",
            "model": "gpt-4o-mini",
            "judged": 5,
            "mean_score": pytest.approx(0.4),
            "good_rate": 0.2,
        }
    ]


async def test_sampled_calls_are_exactly_the_hash_sampled_request_ids(
    sim_url: str, tmp_path: Path
) -> None:
    """Which calls are mirrored and judged is `sampled(request id)`, nothing else: the
    gateway's choice over 120 calls equals the sampler's, call for call (the sampler's own
    rate is within 2% of the share: tests/unit/test_online_sampling.py)."""
    from sluice.eval.live import sampled

    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow={"candidate": "gpt-4o", "sample": 0.2, "queue": 1000},
        online={"sample": 0.3, "judge_model": "gpt-4o-mini", "queue": 1000},
    )
    async with gateway(config) as (base, app):
        ids = await calls(base, 120)
        await live_eval(app).join()
        salt = live_eval(app).salt
        rows = await wait_records(records, 120 + 24 + 36, timeout_s=15)
    mirrored = {r.parent_request_id for r in rows if r.feature == SHADOW_FEATURE}
    judged = {r.parent_request_id for r in rows if r.feature == JUDGE_FEATURE}
    assert mirrored == {i for i in ids if sampled(i, 0.2, f"shadow:{salt}")}
    assert judged == {i for i in ids if sampled(i, 0.3, f"online:{salt}")}
    assert 0 < len(mirrored) < 120 and 0 < len(judged) < 120


async def test_shadow_report_judges_stored_pairs_pairwise(sim_url: str, tmp_path: Path) -> None:
    """`sluice eval shadow report` judges each stored pair in both orders through the
    gateway (the simulator's content rule: position-independent, so never inconsistent);
    pairs whose candidate failed are counted as candidate errors, not judged."""
    from click.testing import CliRunner

    from sluice.cli import main

    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(sim_url, records, shadow=MIRROR_ALL)
    async with gateway(config) as (base, app):
        await calls(base, 4)
        await live_eval(app).join()
        store = LiveStore.open(records)
        try:  # one more pair whose candidate failed
            store.put_pair(
                {
                    "request_id": "req_failed", "route": "support", "tenant": "default",
                    "production_model": "gpt-4o-mini", "candidate": "gpt-4o",
                    "candidate_request_id": "shd_x", "ts": time.time(), "question": "q",
                    "production": "p", "candidate_output": None, "production_ms": 1.0,
                    "candidate_ms": 2.0, "error": "server_error: boom",
                }
            )  # fmt: skip
        finally:
            store.close()
        args = ["eval", "shadow", "report", "--store", records, "--url", base,
                "--judge-model", "gpt-4o-mini", "--json"]  # fmt: skip
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        rows = await wait_records(records, 4 + 4 + 8)
    assert result.exit_code == 0, result.output
    (group,) = orjson_loads(result.output)["groups"]
    assert group["route"] == "support" and group["candidate"] == "gpt-4o"
    assert group["pairs"] == 5 and group["candidate_errors"] == 1 and group["judged"] == 4
    assert group["inconsistent"] == 0 and group["judge_errors"] == 0
    assert group["candidate_wins"] + group["production_wins"] + group["ties"] == 4
    judge_calls = [r for r in rows if r.feature == "sluice-shadow-judge"]
    assert len(judge_calls) == 8  # two orders per judged pair, recorded as helper calls


def orjson_loads(text: str) -> Any:
    import orjson

    return orjson.loads(text.strip().splitlines()[-1])


async def test_dashboard_lists_shadow_quality_and_feedback_rates(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    monkeypatch.delenv("SLUICE_ADMIN_KEY", raising=False)  # the dashboard: loopback only
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
    )
    async with gateway(config) as (base, app), aiohttp.ClientSession() as http:
        ids = await calls(base, 2, text="sim-judge-score=5 q")
        await live_eval(app).join()
        fb = {"request_id": ids[0], "thumbs": "up"}
        async with http.post(base + "/v1/sluice/feedback", json=fb) as resp:
            assert resp.status == 201, await resp.text()
        async with http.get(base + "/ui/api/eval?period=1h") as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        async with http.get(base + "/ui/api/eval?period=forever") as resp:
            assert resp.status == 400
        async with http.get(base + "/ui") as resp:
            page = await resp.text()
    assert 'id="eval-panel"' in page
    assert body["records"] is True
    assert body["shadow_live"] == {"support": {"mirrored": 2}}
    assert body["online_live"] == {"support": {"judged": 2}}
    (shadow,) = body["shadow"]
    assert shadow["route"] == "support" and shadow["pairs"] == 2 and shadow["errors"] == 0
    (quality,) = body["quality"]
    assert quality["judged"] == 2 and quality["mean_score"] == 1.0 and quality["good_rate"] == 1.0
    routes = {r["group"]: r for r in body["feedback"]["route"]}
    assert routes["support"]["calls"] == 2 and routes["support"]["feedback_rate"] == 0.5
    models = {r["group"]: r for r in body["feedback"]["model"]}
    assert models["gpt-4o-mini"]["feedback"] == 1  # what served the route's calls


def test_live_store_and_saved_run_order_in_postgresql() -> None:
    """Pairs, scores and their aggregates, and a saved run read back in its order, in
    PostgreSQL (a fresh schema)."""
    from sluice.eval.result_store import EvalResultStore
    from sluice.eval.runner import ItemResult
    from sluice.state import migrations
    from tests.governance_rig import postgres_schema

    with postgres_schema() as url:
        store = LiveStore.open(url)
        assert migrations.current(url, "eval") == "e0002_score_tenant"
        try:
            for i, error in enumerate((None, None, "server_error: x")):
                store.put_pair(
                    {
                        "request_id": f"r{i}", "route": "support", "tenant": "t",
                        "production_model": "m", "candidate": "c",
                        "candidate_request_id": f"s{i}", "ts": time.time(), "question": "q",
                        "production": "p", "candidate_output": None if error else "c",
                        "production_ms": 10.0, "candidate_ms": 30.0, "error": error,
                    }
                )  # fmt: skip
            for i, verdict in enumerate((5, 4, 1, 1)):
                store.put_score(
                    {
                        "request_id": f"r{i}", "route": "support", "model": "m",
                        "ts": time.time(), "score": (verdict - 1) / 4, "verdict": verdict,
                        "reason": "ok", "judge_request_id": f"j{i}",
                    }
                )  # fmt: skip
            store.put_score(  # the same call judged again: replaced, not added
                {
                    "request_id": "r3", "route": "support", "model": "m", "ts": time.time(),
                    "score": 1.0, "verdict": 5, "reason": "again", "judge_request_id": "j9",
                }
            )  # fmt: skip
            (stats,) = store.shadow_stats(0)
            assert (stats["pairs"], stats["errors"]) == (3, 1)
            assert float(stats["candidate_ms"]) == 30.0
            (quality,) = store.quality(0)
            assert quality["judged"] == 4 and quality["good_rate"] == 0.75
            assert quality["mean_score"] == pytest.approx((1 + 0.75 + 0 + 1) / 4)
            assert len(store.pairs_since(0, "support")) == 3
            assert store.pairs_since(0, "other") == []
        finally:
            store.close()
        saved = EvalResultStore.open(url)
        try:
            results = [
                ItemResult(f"i{i}", target, "o", {}, 1.0, True, f"r{i}{target}", 1.0)
                for target in ("zeta-baseline", "alpha-candidate")
                for i in range(3)
            ]
            saved.save("run9", "d.jsonl", results)
            loaded = saved.load("run9")
            assert loaded is not None and loaded[0] == "d.jsonl"
            assert [r.target for r in loaded[1]][:1] == ["zeta-baseline"]
            assert saved.load("nope") is None
        finally:
            saved.close()


async def test_a_stream_the_client_abandons_is_neither_mirrored_nor_judged(
    sim_url: str, tmp_path: Path
) -> None:
    import aiohttp

    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
    )
    body = {
        "model": "support",
        "stream": True,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "a long answer please"}],
    }
    async with gateway(config) as (base, app), aiohttp.ClientSession() as http:
        # 200 tokens at 20 tokens/s: the client leaves after the first event
        resp = await http.post(
            base + "/v1/chat/completions",
            json=body,
            headers={"x-sim-tps": "20", "x-sim-output-tokens": "200"},
        )
        abandoned = resp.headers["x-sluice-request-id"]
        await resp.content.readline()
        resp.close()
        (done,) = await calls(base, 1, stream=True)
        rows = await wait_records(records, 4)  # abandoned, done, its mirror and judge
        await live_eval(app).join()
        rows = await wait_records(records, 4)
    parents = {r.parent_request_id for r in rows if r.feature in (SHADOW_FEATURE, JUDGE_FEATURE)}
    assert parents == {done}
    cut = next(r for r in rows if r.request_id == abandoned)
    assert cut.status == 499


def test_eval_tables_made_by_the_old_create_all_are_adopted(tmp_path: Path) -> None:
    """A database whose feedback and results tables were made before the `eval` migration
    branch keeps them (and their rows); the two new tables are created beside them."""
    from sqlalchemy import MetaData, create_engine, inspect

    from sluice.eval.feedback import Feedback
    from sluice.eval.feedback_store import FeedbackStore
    from sluice.state import migrations, tables

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    old = MetaData()
    for table in (tables.feedback, tables.eval_results):
        table.to_metadata(old)
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            tables.feedback.insert().values(
                tenant="t", request_id="r", key_id=None, score=1.0, thumbs="up",
                comment=None, tags="[]", ts=1.0,
            )
        )  # fmt: skip
    engine.dispose()
    store = FeedbackStore.open(url)
    try:
        assert store.get("t", "r") == Feedback("r", "t", None, 1.0, "up", None, (), 1.0)
    finally:
        store.close()
    assert migrations.current(url, "eval") == "e0002_score_tenant"
    engine = create_engine(url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {tables.SHADOW_PAIRS_TABLE, tables.ONLINE_SCORES_TABLE} <= names


async def test_with_auth_on_mirrors_run_as_their_own_tenant_and_stay_hidden(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth on, a real virtual key: the mirror and the judge call pass auth as their own
    tenants; the caller can give feedback on its own call but gets the same 404 as an
    unknown id for the mirror's request id (not its tenant's)."""
    import aiohttp

    from tests.governance_rig import create_key

    config, records = keyed_live_config(sim_url, tmp_path, monkeypatch)
    async with gateway(config) as (base, app), aiohttp.ClientSession() as http:
        key = (await create_key(http, base, tenant="acme"))["key"]
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="support", messages=[{"role": "user", "content": "hi"}]
            )
        finally:
            await client.close()
        call = raw.headers["x-sluice-request-id"]
        await live_eval(app).join()
        rows = await wait_records(records, 3)
        mirror = next(r for r in rows if r.feature == SHADOW_FEATURE)
        auth = {"authorization": f"Bearer {key}"}
        url = base + "/v1/sluice/feedback"
        async with http.post(url, json={"request_id": call, "score": 1}, headers=auth) as r:
            assert r.status == 201
        body = {"request_id": mirror.request_id, "score": 0}
        async with http.post(url, json=body, headers=auth) as r:
            assert r.status == 404
    assert mirror.status == 200 and mirror.tenant == "sluice-shadow"
    assert mirror.parent_request_id == call
    judge = next(r for r in rows if r.feature == JUDGE_FEATURE)
    assert judge.status == 200 and judge.tenant == "sluice-eval"
    assert next(r for r in rows if r.request_id == call).tenant == "acme"


async def test_tool_call_answers_are_not_judged(sim_url: str, tmp_path: Path) -> None:
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(sim_url, records, online=JUDGE_ALL)
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    async with gateway(config) as (base, app):
        await calls(base, 1, tools=[tool])
        await calls(base, 1)
        await live_eval(app).join()
    assert live_eval(app).stats.online["support"] == {"skipped": 1, "judged": 1}
