"""The alert rules' settings (`observability.alerts.rules`): a leaf schema module, so the
root config (`sluice.config`) can include it without importing the rules themselves
(`sluice.observe.alert_rules`, which documents each rule and its defaults)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

HOUR_S = 3600.0
DAY_S = 86_400.0


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostSpikeRule(_Frozen):
    enabled: bool = True
    factor: float = Field(default=2.0, gt=0)
    window_s: float = Field(default=HOUR_S, gt=0, le=DAY_S)
    baseline_days: int = Field(default=7, ge=1, le=31)
    min_history_h: int = Field(default=24, ge=1)  # complete hours of baseline needed first
    min_cost_usd: float = Field(default=1.0, ge=0)  # quieter windows never fire

    @model_validator(mode="after")
    def _history_fits(self) -> CostSpikeRule:
        if self.min_history_h > self.baseline_days * 24:
            raise ValueError("min_history_h must fit in baseline_days")
        return self


class ErrorRateRule(_Frozen):
    enabled: bool = True
    threshold: float = Field(default=0.05, gt=0, lt=1)  # share of calls answered 5xx
    window_s: float = Field(default=300.0, gt=0)
    min_calls: int = Field(default=20, ge=1)


class LatencyRule(_Frozen):
    enabled: bool = True
    threshold_s: float = Field(default=10.0, gt=0)
    window_s: float = Field(default=300.0, gt=0)
    min_calls: int = Field(default=20, ge=1)


class CacheHitRateRule(_Frozen):
    enabled: bool = True
    routes: list[str] = Field(default_factory=list)  # public model names; none: rule off
    threshold: float = Field(default=0.70, ge=0, le=1)
    window_s: float = Field(default=HOUR_S, gt=0)
    min_calls: int = Field(default=20, ge=1)


class UserCostRule(_Frozen):
    enabled: bool = True
    threshold_usd: float = Field(default=10.0, gt=0)
    window_s: float = Field(default=HOUR_S, gt=0)


class DailyTokensRule(_Frozen):
    enabled: bool = True
    daily_quota: int | None = Field(default=None, gt=0)  # tokens per UTC day; none: rule off
    threshold: float = Field(default=0.8, gt=0)  # share of the quota


class RulesConfig(_Frozen):
    cost_spike: CostSpikeRule = CostSpikeRule()
    error_rate: ErrorRateRule = ErrorRateRule()
    p99_latency: LatencyRule = LatencyRule()
    cache_hit_rate: CacheHitRateRule = CacheHitRateRule()
    user_cost: UserCostRule = UserCostRule()
    daily_tokens: DailyTokensRule = DailyTokensRule()
