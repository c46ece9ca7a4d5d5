"""Pure cost arithmetic on neutral `Usage` and a `Price` (USD per million tokens).

Usage convention (see `sluice.types`): `input_tokens` counts *all* prompt tokens, and
`cache_read_tokens` / `cache_write_tokens` are subsets of it. So

    uncached = input_tokens - cache_read_tokens - cache_write_tokens   (never below 0)
    cost     = (uncached · input + cache_read · cache_read_price
                + cache_write · cache_write_price + output · output_price) / 1e6

times `1 - batch_discount` for batch calls. Results are `Decimal`, quantized to 1e-10 USD.
No price means no cost: `None`, never 0.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from sluice.cost.prices import Price
from sluice.types import Usage

_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("1e-10")
_ONE = Decimal(1)


def _usd(per_mtok_total: Decimal, price: Price, batch: bool) -> Decimal:
    total = per_mtok_total / _MILLION
    if batch and price.batch_discount:
        total *= _ONE - price.batch_discount
    return total.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)


def uncached_input_tokens(usage: Usage) -> int:
    """Prompt tokens billed at the full input price."""
    return max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)


def compute_cost(usage: Usage, price: Price | None, *, batch: bool = False) -> Decimal | None:
    """What a call with this usage costs at this price; None when the price is unknown."""
    if price is None:
        return None
    total = (
        uncached_input_tokens(usage) * price.input
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_write_tokens * price.cache_write
        + usage.output_tokens * price.output
    )
    return _usd(total, price, batch)


def cost_saved_by_cache(
    usage: Usage, price: Price | None, *, batch: bool = False
) -> Decimal | None:
    """What the provider's prompt cache saved: the cache-read tokens at the full input price
    minus what they cost. Never negative; the surcharge on cache writes is part of the cost,
    and `cache_write_premium` reports it separately."""
    if price is None:
        return None
    saved = usage.cache_read_tokens * (price.input - price.cache_read)
    return max(_usd(saved, price, batch), Decimal(0))


def cache_write_premium(
    usage: Usage, price: Price | None, *, batch: bool = False
) -> Decimal | None:
    """What writing to the provider's prompt cache cost above the plain input price."""
    if price is None:
        return None
    premium = usage.cache_write_tokens * (price.cache_write - price.input)
    return max(_usd(premium, price, batch), Decimal(0))


def cost_saved_by_routing(
    usage: Usage, requested: Price | None, served: Price | None, *, batch: bool = False
) -> Decimal | None:
    """The cost at the requested model's price minus the cost at the price of what served it
    (negative when routing chose a dearer deployment); None when either price is unknown.

    A call answered from Sluice's own response cache saved its whole cost:
    `compute_cost(usage, price)` of the deployment that would have served it.
    """
    would_cost = compute_cost(usage, requested, batch=batch)
    did_cost = compute_cost(usage, served, batch=batch)
    if would_cost is None or did_cost is None:
        return None
    return would_cost - did_cost
