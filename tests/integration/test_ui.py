"""The web dashboard's API against a real workload: its numbers are the stored records' sums.

Gateway and simulator are real HTTP servers on loopback; the gateway writes its call records
to SQLite in a temporary directory, and each test reads that database itself to know what
the dashboard must say.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from sluice import server
from sluice.config import SluiceConfig
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore, percentile
from sluice.web.access import check_access, is_loopback
from sluice.web.alerts import ALERTS
from sluice.web.ui import ADMIN_KEY_ENV, COOKIE, install
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

ADMIN_KEY = "test-admin-key-0123456789abcdef"
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku")
USERS = ("alice", "bob", "carol", None)
FEATURES = ("chat", "search", "summarize", None)
FAULTY = frozenset({5, 9, 16})  # x-sim-fault: 500 (retried, then 500), one per model
CALLS = 20


@dataclass
class Dashboard:
    url: str
    db: str
    http: aiohttp.ClientSession
    app: web.Application

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.http.get(self.url + path, params=params, headers=self.auth) as r:
            return r.status, await r.json()

    async def ok(self, path: str, **params: str) -> dict[str, Any]:
        status, body = await self.get(path, **params)
        assert status == 200, body
        assert isinstance(body, dict)
        return body


def records_config(sim_url: str, store_url: str | None, *, alerts: bool = True) -> SluiceConfig:
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = store_url
    data["observability"]["alerts"]["enabled"] = alerts
    return SluiceConfig.model_validate(data)


async def start_dashboard(sim_url: str, store_url: str | None) -> tuple[web.AppRunner, str]:
    app = server.create_app(records_config(sim_url, store_url))
    install(app)
    runner, port = await server.start_app(app)
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def dashboard(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Dashboard]:
    monkeypatch.setenv(ADMIN_KEY_ENV, ADMIN_KEY)
    db = f"sqlite:///{tmp_path / 'records.db'}"
    runner, url = await start_dashboard(sim_url, db)
    async with aiohttp.ClientSession() as http:
        yield Dashboard(url, db, http, runner.app)
    await runner.cleanup()


def workload_call(i: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The i-th call of the workload: its body and headers."""
    body: dict[str, Any] = {
        "model": MODELS[i % len(MODELS)],
        "messages": [
            {
                "role": "user",
                "content": f"Question {i}: mail me at jane.doe@example.com " * (i % 3 + 1),
            }
        ],
        "stream": i % 7 == 3,
    }
    headers = {"x-sim-ttft-ms": str(2 + (i * 7) % 30)}
    user, feature = USERS[i % len(USERS)], FEATURES[(i // 2) % len(FEATURES)]
    if user is not None:
        headers["x-sluice-user"] = user
    if feature is not None:
        headers["x-sluice-feature"] = feature
    if i in FAULTY:
        headers["x-sim-fault"] = "500"
    return body, headers


async def run_workload(http: aiohttp.ClientSession, url: str, calls: int = CALLS) -> list[int]:
    async def one(i: int) -> int:
        body, headers = workload_call(i)
        async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
            await r.read()
            return r.status

    return list(await asyncio.gather(*(one(i) for i in range(calls))))


async def wait_for_calls(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], calls: int
) -> dict[str, Any]:
    """Poll the summary until the sink (flushing every 0.5 s) has written every call."""
    deadline = time.monotonic() + 15
    while True:
        async with http.get(url + "/ui/api/summary", headers=headers) as r:
            assert r.status == 200
            body: dict[str, Any] = await r.json()
        if body["calls"] >= calls or time.monotonic() > deadline:
            assert body["calls"] == calls, body
            return body
        await asyncio.sleep(0.1)


def stored_calls(
    db: str, since: float | None = None, until: float | None = None
) -> list[CallRecord]:
    store = RecordStore.open(db)
    try:
        return [r for r in store.query(since, until) if r.kind == "call"]
    finally:
        store.close()


def cost_of(records: list[CallRecord]) -> Decimal:
    return sum((r.cost_usd for r in records if r.cost_usd is not None), Decimal(0))


def by(records: list[CallRecord], label: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for r in records:
        if r.cost_usd is not None:
            totals[getattr(r, label) or "(none)"] += r.cost_usd
    return dict(totals)


async def test_api_numbers_are_the_sums_of_the_stored_records(dashboard: Dashboard) -> None:
    statuses = await run_workload(dashboard.http, dashboard.url)
    assert statuses.count(500) == len(FAULTY) and statuses.count(200) == CALLS - len(FAULTY)
    summary = await wait_for_calls(dashboard.http, dashboard.url, dashboard.auth, CALLS)
    window = {"period": "24h", "until": repr(summary["until"])}
    summary = await dashboard.ok("/ui/api/summary", **window)
    records = await asyncio.to_thread(
        stored_calls, dashboard.db, summary["since"], summary["until"]
    )
    assert len(records) == CALLS

    # summary
    errors = [r for r in records if r.status >= 400]
    assert summary["calls"] == CALLS and summary["errors"] == len(errors) == len(FAULTY)
    assert summary["error_rate"] == pytest.approx(len(FAULTY) / CALLS)
    assert Decimal(summary["cost_usd"]) == cost_of(records) > 0
    assert summary["unpriced_calls"] == sum(r.cost_usd is None for r in records)
    assert Decimal(summary["cost_saved_usd"]) == sum(
        (r.cost_saved_usd for r in records if r.cost_saved_usd is not None), Decimal(0)
    )
    assert summary["input_tokens"] == sum(r.input_tokens for r in records)
    assert summary["output_tokens"] == sum(r.output_tokens for r in records)
    assert summary["total_tokens"] == summary["input_tokens"] + summary["output_tokens"] > 0
    assert summary["cache_hits"] == sum(r.cache_hit for r in records)
    assert summary["cache_hit_rate"] == summary["cache_hits"] / CALLS
    latencies = sorted(r.latency_ms for r in records)
    assert summary["latency_ms_p95"] == pytest.approx(percentile(latencies, 95))

    # time series: every bucket and every series adds up to the records
    ts = await dashboard.ok("/ui/api/timeseries", **window)
    assert ts["bucket_s"] == 1800 and len(ts["buckets"]) in (48, 49)
    for block, label in (("cost_by_feature", "feature"), ("cost_by_model", "model_requested")):
        series = ts[block]["series"]
        assert {s["name"]: Decimal(s["total"]) for s in series} == by(records, label)
        plotted = sum((Decimal(v) for s in series for v in s["values"]), Decimal(0))
        assert plotted == Decimal(ts[block]["total"]) == cost_of(records)
    start = ts["buckets"][0]
    per_bucket: dict[int, list[CallRecord]] = defaultdict(list)
    for r in records:
        per_bucket[math.floor((r.ts - start) / 1800)].append(r)
    for i in range(len(ts["buckets"])):
        got = per_bucket.get(i, [])
        assert ts["calls"][i] == len(got)
        assert ts["errors"][i] == sum(r.is_error for r in got)
        lat = sorted(r.latency_ms for r in got)
        for q in (50, 95, 99):
            expected = percentile(lat, q)
            assert ts["latency_ms"][f"p{q}"][i] == (
                expected if expected is None else pytest.approx(expected)
            )
        assert ts["error_rate"][i] == (sum(r.is_error for r in got) / len(got) if got else None)
        assert ts["cache_hit_rate"][i] == (0.0 if got else None)

    # top users by cost
    top = await dashboard.ok("/ui/api/top-users", **window)
    expected_users = by(records, "user_id")
    got_users = {u["user"] or "(none)": Decimal(u["cost_usd"]) for u in top["users"]}
    assert got_users == expected_users
    costs = [Decimal(u["cost_usd"]) for u in top["users"]]
    assert costs == sorted(costs, reverse=True)
    assert sum(u["calls"] for u in top["users"]) == CALLS

    # recent calls: the call records (no attempt records), newest first, fields as stored
    recent = await dashboard.ok("/ui/api/calls", until=window["until"])
    newest_first = sorted(records, key=lambda r: r.ts, reverse=True)
    assert [c["request_id"] for c in recent["calls"]] == [r.request_id for r in newest_first]
    stored = {r.request_id: r for r in records}
    for call in recent["calls"]:
        record = stored[call["request_id"]]
        assert set(call) == set(record.to_json())
        assert CallRecord.from_json(call) == record
        assert call["kind"] == "call"
        if call["input_preview"] is not None:
            assert "[email]" in call["input_preview"] and "jane.doe" not in call["input_preview"]

    breakers = await dashboard.ok("/ui/api/breakers")
    assert {b["deployment"] for b in breakers["breakers"]} == {
        "sim-gpt-4o-mini",
        "sim-gpt-4o",
        "sim-claude-haiku",
        "sim-claude-sonnet",
    }
    # the alert engine sees 3 of 20 calls fail (over its 5% threshold): the page lists it
    engine = dashboard.app[ALERTS]
    await engine.run_once()
    assert [a.name for a in engine.active] == ["error_rate"]
    assert await dashboard.ok("/ui/api/alerts") == {
        "available": True,
        "alerts": [a.to_json() for a in engine.active],
    }


async def test_recent_calls_are_the_last_fifty(dashboard: Dashboard) -> None:
    await run_workload(dashboard.http, dashboard.url, calls=55)
    await wait_for_calls(dashboard.http, dashboard.url, dashboard.auth, 55)
    recent = await dashboard.ok("/ui/api/calls")
    records = await asyncio.to_thread(stored_calls, dashboard.db)
    newest = sorted(records, key=lambda r: r.ts, reverse=True)[:50]
    assert [c["request_id"] for c in recent["calls"]] == [r.request_id for r in newest]


async def test_admin_key_bearer_and_login_cookie(dashboard: Dashboard) -> None:
    http, url = dashboard.http, dashboard.url
    for path in ("/ui", "/ui/static/app.js", "/ui/api/summary", "/ui/api/calls"):
        async with http.get(url + path) as r:
            assert r.status == 401, path
            assert r.content_type == "application/json"
            body = await r.json()
            assert body["error"]["code"] == "unauthorized"
        async with http.get(url + path, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401, path
        async with http.get(url + path, headers=dashboard.auth) as r:
            assert r.status == 200, path

    async with http.post(url + "/ui/login", data={"key": "wrong"}, allow_redirects=False) as r:
        assert r.status == 401 and COOKIE not in r.cookies
    # never the key in an address (proxy logs, history): GET shows the form only
    async with http.get(url + "/ui/login", params={"key": ADMIN_KEY}, allow_redirects=False) as r:
        assert r.status == 401 and COOKIE not in r.cookies
    async with http.get(url + "/ui/login") as r:
        assert r.status == 200 and 'method="post"' in await r.text()
    async with http.post(url + "/ui/login", data={"key": ADMIN_KEY}, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["location"] == "/ui"
        set_cookie = r.headers["set-cookie"]
        cookie = r.cookies[COOKIE]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert cookie.value and ADMIN_KEY not in cookie.value  # the cookie is not the key itself
    jar = {"Cookie": f"{COOKIE}={cookie.value}"}
    for path in ("/ui", "/ui/static/style.css", "/ui/api/info", "/ui/api/summary"):
        async with http.get(url + path, headers=jar) as r:
            assert r.status == 200, path
            text = await r.text()
            assert ADMIN_KEY not in text
    async with http.get(url + "/ui/api/info", headers=jar) as r:
        assert (await r.json())["auth"] == "admin_key"
    async with http.get(url + "/ui", headers={"Cookie": f"{COOKIE}=forged"}) as r:
        assert r.status == 401
    # a form login works too, and the key never shows up in what the page gets
    async with http.post(url + "/ui/login", data={"key": ADMIN_KEY}, allow_redirects=False) as r:
        assert r.status == 303 and r.cookies[COOKIE].value == cookie.value


async def test_pages_and_static_files(dashboard: Dashboard) -> None:
    http, url = dashboard.http, dashboard.url
    async with http.get(url + "/ui", headers=dashboard.auth) as r:
        page = await r.text()
        assert r.content_type == "text/html"
        assert "default-src 'none'" in r.headers["content-security-policy"]
    for needed in (
        'id="total-calls"',
        'id="total-cost"',
        'id="chart-cost-feature"',
        "/ui/static/app.js",
    ):
        assert needed in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        async with http.get(url + f"/ui/static/{name}", headers=dashboard.auth) as r:
            assert r.status == 200 and r.content_type == kind
            assert "https://" not in await r.text()
    for missing in ("nope.js", "..%2Fapp.py", "index.html"):
        async with http.get(url + f"/ui/static/{missing}", headers=dashboard.auth) as r:
            assert r.status == 404, missing
    async with http.get(
        url + "/ui/api/summary", params={"period": "2y"}, headers=dashboard.auth
    ) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"
    async with http.get(url + "/ui/api/calls", params={"limit": "0"}, headers=dashboard.auth) as r:
        assert r.status == 400


async def test_without_admin_key_only_loopback_is_served(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    runner, url = await start_dashboard(sim_url, f"sqlite:///{tmp_path / 'r.db'}")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/ui") as r:
                assert r.status == 200
            async with http.get(url + "/ui/api/info") as r:
                assert (await r.json())["auth"] == "off_loopback_only"
        for remote, allowed in (
            ("127.0.0.1", True),
            ("::1", True),
            ("::ffff:127.0.0.1", True),
            ("10.1.2.3", False),
            ("192.168.0.7", False),
            ("2001:db8::1", False),
        ):
            request = make_mocked_request("GET", "/ui/api/summary", app=runner.app)
            request = request.clone(remote=remote)
            refusal = check_access(request)
            assert (refusal is None) is allowed, remote
            if refusal is not None:
                assert refusal.status == 401
    finally:
        await runner.cleanup()
    assert is_loopback("127.0.0.2") and not is_loopback(None) and not is_loopback("example")


async def test_without_a_record_store_the_api_says_so(sim_url: str) -> None:
    runner, url = await start_dashboard(sim_url, None)
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/ui/api/summary", "/ui/api/timeseries", "/ui/api/calls"):
                async with http.get(url + path) as r:
                    assert r.status == 503
                    error = (await r.json())["error"]
                    assert error["code"] == "no_record_store"
                    assert "store_url" in error["message"]
            async with http.get(url + "/ui/api/info") as r:
                assert (await r.json())["records"] is False
            async with http.get(url + "/ui/api/breakers") as r:
                assert r.status == 200
            async with http.get(url + "/ui") as r:
                assert r.status == 200
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class _Alert:
    name: str
    severity: str
    message: str
    since: float


class _Alerts:
    def __init__(self) -> None:
        self.fired = [_Alert("error-rate", "critical", "error rate 12% over 5 min", 1.0e9)]

    async def active(self) -> list[_Alert]:
        return self.fired


FAKE_ALERTS = web.AppKey("alerts", _Alerts)


async def test_install_is_idempotent_and_reads_any_alerts_key(sim_url: str) -> None:
    app = server.create_app(records_config(sim_url, None, alerts=False))
    install(app)
    routes = len(app.router.routes())
    install(app)
    assert len(app.router.routes()) == routes
    app[FAKE_ALERTS] = _Alerts()
    runner, port = await server.start_app(app)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/ui/api/alerts") as r,
        ):
            assert await r.json() == {
                "available": True,
                "alerts": [
                    {
                        "name": "error-rate",
                        "severity": "critical",
                        "message": "error rate 12% over 5 min",
                        "since": 1.0e9,
                    }
                ],
            }
    finally:
        await runner.cleanup()
