"""Shapes shared by keys, limits and budgets: they live in the core leaf `sluice.identity`
(so layers below governance can name them) and are re-exported here for governance code."""

from sluice.identity import Budget, Identity, Period, RateLimits

__all__ = ["Budget", "Identity", "Period", "RateLimits"]
