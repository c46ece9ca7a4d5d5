"""compute_cost and the saving helpers, table-driven, in the neutral usage convention."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sluice.cost.compute import (
    cache_write_premium,
    compute_cost,
    cost_saved_by_cache,
    cost_saved_by_routing,
    uncached_input_tokens,
)
from sluice.cost.prices import Price, lookup_price
from sluice.types import Usage

D = Decimal


def _price(kind: str, model: str) -> Price:
    price = lookup_price(kind, model)
    assert price is not None
    return price


HAIKU_35 = _price("anthropic", "claude-3-5-haiku")  # $0.80 / $4.00, read $0.08, write $1.00
HAIKU_45 = _price("anthropic", "claude-haiku-4-5")  # $1 / $5, read $0.10, write $1.25
GPT_4O = _price("openai", "gpt-4o")  # $2.50 / $10, read $1.25


# (name, usage, price, expected USD). Usage is neutral: input_tokens includes cached tokens.
CASES = [
    # The worked example: 350 uncached input (Anthropic's convention) + 800 cache-read + 120
    # output → neutral input 1150. 350·0.8e-6 + 800·0.08e-6 + 120·4e-6 = 0.000824
    ("haiku-3.5 worked example", Usage(1150, 120, 800, 0), HAIKU_35, "0.000824"),
    # Same on Haiku 4.5: 350·1e-6 + 800·0.1e-6 + 120·5e-6 = 0.00035 + 0.00008 + 0.0006
    ("haiku-4.5 worked example", Usage(1150, 120, 800, 0), HAIKU_45, "0.00103"),
    ("no caching", Usage(1000, 500, 0, 0), HAIKU_45, "0.0035"),
    # 200 uncached + 1000 written at 1.25 + 50 out: 0.0002 + 0.00125 + 0.00025
    ("cache write", Usage(1200, 50, 0, 1000), HAIKU_45, "0.0017"),
    ("read and write", Usage(3000, 10, 1000, 1000), HAIKU_45, "0.00240"),
    ("openai cached", Usage(2048, 100, 1024, 0), GPT_4O, "0.00484"),
    ("zero usage", Usage(0, 0, 0, 0), GPT_4O, "0"),
    ("output only", Usage(0, 1_000_000, 0, 0), GPT_4O, "10"),
    # inconsistent usage (cached > input) never gives negative uncached tokens
    ("cached exceeds input", Usage(100, 0, 800, 0), HAIKU_35, "0.000064"),
    ("one token", Usage(1, 0, 0, 0), _price("openai", "gpt-4.1-nano"), "0.0000001"),
]


@pytest.mark.parametrize(("name", "usage", "price", "expected"), CASES, ids=[c[0] for c in CASES])
def test_compute_cost(name: str, usage: Usage, price: Price, expected: str) -> None:
    cost = compute_cost(usage, price)
    assert cost == D(expected)
    assert isinstance(cost, Decimal)


def test_cost_is_quantized_to_1e_10() -> None:
    price = Price(input=D("0.333333333333"), output=D(0), cache_read=D(0), cache_write=D(0))
    cost = compute_cost(Usage(input_tokens=1), price)
    assert cost == D("0.0000003333")
    assert cost is not None and cost.as_tuple().exponent == -10


def test_unknown_price_is_none_never_zero() -> None:
    usage = Usage(100, 100, 0, 0)
    assert compute_cost(usage, None) is None
    assert cost_saved_by_cache(usage, None) is None
    assert cache_write_premium(usage, None) is None
    assert cost_saved_by_routing(usage, None, GPT_4O) is None
    assert cost_saved_by_routing(usage, GPT_4O, None) is None


def test_batch_discount_applies_to_every_component() -> None:
    usage = Usage(1150, 120, 800, 0)
    assert compute_cost(usage, HAIKU_35, batch=True) == D("0.000412")
    no_discount = Price(input=D(1), output=D(1), cache_read=D(1), cache_write=D(1))
    assert compute_cost(Usage(10, 10), no_discount, batch=True) == D("0.00002")


def test_uncached_input_tokens() -> None:
    assert uncached_input_tokens(Usage(1150, 0, 800, 0)) == 350
    assert uncached_input_tokens(Usage(1000, 0, 300, 200)) == 500
    assert uncached_input_tokens(Usage(10, 0, 300, 0)) == 0


@pytest.mark.parametrize(
    ("usage", "price", "saved"),
    [
        # 800 read tokens would have cost 800·0.8e-6 and cost 800·0.08e-6
        (Usage(1150, 120, 800, 0), HAIKU_35, "0.000576"),
        (Usage(1150, 120, 800, 0), HAIKU_45, "0.00072"),
        (Usage(2048, 100, 1024, 0), GPT_4O, "0.00128"),
        (Usage(1000, 10, 0, 0), HAIKU_45, "0"),
        (Usage(1200, 50, 0, 1000), HAIKU_45, "0"),  # a write saves nothing (yet)
    ],
)
def test_cost_saved_by_cache(usage: Usage, price: Price, saved: str) -> None:
    assert cost_saved_by_cache(usage, price) == D(saved)


def test_saving_plus_cost_is_the_uncached_cost() -> None:
    usage = Usage(1150, 120, 800, 0)
    cost, saved = compute_cost(usage, HAIKU_45), cost_saved_by_cache(usage, HAIKU_45)
    uncached = compute_cost(Usage(1150, 120, 0, 0), HAIKU_45)
    assert cost is not None and saved is not None
    assert cost + saved == uncached


def test_cache_write_premium() -> None:
    # 1000 written at $1.25 instead of $1.00
    assert cache_write_premium(Usage(1200, 50, 0, 1000), HAIKU_45) == D("0.00025")
    assert cache_write_premium(Usage(1200, 50, 0, 1000), GPT_4O) == D(0)


def test_cost_saved_by_routing() -> None:
    usage = Usage(1000, 1000, 0, 0)
    opus, haiku = _price("anthropic", "claude-opus-4"), HAIKU_45
    # opus: 0.015 + 0.075 = 0.09; haiku: 0.001 + 0.005 = 0.006
    assert cost_saved_by_routing(usage, opus, haiku) == D("0.084")
    assert cost_saved_by_routing(usage, haiku, opus) == D("-0.084")
