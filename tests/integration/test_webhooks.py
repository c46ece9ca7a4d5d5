"""Job webhooks: signed like alerts, retried with backoff, logged, never redirected, and
refused for internal targets (also at connect time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from sluice.config import SluiceConfig
from sluice.jobs.config import JobWebhooksConfig
from sluice.jobs.ssrf import Policy, SafeResolver, WebhookRefused, check_url
from sluice.observe.alerts import verify_signature
from tests.conftest import gateway_config
from tests.governance_rig import gateway

pytestmark = pytest.mark.integration
SECRET = "whsec-test-" + "x" * 16
HELLO = [{"role": "user", "content": "hello"}]


@dataclass
class Receiver:
    url: str
    statuses: list[int]  # answers to give, in order (then 200)
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    redirected: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver("", [])

    async def hook(request: web.Request) -> web.Response:
        rec.seen.append((dict(request.headers), await request.read()))
        status = rec.statuses.pop(0) if rec.statuses else 200
        if status == 302:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=status, text="ok")

    async def elsewhere(_request: web.Request) -> web.Response:
        rec.redirected += 1
        return web.Response(text="followed")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_route("*", "/elsewhere", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield rec
    await runner.cleanup()


def _config(sim_url: str, **hooks: Any) -> SluiceConfig:
    data = gateway_config(sim_url).model_dump()
    data["queue"]["poll_interval_s"] = 0.05
    data["jobs"]["webhooks"].update(
        {"allowlist": ["127.0.0.1/32"], "backoff_base_s": 0.01, "secret_env": "TEST_HOOK_SECRET"}
        | hooks
    )
    return SluiceConfig.model_validate(data)


async def _job(base: str, http: aiohttp.ClientSession, hook: str, model: str) -> str:
    body = {"request": {"model": model, "messages": HELLO}, "webhook_url": hook}
    async with http.post(f"{base}/v1/sluice/jobs", json=body) as resp:
        created = await resp.json()
        assert resp.status == 202, created
    return str(created["id"])


async def _deliveries(
    base: str, http: aiohttp.ClientSession, job_id: str, n: int
) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    for _ in range(600):
        async with http.get(f"{base}/v1/sluice/jobs/{job_id}/deliveries") as resp:
            data = (await resp.json())["data"]
        if len(data) >= n and (data[-1]["ok"] or len(data) >= n):
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(data)} deliveries of {n}")


async def test_signed_delivery_verifies(
    sim_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    async with gateway(_config(sim_url)) as (base, _), aiohttp.ClientSession() as http:
        job_id = await _job(base, http, receiver.url, "gpt-4o-mini")
        log = await _deliveries(base, http, job_id, 1)
        async with http.get(f"{base}/v1/sluice/jobs/{job_id}") as resp:
            job = await resp.json()
    assert [d["status_code"] for d in log] == [200] and log[0]["ok"]
    assert job["webhook"] == "127.0.0.1"  # only the host is shown
    headers, body = receiver.seen[0]
    assert verify_signature(
        body, headers["x-sluice-signature"], SECRET.encode(), headers["x-sluice-timestamp"]
    )
    assert not verify_signature(
        body + b" ", headers["x-sluice-signature"], SECRET.encode(), headers["x-sluice-timestamp"]
    )
    assert not verify_signature(
        body, headers["x-sluice-signature"], b"wrong", headers["x-sluice-timestamp"]
    )
    event = orjson.loads(body)
    assert event["type"] == "job.succeeded" and headers["x-sluice-event"] == "job.succeeded"
    assert event["data"]["id"] == job_id and event["data"]["result"]["choices"]
    assert headers["x-sluice-delivery"] == f"{job_id}.1"


async def test_retried_with_backoff_until_accepted(
    sim_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    receiver.statuses[:] = [500, 503]
    async with gateway(_config(sim_url)) as (base, _), aiohttp.ClientSession() as http:
        job_id = await _job(base, http, receiver.url, "no-such-model")  # a failed job
        log = await _deliveries(base, http, job_id, 3)
    assert [d["status_code"] for d in log] == [500, 503, 200]
    assert [d["attempt"] for d in log] == [1, 2, 3]
    assert [d["error"] for d in log] == ["HTTP 500", "HTTP 503", None]
    assert orjson.loads(receiver.seen[-1][1])["type"] == "job.failed"
    assert len({h["x-sluice-delivery"] for h, _ in receiver.seen}) == 3


async def test_redirects_are_not_followed(
    sim_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_HOOK_SECRET", raising=False)
    receiver.statuses[:] = [302, 302]
    config = _config(sim_url, max_attempts=2)
    async with gateway(config) as (base, _), aiohttp.ClientSession() as http:
        job_id = await _job(base, http, receiver.url, "gpt-4o-mini")
        log = await _deliveries(base, http, job_id, 2)
    assert [d["status_code"] for d in log] == [302, 302]
    assert not any(d["ok"] for d in log)
    assert receiver.redirected == 0
    assert "x-sluice-signature" not in receiver.seen[0][0]  # no secret: unsigned


def test_backoff_doubles_and_is_capped() -> None:
    from sluice.jobs.store import JobStore
    from sluice.jobs.webhooks import WebhookSender

    sender = WebhookSender(
        JobWebhooksConfig(backoff_base_s=1, backoff_cap_s=5), JobStore("sqlite://")
    )
    assert [sender.backoff_s(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


async def test_resolver_refuses_internal_addresses_at_connect_time() -> None:
    """A name that passes at submission but resolves inward later (DNS rebinding) is
    refused by the delivery's resolver itself."""
    resolver = SafeResolver(Policy(JobWebhooksConfig()))
    try:
        with pytest.raises(WebhookRefused):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    allowed = SafeResolver(Policy(JobWebhooksConfig(allowlist=["localhost"])))
    try:
        assert await allowed.resolve("localhost", 80)
    finally:
        await allowed.close()


async def test_policy_allowlist_and_allow_private() -> None:
    strict = Policy(JobWebhooksConfig())
    for url in ("http://127.0.0.1/", "http://100.64.1.1/", "http://[fd00:ec2::254]/",
                "http://0.0.0.0/", "http://224.0.0.1/", "http://[::]/"):  # fmt: skip
        with pytest.raises(WebhookRefused):
            await check_url(url, strict)
    assert (await check_url("http://93.184.216.34/x", strict)).host == "93.184.216.34"
    nets = Policy(JobWebhooksConfig(allowlist=["10.0.0.0/8"]))
    assert await check_url("http://10.2.3.4/hook", nets)
    with pytest.raises(WebhookRefused):
        await check_url("http://192.168.1.1/hook", nets)
    assert await check_url("http://127.0.0.1/", Policy(JobWebhooksConfig(allow_private=True)))
