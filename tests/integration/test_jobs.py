"""Async jobs end to end: a real gateway and simulator over loopback, the embedded queue,
tenants with virtual keys, and the result compared with the sync endpoint's answer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sluice.config import SluiceConfig
from sluice.jobs.config import JobsConfig
from sluice.jobs.service import JobService
from sluice.jobs.store import JobStore
from sluice.queue import QueueSettings, build_queue
from tests.conftest import gateway_config
from tests.governance_rig import create_key, gateway, keyed_config, set_env

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "hello there"}]


def _config(sim_url: str, **jobs: Any) -> SluiceConfig:
    data = gateway_config(sim_url).model_dump()
    data["queue"]["poll_interval_s"] = 0.05
    data["jobs"].update(jobs)
    return SluiceConfig.model_validate(data)


@pytest.fixture
async def gw(sim_url: str) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with gateway(_config(sim_url)) as (base, _), aiohttp.ClientSession() as http:
        yield base, http


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def _wait_ended(
    http: aiohttp.ClientSession, base: str, job_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    for _ in range(600):  # a condition, not a timing: up to 60 s on a loaded machine
        status, job = await _get(http, f"{base}/v1/sluice/jobs/{job_id}", headers)
        assert status == 200, job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never ended")


async def test_openai_job_result_is_the_sync_answer(
    gw: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = gw
    chat = {"model": "gpt-4o-mini", "messages": HELLO}
    status, created = await _post(
        http, f"{base}/v1/sluice/jobs", {"request": chat, "metadata": {"team": "a"}}
    )
    assert status == 202, created
    assert created["status"] == "queued" and created["id"].startswith("job_")
    job = await _wait_ended(http, base, created["id"])
    assert job["status"] == "succeeded" and job["http_status"] == 200
    assert job["metadata"] == {"team": "a"} and job["attempts"] == 1
    status, sync = await _post(http, f"{base}/v1/chat/completions", chat)
    assert status == 200
    result = job["result"]
    assert result["object"] == "chat.completion" and result["model"] == sync["model"]
    assert result["choices"] == sync["choices"]
    assert result["usage"] == sync["usage"]
    status, listed = await _get(http, f"{base}/v1/sluice/jobs")
    assert status == 200 and [j["id"] for j in listed["data"]] == [created["id"]]
    # the call record is labelled with the job id
    db = Path(os.environ["SLUICE_STATE_DIR"]) / "sluice.db"
    rows: list[Any] = []
    for _ in range(300):
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT request_id, status FROM call_records WHERE parent_request_id = ?",
                (created["id"],),
            ).fetchall()
        if rows:
            break
        await asyncio.sleep(0.1)
    assert rows == [(f"{created['id']}.1", 200)]


async def test_anthropic_job_by_endpoint(gw: tuple[str, aiohttp.ClientSession]) -> None:
    base, http = gw
    chat = {"model": "claude-haiku", "max_tokens": 32, "messages": HELLO}
    status, created = await _post(
        http, f"{base}/v1/sluice/jobs", {"request": chat, "endpoint": "/v1/messages"}
    )
    assert status == 202, created
    job = await _wait_ended(http, base, created["id"])
    assert job["status"] == "succeeded" and job["format"] == "anthropic"
    assert job["result"]["type"] == "message" and job["result"]["content"][0]["text"]


async def test_a_failing_job_keeps_the_sync_error_body(
    gw: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = gw
    chat = {"model": "no-such-model", "messages": HELLO}
    status, created = await _post(http, f"{base}/v1/sluice/jobs", {"request": chat})
    assert status == 202
    job = await _wait_ended(http, base, created["id"])
    status, sync = await _post(http, f"{base}/v1/chat/completions", chat)
    assert job["status"] == "failed"
    assert job["http_status"] == status >= 400
    assert job["result"]["error"]["code"] == sync["error"]["code"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "request"),
        ({"request": "hi"}, "request"),
        ({"request": {"model": "gpt-4o-mini", "messages": HELLO}, "format": "xml"}, "format"),
        ({"request": {"model": "gpt-4o-mini", "messages": HELLO}, "endpoint": "/v1/x"}, "endpoint"),
        ({"request": {"model": "gpt-4o-mini", "messages": HELLO, "stream": True}}, "stream"),
        ({"request": {"model": "gpt-4o-mini", "messages": HELLO}, "metadata": [1]}, "metadata"),
        ({"request": {"model": "gpt-4o-mini", "messages": HELLO}, "webhook_url": 5}, "webhook_url"),
        ({"request": {"model": "gpt-4o-mini", "messages": "nope"}}, None),
    ],
)
async def test_bad_submissions_are_400_now(
    gw: tuple[str, aiohttp.ClientSession], body: dict[str, Any], param: str | None
) -> None:
    base, http = gw
    status, err = await _post(http, f"{base}/v1/sluice/jobs", body)
    assert status == 400, err
    assert err["error"]["message"]
    if param is not None:
        assert err["error"]["param"] == param
    _, listed = await _get(http, f"{base}/v1/sluice/jobs")
    assert listed["data"] == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:8080/hook",
        "http://192.168.0.10/hook",
        "http://2130706433/hook",
        "ftp://example.com/hook",
        "http://no-such-host.invalid/hook",
    ],
)
async def test_webhook_ssrf_targets_are_refused(
    gw: tuple[str, aiohttp.ClientSession], url: str
) -> None:
    base, http = gw
    body = {"request": {"model": "gpt-4o-mini", "messages": HELLO}, "webhook_url": url}
    status, err = await _post(http, f"{base}/v1/sluice/jobs", body)
    assert status == 400, err
    assert err["error"]["param"] == "webhook_url"
    assert err["error"]["code"] == "webhook_url_refused"


async def test_tenants_see_only_their_jobs(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    data["queue"]["poll_interval_s"] = 0.05
    config = SluiceConfig.model_validate(data)
    async with gateway(config) as (base, _), aiohttp.ClientSession() as http:
        a = {"authorization": "Bearer " + (await create_key(http, base, tenant="a"))["key"]}
        b = {"authorization": "Bearer " + (await create_key(http, base, tenant="b"))["key"]}
        chat = {"model": "gpt-4o-mini", "messages": HELLO}
        status, created = await _post(http, f"{base}/v1/sluice/jobs", {"request": chat}, a)
        assert status == 202
        job = await _wait_ended(http, base, created["id"], a)
        assert job["status"] == "succeeded"
        jid = created["id"]
        for method, path in [
            ("GET", f"/v1/sluice/jobs/{jid}"),
            ("POST", f"/v1/sluice/jobs/{jid}/cancel"),
            ("GET", f"/v1/sluice/jobs/{jid}/deliveries"),
            ("GET", "/v1/sluice/jobs/job_unknown"),
        ]:
            async with http.request(method, base + path, headers=b) as resp:
                assert resp.status == 404, path
                body = await resp.json()
                assert "job_" in body["error"]["message"] or body["error"]["code"] == "not_found"
        _, listed = await _get(http, f"{base}/v1/sluice/jobs", b)
        assert listed["data"] == []
        status, _ = await _get(http, f"{base}/v1/sluice/jobs")  # no key at all
        assert status == 401


async def test_cancel_stops_a_queued_job(tmp_path: Path) -> None:
    """No worker runs: the job stays queued, cancel removes its queue item."""
    queue = build_queue(QueueSettings(url=f"sqlite:///{tmp_path / 'q.db'}"))
    await queue.start()
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    await store.start()
    ran: list[str] = []

    async def execute(job: Any) -> tuple[int, Any, None]:
        ran.append(job.id)
        return 200, {}, None

    service = JobService(JobsConfig(), store, queue, execute)
    try:
        job = await service.submit(tenant="t", key_id=None, fmt="openai", request={"m": 1})
        keep = await service.submit(tenant="t", key_id=None, fmt="openai", request={"m": 2})
        assert await service.cancel(job.id, "other") is None
        cancelled = await service.cancel(job.id, "t")
        assert cancelled is not None and cancelled.status == "cancelled"
        await queue.drain(service.handlers)
        assert ran == [keep.id]
        again = await service.cancel(keep.id, "t")  # ended: stays succeeded
        assert again is not None and again.status == "succeeded"
        assert sum((await queue.depth_by_priority()).values()) == 0
    finally:
        await service.close()
        await store.close()
        await queue.close()


async def test_metrics_show_queue_and_jobs(gw: tuple[str, aiohttp.ClientSession]) -> None:
    base, http = gw
    chat = {"model": "gpt-4o-mini", "messages": HELLO}
    _, created = await _post(http, f"{base}/v1/sluice/jobs", {"request": chat})
    await _wait_ended(http, base, created["id"])
    text = ""
    for _ in range(200):  # the snapshot is refreshed every few seconds
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        if 'sluice_jobs{status="succeeded"} 1.0' in text:
            break
        await asyncio.sleep(0.1)
    assert 'sluice_jobs{status="succeeded"} 1.0' in text
    for name in ("interactive", "job", "batch"):
        assert f'sluice_work_queue_depth{{priority="{name}"}}' in text
    assert "sluice_work_queue_oldest_age_seconds" in text
    assert 'sluice_work_queue_items_total{outcome="completed"}' in text


async def test_jobs_on_postgresql_queue_and_store(sim_url: str) -> None:
    """Shared mode: pgqueuer queue and the jobs table on PostgreSQL."""
    from tests.governance_rig import postgres_schema

    with postgres_schema() as url:
        data = _config(sim_url).model_dump()
        data["queue"]["url"] = url
        data["jobs"]["store_url"] = url
        config = SluiceConfig.model_validate(data)
        async with gateway(config) as (base, _), aiohttp.ClientSession() as http:
            chat = {"model": "gpt-4o-mini", "messages": HELLO}
            ids = []
            for _ in range(3):
                status, created = await _post(http, f"{base}/v1/sluice/jobs", {"request": chat})
                assert status == 202, created
                ids.append(created["id"])
            for job_id in ids:
                job = await _wait_ended(http, base, job_id)
                assert job["status"] == "succeeded" and job["result"]["choices"]
            _, listed = await _get(http, f"{base}/v1/sluice/jobs")
            assert sorted(j["id"] for j in listed["data"]) == sorted(ids)
