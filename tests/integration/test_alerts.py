"""Alerts end to end: simulator faults through a real gateway fire one signed webhook, and
recovery resolves it once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from sluice import server
from sluice.config import AlertsConfig, SluiceConfig, WebhookConfig
from sluice.observe.alert_rules import ErrorRateRule, RulesConfig
from sluice.observe.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)
from sluice.web.alerts import ALERTS, ENDPOINT, install
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

SECRET = "integration-s3cret"
ASK = {"messages": [{"role": "user", "content": "hi"}]}


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        self.arrived.set()
        return web.Response(status=204)

    def payloads(self) -> list[dict[str, Any]]:
        return [orjson.loads(body) for _, body in self.got]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/alerts", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield rec, f"http://127.0.0.1:{runner.addresses[0][1]}/alerts"
    await runner.cleanup()


def fast_retries(config: SluiceConfig) -> SluiceConfig:
    data = config.model_dump()
    data["reliability"]["retry"].update(base_s=0.01, cap_s=0.05)
    return SluiceConfig.model_validate(data)


async def call(http: aiohttp.ClientSession, url: str, model: str, fault: bool = False) -> int:
    headers = {"x-sim-fault": "500"} if fault else {}
    body = {"model": model, **ASK}
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def wait_for(receiver: Receiver, count: int, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while len(receiver.got) < count:
                receiver.arrived.clear()
                await receiver.arrived.wait()


async def test_an_error_spike_fires_and_resolves_exactly_once(
    sim_url: str, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, hook_url = receiver
    monkeypatch.setenv("SLUICE_TEST_HOOK_SECRET", SECRET)
    alerts = AlertsConfig(
        interval_s=0.2,
        webhooks=[WebhookConfig(url=hook_url, secret_env="SLUICE_TEST_HOOK_SECRET")],
        rules=RulesConfig(error_rate=ErrorRateRule(window_s=5, min_calls=5)),
    )
    config = fast_retries(gateway_config(sim_url))
    data = config.model_dump()
    data["observability"]["alerts"] = alerts.model_dump()
    app = server.create_app(SluiceConfig.model_validate(data))  # installs the alerts
    engine = app[ALERTS]
    assert install(app, alerts) is engine
    runner, port = await server.start_app(app)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            # healthy: nothing to say
            assert [await call(http, url, "gpt-4o-mini") for _ in range(10)] == [200] * 10
            await asyncio.sleep(0.6)
            assert hook.got == []
            # an error spike (on another model, so its breaker does not touch healthy traffic)
            spike = await asyncio.gather(*(call(http, url, "gpt-4o", fault=True) for _ in range(8)))
            assert spike == [500] * 8
            await wait_for(hook, 1, timeout_s=3)
            assert [p["status"] for p in hook.payloads()] == ["firing"]
            async with http.get(url + ENDPOINT) as resp:
                view = await resp.json()
            assert [a["alert"] for a in view["active"]] == ["error_rate"]
            # healthy again until the spike leaves the 5 s window
            deadline = time.monotonic() + 10
            while len(hook.got) < 2 and time.monotonic() < deadline:
                assert await call(http, url, "gpt-4o-mini") == 200
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.6)  # three more evaluations: nothing else may come
            async with http.get(url + ENDPOINT) as resp:
                view = await resp.json()
    finally:
        await runner.cleanup()

    payloads = hook.payloads()
    assert [(p["alert"], p["status"]) for p in payloads] == [
        ("error_rate", "firing"),
        ("error_rate", "resolved"),
    ]
    for headers, body in hook.got:
        assert verify_signature(
            body, headers[SIGNATURE_HEADER], SECRET.encode(), headers[TIMESTAMP_HEADER]
        )
        assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) < 60
    firing, resolved = payloads
    assert firing["value"] > 0.05 and firing["threshold"] == 0.05 and firing["window_s"] == 5
    assert firing["ends_at"] is None and firing["labels"] == {}
    assert resolved["started_at"] == firing["started_at"] and resolved["ends_at"] is not None
    assert resolved["value"] <= 0.05
    assert view["active"] == [] and [n["status"] for n in view["recent"]] == [
        "firing",
        "resolved",
    ]
    assert view["stats"]["webhook_sent"] == 2 and view["stats"]["webhook_failed"] == 0
    assert engine.stats.observe_errors == 0 and engine.stats.evaluate_errors == 0
