"""Cost accounting: the shipped price table, configured overrides, and pure cost arithmetic."""

from sluice.cost.compute import (
    cache_write_premium,
    compute_cost,
    cost_saved_by_cache,
    cost_saved_by_routing,
    uncached_input_tokens,
)
from sluice.cost.prices import Price, PriceTable, default_price_table, lookup_price, resolve_price

__all__ = [
    "Price",
    "PriceTable",
    "cache_write_premium",
    "compute_cost",
    "cost_saved_by_cache",
    "cost_saved_by_routing",
    "default_price_table",
    "lookup_price",
    "resolve_price",
    "uncached_input_tokens",
]
