"""Rate limits and budgets with the in-process counters and a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sluice.cost.prices import Price
from sluice.errors import RateLimitError, ServiceUnavailableError
from sluice.governance.counters import (
    BudgetCheck,
    CounterBackendError,
    MemoryCounters,
    RateCheck,
    Settlement,
)
from sluice.governance.limits_config import BudgetsConfig, LimitsConfig
from sluice.governance.scopes import Who, budget_checks, period_bounds, rate_checks
from sluice.governance.spec import Budget, Identity, RateLimits
from sluice.governance.stage import GovernanceStage, format_duration, ratelimit_headers
from sluice.observe.metrics import Metrics
from sluice.pipeline.context import CallContext, Result
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart, Usage


class Clock:
    def __init__(self, now: float = 1_763_900_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rpm(limit: int, key: str = "rate:k:requests") -> RateCheck:
    return RateCheck(key, "key:k", "requests", limit, 1)


# --- sliding log ------------------------------------------------------------------------


async def test_sliding_log_admits_exactly_the_limit_in_any_window() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    admitted: list[float] = []
    # One attempt every 0.5 s for 3 minutes against 10 per minute.
    for step in range(360):
        clock.now = 1_000.0 + step * 0.5
        if (await counters.admit(f"t{step}", [rpm(10)], [], 60)).admitted:
            admitted.append(clock.now)
    for start in admitted:  # no 60 s window, at any offset, holds more than 10
        assert sum(1 for t in admitted if start <= t < start + 60) <= 10
    assert len(admitted) == 30  # and the limit is usable: 10 per minute for 3 minutes


async def test_no_burst_across_a_window_edge() -> None:
    clock = Clock(1_000.0)
    counters = MemoryCounters(clock)
    clock.now = 1_059.0  # a burst just before a fixed window's edge...
    assert all([(await counters.admit(f"a{i}", [rpm(5)], [], 60)).admitted for i in range(5)])
    clock.now = 1_061.0  # ...and just after it: a fixed window would admit 5 more
    result = await counters.admit("b", [rpm(5)], [], 60)
    assert not result.admitted
    assert result.retry_after_s == pytest.approx(58.0)
    clock.now = 1_119.0  # the burst has left the window
    assert (await counters.admit("c", [rpm(5)], [], 60)).admitted


async def test_tpm_settles_to_actual_usage() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    tpm = RateCheck("rate:k:tokens", "key:k", "tokens", 1000, 800)
    assert (await counters.admit("one", [tpm], [], 60)).admitted
    refused = await counters.admit("two", [tpm], [], 60)  # 800 reserved + 800 > 1000
    assert not refused.admitted
    await counters.settle("one", Settlement([("rate:k:tokens", 50)], []))
    result = await counters.admit("two", [tpm], [], 60)  # 50 used + 800 fits
    assert result.admitted and result.rates[0].used == 850


async def test_all_or_nothing_across_scopes() -> None:
    counters = MemoryCounters(Clock())
    wide, narrow = rpm(100, "rate:g"), rpm(1, "rate:k")
    assert (await counters.admit("1", [wide, narrow], [], 60)).admitted
    refused = await counters.admit("2", [wide, narrow], [], 60)
    assert not refused.admitted and refused.failed_rate == 1
    assert (await counters.read([wide], [])).rates[0].used == 1  # the refused call left no trace


# --- budgets ------------------------------------------------------------------------------


def budget(limit: int, amount: int, hard: bool = True, key: str = "b") -> BudgetCheck:
    return BudgetCheck(key, "tenant:t", "monthly", "usd", limit, amount, hard, None)


async def test_budget_reservation_then_settlement() -> None:
    counters = MemoryCounters(Clock())
    assert (await counters.admit("1", [], [budget(100, 60)], 60)).admitted
    refused = await counters.admit("2", [], [budget(100, 60)], 60)  # 60 reserved + 60 > 100
    assert not refused.admitted and refused.failed_budget == 0
    assert await counters.settle("1", Settlement([], [("b", 10, None)])) == [10]
    result = await counters.admit("2", [], [budget(100, 60)], 60)
    assert result.admitted and (result.budgets[0].spent, result.budgets[0].reserved) == (10, 60)


async def test_unsettled_reservation_expires() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    assert (await counters.admit("crashed", [], [budget(100, 90)], 30)).admitted
    assert not (await counters.admit("2", [], [budget(100, 90)], 30)).admitted
    clock.now += 31  # the first call's gateway died before settling
    state = await counters.read([], [budget(100, 0)])
    assert (state.budgets[0].spent, state.budgets[0].reserved) == (0, 0)
    assert (await counters.admit("2", [], [budget(100, 90)], 30)).admitted


async def test_soft_budget_admits_over_the_limit() -> None:
    counters = MemoryCounters(Clock())
    await counters.admit("1", [], [budget(100, 90, hard=False)], 60)
    result = await counters.admit("2", [], [budget(100, 90, hard=False)], 60)
    assert result.admitted and result.budgets[0].reserved == 180


def test_period_bounds_are_utc() -> None:
    now = datetime(2026, 11, 23, 14, 5, tzinfo=UTC).timestamp()  # a Monday
    assert period_bounds("daily", now) == (
        "2026-11-23",
        datetime(2026, 11, 24, tzinfo=UTC).timestamp(),
    )
    assert period_bounds("weekly", now) == (
        "2026-W48",
        datetime(2026, 11, 30, tzinfo=UTC).timestamp(),
    )
    dec = datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp()
    assert period_bounds("monthly", dec) == (
        "2026-12",
        datetime(2027, 1, 1, tzinfo=UTC).timestamp(),
    )
    assert period_bounds("total", now) == ("total", None)


async def test_new_period_starts_at_zero() -> None:
    clock = Clock(datetime(2026, 11, 23, 23, 59, tzinfo=UTC).timestamp())
    counters = MemoryCounters(clock)
    config = LimitsConfig(
        budgets=BudgetsConfig(tenants={"*": [Budget(period="daily", tokens=100)]})
    )
    who = Who.of(Identity(tenant="acme"), CallMeta())
    checks = budget_checks(who, config, clock.now, 80, 0)
    assert checks[0].key == "budget:tenant:acme:tokens:daily:2026-11-23"
    assert (await counters.admit("1", [], checks, 600)).admitted
    assert not (await counters.admit("2", [], checks, 600)).admitted
    clock.now += 120  # past midnight UTC: a new bucket
    checks = budget_checks(who, config, clock.now, 80, 0)
    assert checks[0].key.endswith("2026-11-24")
    assert (await counters.admit("2", [], checks, 600)).admitted


def test_scopes_come_from_identity_and_config() -> None:
    config = LimitsConfig(
        gateway=RateLimits(rpm=1000),
        keys=RateLimits(rpm=10),
        users={"*": RateLimits(tpm=500), "vip": RateLimits(tpm=5000)},
        tiers={"free": RateLimits(rpm=3)},
    )
    ident = Identity(key_id="k1", tenant="acme", tier="free", limits=RateLimits(rpm=7))
    meta = CallMeta(user="vip")
    checks = {(c.scope, c.unit): c.limit for c in rate_checks(Who.of(ident, meta), config, 42)}
    assert checks == {
        ("gateway", "requests"): 1000,
        ("key:k1", "requests"): 7,  # the key's own limits win over the default
        ("user:acme/vip", "tokens"): 5000,  # a named user wins over "*"
        ("tier:free", "requests"): 3,
    }


def test_headers_report_the_tightest_limit() -> None:
    from sluice.governance.counters import Admission, RateState

    checks = [rpm(100, "a"), rpm(10, "b"), RateCheck("c", "gateway", "tokens", 900, 50)]
    adm = Admission(True, [RateState(5, 1.0), RateState(9, 30.0), RateState(50, 0.02)])
    assert ratelimit_headers(checks, adm) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "900",
        "x-ratelimit-remaining-tokens": "850",
        "x-ratelimit-reset-tokens": "20ms",
    }
    assert format_duration(360.0) == "6m0s"
    assert format_duration(1.5) == "1.5s"


# --- the stage ----------------------------------------------------------------------------

PRICE = Price(Decimal(1), Decimal(2), Decimal(1), Decimal(1))  # $ per million tokens


def request(
    model: str = "big", max_tokens: int | None = 100, tenant: str = "default", **meta: object
) -> CallContext:
    req = ChatRequest(
        model=model,
        messages=[Message("user", [TextPart("hello there")])],
        max_tokens=max_tokens,
        meta=CallMeta(**meta),  # type: ignore[arg-type]
    )
    return CallContext(req, identity=Identity(tenant=tenant))


async def answer(ctx: CallContext) -> Result:
    ctx.usage = Usage(10, 5)
    ctx.cost_usd = Decimal("0.00002")
    return ChatResponse(id="r", model=ctx.request.model, parts=[TextPart("hi")])


def stage(config: LimitsConfig, counters: MemoryCounters | None = None) -> GovernanceStage:
    return GovernanceStage(
        config,
        MemoryCounters(Clock()) if counters is None else counters,
        lambda m: PRICE,
        models={"big", "small"},
        metrics=Metrics(),
    )


async def test_stage_hard_budget_refuses_with_reset_time() -> None:
    usd = Budget(period="daily", usd=0.0005)
    gov = stage(LimitsConfig(budgets=BudgetsConfig(tenants={"acme": [usd]})))
    ctx = request(tenant="acme")  # worst case ~ (est input + 100 out) tokens ≈ $0.00022
    await gov(ctx, answer)
    await gov(request(tenant="acme"), answer)  # settled at $0.00002 each
    usage = await gov.usage(Identity(tenant="acme"))
    assert usage["budgets"][0]["spent"] == pytest.approx(0.00004)
    big = request(tenant="acme", max_tokens=1000)  # worst case > what is left
    with pytest.raises(RateLimitError) as err:
        await gov(big, answer)
    assert err.value.code == "budget_exceeded"
    assert "x-sluice-budget-reset" in err.value.headers
    assert int(err.value.headers["retry-after"]) > 0


async def test_stage_soft_budget_downgrades_the_model() -> None:
    soft = Budget(period="monthly", tokens=100, kind="soft", downgrade_to="small")
    gov = stage(LimitsConfig(budgets=BudgetsConfig(features={"chat": [soft]})))
    first = request(feature="chat", max_tokens=50)
    await gov(first, answer)
    assert first.request.model == "big"
    assert not first.over_soft_budget
    second = request(feature="chat", max_tokens=200)  # 15 spent + worst case > 100
    await gov(second, answer)
    assert second.request.model == "small"
    assert second.over_soft_budget  # budget-aware routes read this flag
    assert second.response_headers["x-sluice-budget-downgrade"] == "big -> small"


async def test_stage_rate_limit_429_carries_headers() -> None:
    gov = stage(LimitsConfig(gateway=RateLimits(rpm=2)))
    ok = request()
    await gov(ok, answer)
    assert ok.response_headers["x-ratelimit-remaining-requests"] == "1"
    await gov(request(), answer)
    refused = request()
    with pytest.raises(RateLimitError) as err:
        await gov(refused, answer)
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.headers["retry-after"] == "60"
    assert refused.response_headers["x-ratelimit-remaining-requests"] == "0"


class DownCounters(MemoryCounters):
    async def admit(self, *args: object, **kw: object) -> object:  # type: ignore[override]
        raise CounterBackendError("connection refused")


async def test_backend_down_limits_fail_open_budgets_fail_closed() -> None:
    down = DownCounters()
    gov = stage(LimitsConfig(gateway=RateLimits(rpm=1)), down)
    for _ in range(3):  # open: every call goes through, counted
        await gov(request(), answer)
    assert gov.metrics is not None
    assert gov.metrics.governance_backend_errors.labels("admit")._value.get() == 3
    hard = LimitsConfig(budgets=BudgetsConfig(tenants={"*": [Budget(usd=1.0)]}))
    with pytest.raises(ServiceUnavailableError) as err:
        await stage(hard, down)(request(), answer)
    assert err.value.code == "budget_store_unavailable"


async def test_memory_counters_forget_idle_windows_and_past_periods() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    daily = BudgetCheck("b:day1", "user:u", "daily", "tokens", 10, 1, True, clock.now + 100)
    for i in range(50):
        await counters.admit(f"t{i}", [rpm(5, f"rate:user:{i}")], [daily], 60)
    assert len(counters) == 51
    clock.now += 200  # windows empty, the day is over
    counters.sweep()
    assert len(counters) == 0


async def test_charge_settles_a_call_that_skipped_the_stage() -> None:
    """A forwarded batch item never passed admission: `charge` adds its real usage to the
    counters of every budget that applies to the caller now (no reservation to replace),
    to the tenant's as to the key's, and leaves other callers' counters alone."""
    tokens = Budget(period="monthly", tokens=1000)
    usd = Budget(period="daily", usd=1.0)
    gov = stage(LimitsConfig(budgets=BudgetsConfig(tenants={"acme": [usd]})))
    who = Identity(tenant="acme", key_id="k1", budgets=(tokens,))
    for n in range(3):
        await gov.charge(
            who,
            request_id=f"b-{n}",
            model="big",
            deployment="d",
            usage=Usage(10, 5),
            cost_usd=Decimal("0.00002"),
        )
    usage = await gov.usage(who)
    spent = {(b["scope"], b["unit"]): (b["spent"], b["reserved"]) for b in usage["budgets"]}
    assert spent == {("key:k1", "tokens"): (45, 0), ("tenant:acme", "usd"): (0.00006, 0)}
    other = await gov.usage(Identity(tenant="other", key_id="k2", budgets=(tokens,)))
    assert [b["spent"] for b in other["budgets"]] == [0]
    # No budget at all: nothing to count (and no error).
    await gov.charge(
        Identity(tenant="free"),
        request_id="b-9",
        model="big",
        deployment=None,
        usage=Usage(1, 1),
        cost_usd=None,
    )


async def test_charge_without_a_price_counts_the_models_list_price() -> None:
    usd = Budget(period="daily", usd=1.0)
    gov = stage(LimitsConfig(budgets=BudgetsConfig(tenants={"acme": [usd]})))
    who = Identity(tenant="acme")
    usage = Usage(1_000, 500)  # at PRICE ($1 / $2 per million): $0.002
    await gov.charge(who, request_id="x", model="big", deployment=None, usage=usage, cost_usd=None)
    spent = (await gov.usage(who))["budgets"][0]["spent"]
    assert spent == pytest.approx(0.002)
