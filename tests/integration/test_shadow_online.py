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


async def _calls(
    base: str, n: int, *, stream: bool = False, text: str = "hello", **kw: Any
) -> list[str]:
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


async def test_a_failing_candidate_never_fails_the_caller(sim_url: str, tmp_path: Path) -> None:
    records = f"sqlite:///{tmp_path / 'records.db'}"
    async with candidate_sim(faults=["500"]) as cand:
        config = live_config(sim_url, records, cand, shadow={"candidate": "cand", "sample": 1.0})
        async with gateway(config) as (base, app):
            ids = await _calls(base, 3) + await _calls(base, 2, stream=True)  # all answered
            await _live(app).join()
            stats = dict(_live(app).stats.shadow["support"])
            rows = await _wait_records(records, 10)
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
            ids = await _calls(base, 4) + await _calls(base, 2, stream=True)
            live = _live(app)
            stats = dict(live.stats.shadow["support"])
            lane = live._lanes[("shadow", "support")]
            waiting = lane.waiting
            rows = await _wait_records(records, 6)
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
    config = live_config(
        sim_url, records, shadow={"candidate": "gpt-4o", "sample": 1.0}, limits=limits
    )
    async with gateway(config) as (base, app):
        ids = await _calls(base, 6, max_tokens=50)  # worst case of a mirror: ~$0.0005
        await _live(app).join()
        stats = dict(_live(app).stats.shadow["support"])
        rows = await _wait_records(records, 12)
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
        bad = await _calls(base, 3, text="sim-judge-score=2 why") + await _calls(
            base, 1, stream=True, text="sim-judge-score=2 why"
        )
        good = await _calls(base, 1, text="sim-judge-score=5 why")
        live = _live(app)
        await live.join()
        metrics = app[GATEWAY].render_metrics().decode()
        from sluice.web.alerts import ALERTS

        engine = app[ALERTS]
        assert live.quality_rule in engine.rules
        engine.evaluate()
        firing = [(a.name, a.labels) for a in engine.active]
        rows = await _wait_records(records, 10)
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
        ids = await _calls(base, 120)
        await _live(app).join()
        salt = _live(app).salt
        rows = await _wait_records(records, 120 + 24 + 36, timeout_s=15)
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
    config = live_config(sim_url, records, shadow={"candidate": "gpt-4o", "sample": 1.0})
    async with gateway(config) as (base, app):
        await _calls(base, 4)
        await _live(app).join()
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
        rows = await _wait_records(records, 4 + 4 + 8)
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
        shadow={"candidate": "gpt-4o", "sample": 1.0},
        online={"sample": 1.0, "judge_model": "gpt-4o-mini"},
    )
    async with gateway(config) as (base, app), aiohttp.ClientSession() as http:
        ids = await _calls(base, 2, text="sim-judge-score=5 q")
        await _live(app).join()
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
        shadow={"candidate": "gpt-4o", "sample": 1.0},
        online={"sample": 1.0, "judge_model": "gpt-4o-mini"},
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
        (done,) = await _calls(base, 1, stream=True)
        rows = await _wait_records(records, 4)  # abandoned, done, its mirror and judge
        await _live(app).join()
        rows = await _wait_records(records, 4)
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

    from tests.governance_rig import create_key, keyed_config, set_env

    set_env(monkeypatch)
    records = f"sqlite:///{tmp_path / 'records.db'}"
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    live = live_config(
        sim_url,
        records,
        shadow={"candidate": "gpt-4o", "sample": 1.0},
        online={"sample": 1.0, "judge_model": "gpt-4o-mini"},
    ).model_dump()
    data["routes"] = live["routes"]
    data["observability"]["records"].update({"enabled": True, "store_url": records})
    config = SluiceConfig.model_validate(data)
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
        await _live(app).join()
        rows = await _wait_records(records, 3)
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
    config = live_config(sim_url, records, online={"sample": 1.0, "judge_model": "gpt-4o-mini"})
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    async with gateway(config) as (base, app):
        await _calls(base, 1, tools=[tool])
        await _calls(base, 1)
        await _live(app).join()
    assert _live(app).stats.online["support"] == {"skipped": 1, "judged": 1}
