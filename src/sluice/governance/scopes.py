"""Which limits and budgets apply to a call: pure functions from identity + config to checks.

Rate-limit scopes: the key, the user (the call's end user, else the key's owner), the team,
the tier, and the whole gateway. Budget scopes: the key, the tenant, the team, the user and
the feature. Scopes other than the gateway and tier are qualified by tenant, so two tenants'
"alice" never share a counter. Budget counters are keyed by scope, unit, period and the
period's bucket (`2026-11-23`, `2026-W48`, `2026-11`, `total`), so a new period starts at
zero on its own — no reset job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sluice.governance.counters import BudgetCheck, RateCheck
from sluice.governance.limits_config import EACH, LimitsConfig
from sluice.governance.spec import Budget, Identity, Period, RateLimits
from sluice.types import CallMeta

T = TypeVar("T")
INTERNAL = "sluice_internal"  # identity metadata of Sluice's own calls (sluice.eval.live)


def period_bounds(period: Period, now: float) -> tuple[str, float | None]:
    """The bucket `now` (epoch s) falls in and when it ends (epoch s, UTC; None: never)."""
    day = datetime.fromtimestamp(now, UTC).date()
    if period == "daily":
        return day.isoformat(), _midnight(day + timedelta(days=1))
    if period == "weekly":
        monday = day - timedelta(days=day.weekday())
        year, week, _ = monday.isocalendar()
        return f"{year}-W{week:02d}", _midnight(monday + timedelta(days=7))
    if period == "monthly":
        first_next = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return f"{day.year}-{day.month:02d}", _midnight(first_next)
    return "total", None


def period_start(period: Period, now: float) -> float:
    """When the period `now` falls in began (epoch s, UTC; 0 for "total")."""
    day = datetime.fromtimestamp(now, UTC).date()
    if period == "daily":
        return _midnight(day)
    if period == "weekly":
        return _midnight(day - timedelta(days=day.weekday()))
    if period == "monthly":
        return _midnight(day.replace(day=1))
    return 0.0


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Who:
    """The attributes scopes are drawn from, identity first, then the call's metadata."""

    tenant: str
    key_id: str | None
    user: str | None
    team: str | None
    tier: str | None
    feature: str | None
    key_limits: RateLimits | None
    key_budgets: tuple[Budget, ...]
    # False for the calls Sluice makes on its own (shadow mirrors, online judges: identity
    # metadata `INTERNAL`): they must never use up the callers' gateway-wide rate limit.
    shares_gateway: bool = True

    @classmethod
    def of(cls, ident: Identity, meta: CallMeta) -> Who:
        """Tenant, key, team and tier from the identity alone; the user by `CallMeta`'s rule
        (its label, else the key's owner); the feature label."""
        has_limits = ident.limits.rpm is not None or ident.limits.tpm is not None
        return cls(
            tenant=ident.tenant,
            key_id=ident.key_id,
            user=meta.user or ident.user,
            team=ident.team,
            tier=ident.tier,
            feature=meta.feature,
            key_limits=ident.limits if has_limits else None,
            key_budgets=ident.budgets,
            shares_gateway=not ident.metadata.get(INTERNAL),
        )

    @classmethod
    def of_names(cls, tenant: str = "default", **names: str | None) -> Who:
        """A caller from scope names alone (the CLI, tests)."""
        return cls(
            tenant=tenant,
            key_id=names.get("key_id"),
            user=names.get("user"),
            team=names.get("team"),
            tier=names.get("tier"),
            feature=names.get("feature"),
            key_limits=None,
            key_budgets=(),
        )


def _pick(table: Mapping[str, T], name: str | None) -> T | None:
    if name is None:
        return None
    found = table.get(name)
    return found if found is not None else table.get(EACH)


def rate_scopes(who: Who, config: LimitsConfig) -> list[tuple[str, RateLimits]]:
    scopes: list[tuple[str, RateLimits | None]] = [
        ("gateway", config.gateway if who.shares_gateway else None),
        (f"key:{who.key_id}", who.key_limits or config.keys) if who.key_id else ("", None),
        (f"user:{who.tenant}/{who.user}", _pick(config.users, who.user)),
        (f"team:{who.tenant}/{who.team}", _pick(config.teams, who.team)),
        (f"tier:{who.tier}", _pick(config.tiers, who.tier)),
    ]
    return [(name, lim) for name, lim in scopes if lim is not None and (lim.rpm or lim.tpm)]


def rate_checks(who: Who, config: LimitsConfig, tokens: int) -> list[RateCheck]:
    """RPM (cost 1) and TPM (cost: estimated input + reserved output) checks."""
    checks: list[RateCheck] = []
    for scope, lim in rate_scopes(who, config):
        if lim.rpm:
            checks.append(RateCheck(f"rate:{scope}:requests", scope, "requests", lim.rpm, 1))
        if lim.tpm:
            checks.append(RateCheck(f"rate:{scope}:tokens", scope, "tokens", lim.tpm, tokens))
    return checks


def budget_scopes(who: Who, config: LimitsConfig) -> list[tuple[str, list[Budget]]]:
    b = config.budgets
    scopes: list[tuple[str, list[Budget] | None]] = [
        (f"key:{who.key_id}", list(who.key_budgets) or b.keys) if who.key_id else ("", None),
        (f"tenant:{who.tenant}", _pick(b.tenants, who.tenant)),
        (f"team:{who.tenant}/{who.team}", _pick(b.teams, who.team)),
        (f"user:{who.tenant}/{who.user}", _pick(b.users, who.user)),
        (f"feature:{who.tenant}/{who.feature}", _pick(b.features, who.feature)),
    ]
    return [(name, budgets) for name, budgets in scopes if budgets]


def budget_checks(
    who: Who, config: LimitsConfig, now: float, tokens: int, usd_nano: int
) -> list[BudgetCheck]:
    """One check per budget and unit; `tokens` and `usd_nano` are this call's worst case."""
    checks: list[BudgetCheck] = []
    for scope, budgets in budget_scopes(who, config):
        for budget in budgets:
            bucket, resets_at = period_bounds(budget.period, now)
            limits: list[tuple[str, int | None, int]] = [
                ("usd", round(budget.usd * 1e9) if budget.usd is not None else None, usd_nano),
                ("tokens", budget.tokens, tokens),
            ]
            for unit, limit, amount in limits:
                if limit is None:
                    continue
                checks.append(
                    BudgetCheck(
                        key=f"budget:{scope}:{unit}:{budget.period}:{bucket}",
                        scope=scope,
                        period=budget.period,
                        unit="usd" if unit == "usd" else "tokens",
                        limit=limit,
                        amount=amount,
                        hard=budget.kind == "hard",
                        resets_at=resets_at,
                        downgrade_to=budget.downgrade_to,
                    )
                )
    return checks
