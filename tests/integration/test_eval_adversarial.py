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
from tests.governance_rig import create_key, gateway, keyed_config, set_env
from tests.integration.test_shadow_online import _live, _wait_records, live_config

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
        acme = (await create_key(http, base, tenant="acme"))["key"]
        evil = (await create_key(http, base, tenant="evil"))["key"]
        assert await _call(base, acme, "order-1", "acme question sim-judge-score=5") == "order-1"
        await _live(app).join()
        await _call(base, evil, "order-1", "evil question sim-judge-score=1")
        await _live(app).join()
        await _wait_records(records, 6)
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
    data = live_config(sim_url, records, shadow={"candidate": "gpt-4o", "sample": 1.0}).model_dump()
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
        await _live(app).join()
        stats = dict(_live(app).stats.shadow["support"])
        rows = await _wait_records(records, 4)
    assert client_headers == ["miss", "exact", "exact"]
    assert stats == {"mirrored": 1, "skipped": 2}
    (mirror,) = [r for r in rows if r.feature == "sluice-shadow"]
    assert mirror.cache_status == "bypass"
