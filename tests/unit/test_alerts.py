"""Alert rules and the alert engine: conditions, episodes, webhooks, install()."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from sluice import server
from sluice.config import AlertsConfig, ConfigError, SluiceConfig, WebhookConfig
from sluice.observe.alert_rules import (
    CacheHitRateRule,
    CostSpikeRule,
    DailyTokensRule,
    ErrorRateRule,
    LatencyRule,
    RulesConfig,
    UserCostRule,
    bin_upper_ms,
    latency_bin,
)
from sluice.observe.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertEngine,
    Notification,
    sign,
    verify_signature,
)
from sluice.observe.records import CallRecord
from sluice.web.alerts import ALERTS, ENDPOINT, install
from tests.conftest import gateway_config

DAY0 = 19_675 * 86_400.0  # a UTC midnight (2023-11-14)
T = DAY0 + 12 * 3600  # noon that day: every test's "now" is near here
HOUR = 3600.0

# Every rule off except the one a test turns on.
QUIET = RulesConfig(
    cost_spike=CostSpikeRule(enabled=False),
    error_rate=ErrorRateRule(enabled=False),
    p99_latency=LatencyRule(enabled=False),
    user_cost=UserCostRule(enabled=False),
)


def engine(**rules: Any) -> AlertEngine:
    return AlertEngine(AlertsConfig(rules=QUIET.model_copy(update=rules)), environ={})


def rec(ts: float, **kw: Any) -> CallRecord:
    return CallRecord(request_id="r", ts=ts, **kw)


def feed(eng: AlertEngine, ts: float, n: int, **kw: Any) -> None:
    for i in range(n):
        eng.observe(rec(ts + i * 0.001, **kw))


def statuses(notes: list[Notification]) -> list[tuple[str, str]]:
    return [(n.alert, n.status) for n in notes]


# --- error_rate and episodes -------------------------------------------------------------


def test_error_rate_fires_once_per_episode_and_resolves_once() -> None:
    eng = engine(error_rate=ErrorRateRule(min_calls=10))
    feed(eng, T, 90)
    feed(eng, T + 1, 10, status=500)  # 10% over 5 min
    assert statuses(eng.evaluate(T + 2)) == [("error_rate", "firing")]
    for later in (T + 3, T + 30, T + 200):
        assert eng.evaluate(later) == []  # still firing: nothing new
    (active,) = eng.active
    assert active.name == "error_rate" and active.value == pytest.approx(0.1)
    (resolved,) = eng.evaluate(T + 320)  # the errors left the 5-minute window
    assert (resolved.status, resolved.started_at, resolved.ends_at) == ("resolved", T + 2, T + 320)
    assert resolved.value == 0.0 and eng.active == []
    assert eng.evaluate(T + 330) == []
    # a new episode fires again
    feed(eng, T + 400, 10, status=503)
    assert statuses(eng.evaluate(T + 401)) == [("error_rate", "firing")]
    assert (eng.stats.fired, eng.stats.resolved) == (2, 1)


def test_error_rate_needs_min_calls_and_is_strictly_above_threshold() -> None:
    eng = engine(error_rate=ErrorRateRule(min_calls=20))
    feed(eng, T, 5, status=500)
    assert eng.evaluate(T + 1) == []  # 100% of 5 calls: too few calls
    feed(eng, T, 95)  # 5 of 100 = exactly 5%
    assert eng.evaluate(T + 1) == []
    feed(eng, T, 5, status=404)  # 4xx are not 5xx
    feed(eng, T, 1, status=502)
    assert statuses(eng.evaluate(T + 1)) == [("error_rate", "firing")]


def test_error_rate_ignores_attempt_records_and_records_too_old() -> None:
    eng = engine(error_rate=ErrorRateRule(min_calls=1))
    eng.observe(rec(T, status=500, kind="attempt", attempt_of="x"))
    assert eng.evaluate(T + 1) == []
    eng.observe(rec(T + 1000, status=200))
    eng.observe(rec(T + 1, status=500))  # older than the ring now holds: ignored
    assert eng.evaluate(T + 1001) == []


def test_log_lines_warn_on_firing_and_inform_on_resolved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sluice.alerts")
    eng = engine(error_rate=ErrorRateRule(min_calls=1))
    feed(eng, T, 2, status=500)
    eng.evaluate(T + 1)
    eng.evaluate(T + 2)
    eng.evaluate(T + 400)
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert [(name, level) for name, level, _ in lines] == [
        ("sluice.alerts", logging.WARNING),
        ("sluice.alerts", logging.INFO),
    ]
    assert lines[0][2].startswith("alert firing: error_rate: 5xx error rate 100.0%")
    assert lines[1][2].startswith("alert resolved: error_rate")


# --- p99_latency -------------------------------------------------------------------------


@pytest.mark.parametrize("ms", [0.1, 1.0, 1.5, 37.0, 999.9, 10_000.0, 123_456.0])
def test_latency_bins_overestimate_by_at_most_two_percent(ms: float) -> None:
    upper = bin_upper_ms(latency_bin(ms))
    assert ms <= upper * (1 + 1e-9) and upper <= max(ms, 1.0) * 1.02 + 1e-9


def test_p99_latency_fires_on_a_slow_tail_only() -> None:
    eng = engine(p99_latency=LatencyRule(min_calls=50))
    feed(eng, T, 100, latency_ms=200.0)
    feed(eng, T, 1, latency_ms=20_000.0)
    assert eng.evaluate(T + 1) == []  # 1 slow call in 101: the p99 (the 100th) is fast
    feed(eng, T, 2, latency_ms=20_000.0)  # 3 in 103: the 102nd is slow
    (note,) = eng.evaluate(T + 1)
    assert note.alert == "p99_latency" and note.threshold == 10.0
    assert note.value is not None and 20.0 <= note.value <= 20.4
    assert note.window_s == 300.0
    assert statuses(eng.evaluate(T + 301)) == [("p99_latency", "resolved")]


def test_p99_latency_needs_min_calls() -> None:
    eng = engine(p99_latency=LatencyRule())  # 20 calls
    feed(eng, T, 19, latency_ms=60_000.0)
    assert eng.evaluate(T + 1) == []


# --- cache_hit_rate ----------------------------------------------------------------------


def test_cache_hit_rate_per_listed_route() -> None:
    eng = engine(cache_hit_rate=CacheHitRateRule(routes=["faq", "docs"], min_calls=10))
    feed(eng, T, 6, route="faq", cache_status="exact")
    feed(eng, T, 4, route="faq", cache_status="miss")  # 60%
    feed(eng, T, 10, route="docs", cache_status="semantic")  # 100%
    feed(eng, T, 50, route="other", cache_status="miss")  # not listed
    feed(eng, T, 50, route="docs", cache_status=None)  # no cache on the call: not counted
    feed(eng, T, 50, route="docs", cache_status="bypass")
    (note,) = eng.evaluate(T + 1)
    assert (note.alert, note.labels, note.value) == ("cache_hit_rate", (("route", "faq"),), 0.6)
    feed(eng, T + 2, 20, route="faq", cache_status="exact")  # 26 of 30
    (resolved,) = eng.evaluate(T + 3)
    assert resolved.status == "resolved" and resolved.labels == (("route", "faq"),)


def test_cache_hit_rate_is_off_without_routes() -> None:
    eng = engine(cache_hit_rate=CacheHitRateRule())
    assert [r.name for r in eng.rules] == []


# --- user_cost ---------------------------------------------------------------------------


def test_user_cost_fires_per_user_and_resolves_when_the_hour_passes() -> None:
    eng = engine(user_cost=UserCostRule())
    eng.observe(rec(T, user_id="alice", cost_usd=Decimal("6")))
    eng.observe(rec(T + 600, user_id="alice", cost_usd=Decimal("4.5")))
    eng.observe(rec(T + 600, user_id="bob", cost_usd=Decimal("9.99")))
    eng.observe(rec(T + 600, cost_usd=Decimal("50")))  # no user
    eng.observe(rec(T + 600, user_id="carol", cost_usd=None))  # unknown cost
    (note,) = eng.evaluate(T + 700)
    assert (note.alert, note.labels) == ("user_cost", (("user_id", "alice"),))
    assert note.value == pytest.approx(10.5) and note.threshold == 10.0
    assert eng.evaluate(T + 800) == []
    eng.observe(rec(T + 900, user_id="bob", cost_usd=Decimal("1")))
    (bob,) = eng.evaluate(T + 1000)
    assert bob.labels == (("user_id", "bob"),) and bob.status == "firing"
    notes = eng.evaluate(T + 3700)  # alice's first $6 left the window; bob's $9.99 did not
    (alice,) = notes
    assert (alice.labels, alice.status) == ((("user_id", "alice"),), "resolved")
    assert alice.value == pytest.approx(4.5)
    (bob_done,) = eng.evaluate(T + 5000)
    assert bob_done.status == "resolved" and bob_done.value == 0.0


# --- cost_spike --------------------------------------------------------------------------


def spend_hourly(eng: AlertEngine, first_hour: float, hours: int, usd: str) -> None:
    for h in range(hours):
        eng.observe(rec(first_hour + h * HOUR + 60, cost_usd=Decimal(usd)))


def test_cost_spike_waits_for_history_then_fires_on_twice_the_baseline() -> None:
    eng = engine(cost_spike=CostSpikeRule())
    # $1 in each hour from T-30h to T-2h: the first hour seen is incomplete and the window
    # (the last hour) touches T-1h, so the baseline is the 28 hours from T-29h to T-2h.
    spend_hourly(eng, T - 30 * HOUR, 29, "1.00")
    eng.observe(rec(T - 1800, cost_usd=Decimal("3.00")))
    (note,) = eng.evaluate(T)
    assert note.alert == "cost_spike" and note.value == pytest.approx(3.0)
    assert note.threshold == pytest.approx(2.0)  # 2 x $1/h
    assert "baseline of $1.00/h" in note.summary


def test_cost_spike_is_silent_without_enough_history() -> None:
    eng = engine(cost_spike=CostSpikeRule())
    spend_hourly(eng, T - 10 * HOUR, 9, "0.10")
    eng.observe(rec(T - 60, cost_usd=Decimal("50")))
    assert eng.evaluate(T) == []
    (rule,) = eng.rules
    (reading,) = rule.check(T, []).values()
    assert reading.threshold is None and "needs 24 complete hours" in reading.summary


def test_cost_spike_ignores_small_windows_and_modest_rises() -> None:
    eng = engine(cost_spike=CostSpikeRule())
    spend_hourly(eng, T - 48 * HOUR, 47, "0.10")
    eng.observe(rec(T - 60, cost_usd=Decimal("0.90")))  # 9x, but under min_cost_usd
    assert eng.evaluate(T) == []
    eng2 = engine(cost_spike=CostSpikeRule())
    spend_hourly(eng2, T - 48 * HOUR, 47, "2.00")
    eng2.observe(rec(T - 60, cost_usd=Decimal("3.90")))  # under 2x
    assert eng2.evaluate(T) == []
    eng2.observe(rec(T - 30, cost_usd=Decimal("0.20")))  # $4.10
    assert statuses(eng2.evaluate(T)) == [("cost_spike", "firing")]
    assert statuses(eng2.evaluate(T + 2 * HOUR)) == [("cost_spike", "resolved")]


def test_cost_spike_history_must_fit_the_baseline() -> None:
    with pytest.raises(ValidationError, match="min_history_h"):
        CostSpikeRule(baseline_days=1, min_history_h=25)


# --- daily_tokens ------------------------------------------------------------------------


def test_daily_tokens_fires_past_the_share_of_the_quota_and_resolves_next_day() -> None:
    eng = engine(daily_tokens=DailyTokensRule(daily_quota=1000))
    eng.observe(rec(DAY0 - 10, input_tokens=900))  # yesterday
    eng.observe(rec(T, input_tokens=500, output_tokens=300))
    assert eng.evaluate(T + 1) == []  # exactly 80%
    eng.observe(rec(T + 2, output_tokens=1))
    (note,) = eng.evaluate(T + 3)
    assert (note.alert, note.value, note.threshold, note.window_s) == (
        "daily_tokens",
        801.0,
        800.0,
        86_400.0,
    )
    assert statuses(eng.evaluate(DAY0 + 86_400 + 1)) == [("daily_tokens", "resolved")]


def test_daily_tokens_is_off_without_a_quota() -> None:
    assert engine(daily_tokens=DailyTokensRule()).rules == []


# --- config ------------------------------------------------------------------------------


def test_config_defaults_and_strictness() -> None:
    cfg = AlertsConfig()
    assert (cfg.enabled, cfg.interval_s, cfg.webhooks) == (True, 30.0, [])
    rules = cfg.rules
    assert (rules.error_rate.threshold, rules.error_rate.window_s) == (0.05, 300.0)
    assert (rules.p99_latency.threshold_s, rules.p99_latency.window_s) == (10.0, 300.0)
    assert (rules.cache_hit_rate.threshold, rules.cache_hit_rate.window_s) == (0.7, 3600.0)
    assert (rules.user_cost.threshold_usd, rules.user_cost.window_s) == (10.0, 3600.0)
    assert (rules.cost_spike.factor, rules.cost_spike.baseline_days) == (2.0, 7)
    assert (rules.daily_tokens.threshold, rules.daily_tokens.daily_quota) == (0.8, None)
    names = [r.name for r in AlertEngine(cfg).rules]
    assert names == ["cost_spike", "error_rate", "p99_latency", "user_cost"]
    with pytest.raises(ValidationError):
        AlertsConfig.model_validate({"rules": {"error_rate": {"treshold": 0.1}}})
    with pytest.raises(ValidationError):
        WebhookConfig(url="ftp://example.com/x")
    with pytest.raises(ValidationError):
        cfg.enabled = False
    assert AlertEngine(AlertsConfig(enabled=False)).rules == []


def test_a_missing_webhook_secret_fails_at_startup() -> None:
    cfg = AlertsConfig(webhooks=[WebhookConfig(url="http://x.test/", secret_env="HOOK_SECRET")])
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        AlertEngine(cfg, environ={})


def test_observe_never_raises() -> None:
    eng = engine(error_rate=ErrorRateRule(min_calls=1))
    eng.observe(rec(float("nan")))
    eng.observe(rec(float("nan")))
    assert eng.stats.observe_errors == 2
    eng.observe(rec(T, status=500))
    assert statuses(eng.evaluate(T + 1)) == [("error_rate", "firing")]


# --- webhooks ----------------------------------------------------------------------------


class Receiver:
    """A local webhook endpoint that records what it gets."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.status, self.delay_s = status, delay_s
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        await asyncio.sleep(self.delay_s)
        return web.Response(status=self.status)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook/{token}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook/t0ps3cret"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


def firing_engine(webhooks: list[WebhookConfig], environ: dict[str, str]) -> AlertEngine:
    rules = QUIET.model_copy(update={"error_rate": ErrorRateRule(min_calls=1)})
    eng = AlertEngine(AlertsConfig(webhooks=webhooks, rules=rules), environ=environ)
    feed(eng, T, 3, status=500)
    return eng


def test_signatures_verify_only_with_the_right_secret_and_body() -> None:
    body = b'{"alert":"error_rate"}'
    header = sign(body, b"s3cret", "1700000000")
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(body, header, b"s3cret", "1700000000")
    assert not verify_signature(body, header, b"other", "1700000000")
    assert not verify_signature(body + b" ", header, b"s3cret", "1700000000")
    assert not verify_signature(body, header, b"s3cret", "1700000001")  # a replayed stamp
    assert not verify_signature(body, None, b"s3cret", "1700000000")
    assert not verify_signature(body, header, b"s3cret", None)


async def test_webhook_posts_signed_json_in_order(receiver: Receiver) -> None:
    hook = WebhookConfig(url=receiver.url, secret_env="HOOK_SECRET")
    eng = firing_engine([hook], {"HOOK_SECRET": "s3cret"})
    try:
        await eng.run_once(T + 1)
        await eng.run_once(T + 2)  # still firing: nothing sent
        await eng.run_once(T + 400)
    finally:
        await eng.close()
    assert len(receiver.got) == 2
    payloads = []
    for headers, body in receiver.got:
        assert verify_signature(
            body, headers[SIGNATURE_HEADER], b"s3cret", headers[TIMESTAMP_HEADER]
        )
        assert headers[TIMESTAMP_HEADER].isdigit()
        assert headers["Content-Type"] == "application/json"
        payloads.append(orjson.loads(body))
    firing, resolved = payloads
    assert set(firing) == {
        "alert",
        "status",
        "value",
        "threshold",
        "window_s",
        "labels",
        "started_at",
        "ends_at",
        "summary",
    }
    assert firing["status"] == "firing" and firing["ends_at"] is None
    assert firing["started_at"] == "2023-11-14T12:00:01.000+00:00"
    assert (firing["value"], firing["threshold"], firing["labels"]) == (1.0, 0.05, {})
    assert resolved["status"] == "resolved" and resolved["started_at"] == firing["started_at"]
    assert resolved["ends_at"] == "2023-11-14T12:06:40.000+00:00"
    assert eng.stats.webhook_sent == 2 and eng.stats.webhook_failed == 0


async def test_unsigned_webhook_has_no_signature(receiver: Receiver) -> None:
    eng = firing_engine([WebhookConfig(url=receiver.url)], {})
    await eng.run_once(T + 1)
    await eng.close()
    ((headers, _),) = receiver.got
    assert SIGNATURE_HEADER not in headers and TIMESTAMP_HEADER in headers


async def test_webhook_failures_are_counted_and_logged_never_raised(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sluice.alerts")
    async with Receiver(status=500) as failing, Receiver(delay_s=0.5) as slow:
        hooks = [
            WebhookConfig(url=failing.url),
            WebhookConfig(url=slow.url, timeout_s=0.1),
            WebhookConfig(url="http://127.0.0.1:9/hook/t0ps3cret", timeout_s=1),  # refused
            WebhookConfig(url=receiver.url),
        ]
        eng = firing_engine(hooks, {})
        notes = await eng.run_once(T + 1)
        await eng.close()
    assert statuses(notes) == [("error_rate", "firing")]
    assert (eng.stats.webhook_sent, eng.stats.webhook_failed) == (1, 3)
    assert len(receiver.got) == 1  # the healthy webhook still got it
    failures = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert len(failures) == 3 and any("HTTP 500" in m for m in failures)
    assert any("TimeoutError" in m for m in failures)
    assert all("t0ps3cret" not in m for m in caplog.messages)  # URLs may carry tokens


async def test_background_task_evaluates_every_interval(receiver: Receiver) -> None:
    rules = QUIET.model_copy(update={"error_rate": ErrorRateRule(min_calls=1)})
    cfg = AlertsConfig(interval_s=0.05, webhooks=[WebhookConfig(url=receiver.url)], rules=rules)
    eng = AlertEngine(cfg, environ={})
    await eng.start()
    await eng.start()  # idempotent
    feed(eng, time.time(), 2, status=500)
    for _ in range(100):
        if receiver.got:
            break
        await asyncio.sleep(0.02)
    await eng.close()
    await eng.close()
    assert eng.stats.evaluations >= 1 and len(receiver.got) == 1


# --- install -----------------------------------------------------------------------------


def without_alerts(config: SluiceConfig) -> SluiceConfig:
    """A gateway whose config does not install alerts, so the test installs its own."""
    data = config.model_dump()
    data["observability"]["alerts"]["enabled"] = False
    return SluiceConfig.model_validate(data)


def test_install_is_idempotent_and_observes_the_recorder() -> None:
    app = server.create_app(without_alerts(gateway_config("http://127.0.0.1:9")))
    cfg = AlertsConfig(rules=QUIET.model_copy(update={"error_rate": ErrorRateRule(min_calls=1)}))
    eng = install(app, cfg)
    assert install(app, cfg) is eng and app[ALERTS] is eng
    assert [r.canonical for r in app.router.resources()].count(ENDPOINT) == 1
    recorder = app[server.GATEWAY].recorder
    assert recorder.observers == [eng.observe]
    for observer in recorder.observers:
        observer(rec(T, status=500, route="gpt-4o-mini"))
    assert statuses(eng.evaluate(T + 1)) == [("error_rate", "firing")]


def test_install_disabled_serves_the_endpoint_but_observes_nothing() -> None:
    app = server.create_app(without_alerts(gateway_config("http://127.0.0.1:9")))
    eng = install(app, AlertsConfig(enabled=False))
    assert app[server.GATEWAY].recorder.observers == []
    assert eng.rules == [] and eng.snapshot()["enabled"] is False
