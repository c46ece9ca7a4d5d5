"""Adversarial end-to-end checks of live evaluation and feedback: a second tenant with its
own virtual key (official openai SDK over loopback, the simulator as upstream and judge)
trying to reach or spoil the first tenant's shadow pairs, online scores and feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from sluice.config import SluiceConfig
from sluice.eval.live_store import LiveStore
from tests.governance_rig import create_key, gateway
from tests.live_rig import (
    JUDGE_ALL,
    MIRROR_ALL,
    call_records,
    calls,
    candidate_sim,
    keyed_live_config,
    live_config,
    live_eval,
    live_stats,
    wait_records,
)

pytestmark = pytest.mark.integration


async def _call(base: str, key: str, request_id: str, text: str) -> str:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="support",
            messages=[{"role": "user", "content": text}],
            extra_headers={"x-sluice-request-id": request_id},
        )
    finally:
        await client.close()
    return raw.headers["x-sluice-request-id"]


async def test_a_second_tenant_reusing_a_request_id_cannot_spoil_or_see_the_first(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tenant `evil` sends a call with the request id tenant `acme` chose for its own call:
    acme's stored shadow pair and online score stay acme's (evil's are not stored), acme's
    feedback stays on acme's call, and evil's key opens neither the dashboard's eval API
    nor feedback on acme's call."""
    config, records = keyed_live_config(sim_url, tmp_path, monkeypatch)
    async with gateway(config) as (base, app), aiohttp.ClientSession() as http:
        acme = (await create_key(http, base, tenant="acme"))["key"]
        evil = (await create_key(http, base, tenant="evil"))["key"]
        assert await _call(base, acme, "order-1", "acme question sim-judge-score=5") == "order-1"
        await live_eval(app).join()
        await _call(base, evil, "order-1", "evil question sim-judge-score=1")
        await live_eval(app).join()
        await wait_records(records, 6)
        url = base + "/v1/sluice/feedback"
        as_acme = {"authorization": f"Bearer {acme}"}
        as_evil = {"authorization": f"Bearer {evil}"}
        async with http.post(url, json={"request_id": "order-1", "score": 1}, headers=as_acme) as r:
            assert r.status == 201
        async with http.post(url, json={"request_id": "order-1", "score": 0}, headers=as_evil) as r:
            assert r.status == 201  # evil's own call of that id: its own feedback row
        statuses: list[Any] = []
        for path in ("/ui/api/eval", "/ui/api/eval?period=24h"):
            async with http.get(base + path, headers=as_evil) as r:
                statuses.append(r.status)
        from sluice.eval.feedback_store import FeedbackStore

        feedback = FeedbackStore(records)
        try:
            assert feedback.get("acme", "order-1") is not None
            acme_feedback = feedback.get("acme", "order-1")
        finally:
            feedback.close()
    assert statuses == [401, 401]
    assert acme_feedback is not None and acme_feedback.score == 1.0
    store = LiveStore(records)
    try:
        (pair,) = store.pairs_since(0)
        (quality,) = store.quality(0)
    finally:
        store.close()
    assert "acme question" in pair.question
    assert quality["judged"] == 1 and quality["mean_score"] == 1.0


async def test_cache_hits_are_not_mirrored_and_mirrors_never_come_from_the_cache(
    sim_url: str, tmp_path: Path
) -> None:
    """The exact cache on, one question asked three times: the first answer is mirrored;
    the two answers served from the cache are not (their latency and cost are the cache's,
    not the production model's) and are counted `skipped`. The mirror itself bypasses the
    caches, so the candidate is really called (and a pair never compares cached answers)."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    data = live_config(sim_url, records, shadow=MIRROR_ALL).model_dump()
    data["cache"]["exact"]["enabled"] = True
    config = SluiceConfig.model_validate(data)
    client_headers: list[str] = []
    async with gateway(config) as (base, app):
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
        try:
            for _ in range(3):
                raw = await client.chat.completions.with_raw_response.create(
                    model="support",
                    messages=[{"role": "user", "content": "same question"}],
                    temperature=0,
                )
                client_headers.append(raw.headers.get("x-sluice-cache", ""))
        finally:
            await client.close()
        await live_eval(app).join()
        stats = dict(live_eval(app).stats.shadow["support"])
        rows = await wait_records(records, 4)
    assert client_headers == ["miss", "exact", "exact"]
    assert stats == {"mirrored": 1, "skipped": 2}
    (mirror,) = [r for r in rows if r.feature == "sluice-shadow"]
    assert mirror.cache_status == "bypass"


async def test_gateway_shutdown_with_a_hanging_candidate_does_not_hang_and_counts_lost(
    sim_url: str, tmp_path: Path
) -> None:
    """The candidate never answers: one mirror in flight, two queued. Stopping the gateway
    returns (it does not wait for the candidate), the three mirrors are counted `lost`
    (stats and `/metrics`), and the one in flight still leaves its call record (499)."""
    import asyncio

    from sluice.web.appkeys import GATEWAY

    records = f"sqlite:///{tmp_path / 'records.db'}"
    async with candidate_sim(faults=["hang"]) as cand:
        shadow = {"candidate": "cand", "sample": 1.0, "queue": 4, "concurrency": 1}
        config = live_config(sim_url, records, cand, shadow=shadow)
        async with gateway(config) as (base, app):
            ids = await calls(base, 3)
            live = live_eval(app)
            await wait_records(records, 3)
            while not live._lanes[("shadow", "support")]._running:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # until the first mirror is sent
        stats = dict(live.stats.shadow["support"])
        metrics = app[GATEWAY].render_metrics().decode()
    rows = await asyncio.to_thread(call_records, records)
    assert stats == {"lost": 3}
    assert 'sluice_shadow_calls_total{outcome="lost",route="support"} 3.0' in metrics
    (mirror,) = [r for r in rows if r.feature == "sluice-shadow"]
    assert mirror.status == 499 and mirror.parent_request_id in ids


async def test_feedback_with_nul_and_odd_unicode_in_postgresql_is_stored_or_refused_cleanly(
    sim_url: str,
) -> None:
    """Records and feedback in PostgreSQL (whose text holds no NUL): a comment with NUL,
    right-to-left marks, emoji and combining characters is stored (NUL removed) or refused
    with a 400 in the OpenAI error shape; never a 500. A lone surrogate is a 400."""
    from tests.governance_rig import postgres_schema

    with postgres_schema() as url:
        config = live_config(sim_url, url, online={"sample": 0.0, "judge_model": "gpt-4o"})
        async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
            (call,) = await calls(base, 1)
            await wait_records(url, 1)
            fb = base + "/v1/sluice/feedback"
            comment = "bad\x00answer \u202etxt.exe 🙂 e\u0301" + "ß" * 100
            async with http.post(
                fb, json={"request_id": call, "score": 0.5, "comment": comment}
            ) as r:
                status, body = r.status, await r.json()
            raw = b'{"request_id": "%s", "score": 1, "comment": "\\ud800"}' % call.encode()
            async with http.post(fb, data=raw, headers={"content-type": "application/json"}) as r:
                surrogate_status, surrogate = r.status, await r.json()
        from sluice.eval.feedback_store import FeedbackStore

        store = FeedbackStore(url)
        try:
            stored = store.get("default", call)
        finally:
            store.close()
    assert status == 201, body
    assert stored is not None and stored.comment == comment.replace("\x00", "")
    assert surrogate_status == 400 and surrogate["error"]["type"] == "invalid_request_error"


def test_saved_results_with_nul_in_outputs_and_errors_are_stored_in_postgresql() -> None:
    from sluice.eval.result_store import EvalResultStore
    from tests.governance_rig import postgres_schema
    from tests.unit.test_live_eval_adversarial import _save_nul_run

    with postgres_schema() as url:
        _save_nul_run(EvalResultStore.open(url))


async def test_the_callers_forwarded_headers_never_reach_the_judge_or_the_mirror(
    sim_url: str, tmp_path: Path
) -> None:
    """The providers forward `x-sim-*` (default config), as a deployment might forward
    `openai-project` or per-user attribution headers. The judge and the mirror are Sluice's
    own calls for another tenant: the caller's forwarded headers are not sent with them, so
    a caller can neither steer the verdict on its own answers (here `x-sim-judge-score: 5`
    against the `sim-judge-score=1` in its question) nor have the judge billed to its own
    upstream project; `x-sim-output-tokens: 3` shortens the caller's answer, not the
    mirror's."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
    )
    async with gateway(config) as (base, app):
        await calls(
            base,
            2,
            text="sim-judge-score=1 question",
            extra_headers={"x-sim-judge-score": "5", "x-sim-output-tokens": "3"},
        )
        await live_eval(app).join()
        online = dict(live_eval(app).stats.online["support"])
        shadow = dict(live_eval(app).stats.shadow["support"])
        store = LiveStore.open(records)
        try:
            (quality,) = store.quality(0)
            pairs = store.pairs_since(0)
        finally:
            store.close()
    assert online == {"judged": 2} and shadow == {"mirrored": 2}
    assert quality["mean_score"] == 0.0  # verdict 1: the question's marker, not the header
    assert all(p.candidate_output and len(p.candidate_output) > len(p.production) for p in pairs)


async def test_an_idempotent_replay_is_neither_mirrored_nor_judged_again(
    sim_url: str, tmp_path: Path
) -> None:
    """A client retries with the same `Idempotency-Key`: the second answer is the first one
    replayed (`x-sluice-idempotent-replay: true`), not a new production answer, so it is not
    mirrored or judged a second time (counted `skipped`): a retrying client must not weigh
    its answer twice in the shadow pairs or the quality series."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    data = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
    ).model_dump()
    data["cache"]["idempotency"]["enabled"] = True
    config = SluiceConfig.model_validate(data)
    replays = []
    async with gateway(config) as (base, app):
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
        try:
            for _ in range(2):
                raw = await client.chat.completions.with_raw_response.create(
                    model="support",
                    messages=[{"role": "user", "content": "charge my card once"}],
                    extra_headers={"idempotency-key": "pay-42"},
                )
                replays.append(raw.headers.get("x-sluice-idempotent-replay"))
        finally:
            await client.close()
        await live_eval(app).join()
        shadow, online = live_stats(app)
    assert replays == [None, "true"]
    assert shadow == {"mirrored": 1, "skipped": 1}
    assert online == {"judged": 1, "skipped": 1}


async def test_a_flood_of_made_up_feedback_ids_cannot_hold_the_gateways_threads(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback on an id whose record is not written yet waits (polls) for it; a made-up id
    costs that whole wait in database look-ups on the shared thread pool. With
    `MAX_WAITERS` requests already waiting, an id is looked up once and answered 404 (the
    same 404 as after a wait); with a free slot it is still waited for."""
    import sluice.web.feedback as feedback
    from sluice.eval.calls import find_call

    looked: list[str] = []
    real = find_call

    def counting(store: Any, request_id: str, tenant: str | None = None) -> Any:
        looked.append(request_id)
        return real(store, request_id, tenant)

    monkeypatch.setattr(feedback, "find_call", counting)
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(sim_url, records, online={"sample": 0.0, "judge_model": "gpt-4o"})
    async with gateway(config) as (base, app), aiohttp.ClientSession() as http:
        url = base + "/v1/sluice/feedback"
        async with http.post(url, json={"request_id": "made-up-1", "score": 1}) as r:
            waited = r.status, len(looked)
        app[feedback.WAITERS].count = app[feedback.WAITERS].limit  # every slot taken
        looked.clear()
        async with http.post(url, json={"request_id": "made-up-2", "score": 1}) as r:
            full = r.status, len(looked)
        app[feedback.WAITERS].count = 0
    assert waited[0] == 404 and waited[1] > 1
    assert full == (404, 1)


async def test_a_caller_labelling_its_calls_as_sluices_own_is_still_sampled(
    sim_url: str, tmp_path: Path
) -> None:
    """`x-sluice-feature` is the caller's label: a caller that sends `sluice-shadow` or
    `sluice-online-judge` must not escape shadow traffic and online judging (nor make the
    gateway think its call is a mirror). Only the calls Sluice itself makes are exempt."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
    )
    async with gateway(config) as (base, app):
        for feature in ("sluice-shadow", "sluice-online-judge"):
            await calls(base, 1, extra_headers={"x-sluice-feature": feature})
        await live_eval(app).join()
        shadow, online = live_stats(app)
    assert shadow == {"mirrored": 2}
    assert online == {"judged": 2}


async def test_mirrors_never_loop_between_routes_that_shadow_each_other(
    sim_url: str, tmp_path: Path
) -> None:
    """Route `a` mirrors to route `b`, `b` mirrors to `a` and both judge everything with a
    judge that is itself route `a`: one caller call makes exactly one mirror and one
    judgement; Sluice's own calls are never mirrored or judged again."""
    from sluice.eval.live import JUDGE_FEATURE, SHADOW_FEATURE

    records = f"sqlite:///{tmp_path / 'records.db'}"
    data = live_config(sim_url, records).model_dump()
    route = {"targets": ["gpt-4o-mini"], "default": "gpt-4o-mini"}
    online = {"sample": 1.0, "judge_model": "a"}
    data["routes"] = {
        "a": {**route, "shadow": {"candidate": "b", "sample": 1.0}, "online_eval": online},
        "b": {**route, "shadow": {"candidate": "a", "sample": 1.0}, "online_eval": online},
    }
    config = SluiceConfig.model_validate(data)
    async with gateway(config) as (base, app):
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="a", messages=[{"role": "user", "content": "loop?"}]
            )
        finally:
            await client.close()
        for _ in range(3):  # any second-order job would be queued by the first ones
            await live_eval(app).join()
        stats = (dict(live_eval(app).stats.shadow), dict(live_eval(app).stats.online))
        rows = await wait_records(records, 3)
    call = raw.headers["x-sluice-request-id"]
    assert stats == ({"a": {"mirrored": 1}}, {"a": {"judged": 1}})
    own = [r for r in rows if r.feature in (SHADOW_FEATURE, JUDGE_FEATURE)]
    assert len(own) == 2 and {r.parent_request_id for r in own} == {call}


async def test_anthropic_sdk_calls_are_mirrored_and_judged_like_openai_ones(
    sim_url: str, tmp_path: Path
) -> None:
    """The official anthropic SDK on `/v1/messages` (a system prompt, plain and streamed):
    the answers are mirrored and judged, the stored pair holds the system prompt and the
    question, and the caller's answers are untouched."""
    import anthropic

    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
    )
    async with gateway(config) as (base, app):
        client = anthropic.AsyncAnthropic(base_url=base, api_key="sk-test", max_retries=0)
        try:
            msg = await client.messages.create(
                model="support",
                max_tokens=64,
                system="be brief",
                messages=[{"role": "user", "content": "anthropic question"}],
            )
            async with client.messages.stream(
                model="support",
                max_tokens=64,
                messages=[{"role": "user", "content": "anthropic stream"}],
            ) as stream:
                streamed = await stream.get_final_message()
        finally:
            await client.close()
        await live_eval(app).join()
        shadow, online = live_stats(app)
        store = LiveStore.open(records)
        try:
            pairs = store.pairs_since(0)
        finally:
            store.close()
    assert msg.content and streamed.content
    assert shadow == {"mirrored": 2} and online == {"judged": 2}
    questions = sorted(p.question for p in pairs)
    assert questions == ["system: be brief\nuser: anthropic question", "user: anthropic stream"]
    assert all(p.candidate_output and p.error is None for p in pairs)


async def test_mirrors_and_judges_never_use_up_the_gateway_wide_rate_limit(
    sim_url: str, tmp_path: Path
) -> None:
    """`limits.gateway.rpm: 4` is the callers' shared capacity. Every call is mirrored and
    judged (sample 1.0), so Sluice's own calls outnumber the caller's two to one: the
    caller's four calls must all be answered, none refused because mirrors or judgements
    took the gateway's requests; Sluice's own calls are not counted in the callers' limit."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
        limits={"enabled": True, "gateway": {"rpm": 4}},
    )
    statuses = []
    async with gateway(config) as (base, app):
        for i in range(4):
            try:
                await calls(base, 1, text=f"call {i}")
                statuses.append(200)
            except openai.RateLimitError:
                statuses.append(429)
            await live_eval(app).join()  # the mirror and the judgement run between calls
        shadow, online = live_stats(app)
    assert statuses == [200, 200, 200, 200]
    assert shadow == {"mirrored": 4} and online == {"judged": 4}


async def test_a_stream_the_upstream_cuts_is_neither_mirrored_nor_judged(
    sim_url: str, tmp_path: Path
) -> None:
    """The simulator cuts the caller's stream mid-answer (`x-sim-fault: cut`, on every
    attempt): whatever the caller got is not a complete answer, so nothing is mirrored or
    judged, and the caller's own call is still recorded."""
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = live_config(
        sim_url,
        records,
        shadow=MIRROR_ALL,
        online=JUDGE_ALL,
    )
    failed = False
    async with gateway(config) as (base, app):
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model="support",
                messages=[{"role": "user", "content": "cut me"}],
                stream=True,
                max_tokens=100,
                extra_headers={"x-sim-fault": "cut", "x-sim-output-tokens": "100"},
            )
            async for _ in stream:
                pass
        except (openai.APIError, aiohttp.ClientError):
            failed = True
        finally:
            await client.close()
        await live_eval(app).join()
        live = live_eval(app)
        stats = (dict(live.stats.shadow), dict(live.stats.online))
        rows = await wait_records(records, 1)
    assert failed
    assert stats == ({}, {})
    assert len(rows) == 1 and rows[0].status != 200
