"""The shipped price table, snapshot stripping, and configured overrides."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from sluice.config import PriceConfig
from sluice.cost.prices import Price, PriceTable, default_price_table, lookup_price, resolve_price

D = Decimal

REQUIRED = {
    "openai": [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
    ],
    "anthropic": [
        "claude-3-5-haiku",
        "claude-3-5-haiku-latest",
        "claude-haiku-4-5",
        "claude-sonnet-4",
        "claude-sonnet-4-5",
        "claude-opus-4",
        "claude-opus-4-1",
    ],
}


@pytest.mark.parametrize(
    ("kind", "model"), [(kind, model) for kind, models in REQUIRED.items() for model in models]
)
def test_table_has_model_with_sane_prices(kind: str, model: str) -> None:
    price = lookup_price(kind, model)
    assert price is not None
    assert D(0) < price.cache_read < price.input < price.output
    assert price.batch_discount == D("0.5")
    assert price.context_window and price.max_output
    assert price.max_output < price.context_window


@pytest.mark.parametrize("model", REQUIRED["anthropic"])
def test_anthropic_cache_ratios(model: str) -> None:
    price = lookup_price("anthropic", model)
    assert price is not None
    assert price.cache_read == price.input * D("0.1")
    assert price.cache_write == price.input * D("1.25")


@pytest.mark.parametrize(
    ("model", "ratio"),
    [
        ("gpt-4o", "0.5"),
        ("gpt-4o-mini", "0.5"),
        ("gpt-4.1", "0.25"),
        ("gpt-4.1-mini", "0.25"),
        ("gpt-4.1-nano", "0.25"),
        ("o3", "0.25"),
        ("o4-mini", "0.25"),
        ("gpt-5", "0.1"),
        ("gpt-5-mini", "0.1"),
    ],
)
def test_openai_cache_ratios(model: str, ratio: str) -> None:
    price = lookup_price("openai", model)
    assert price is not None
    assert price.cache_read == price.input * D(ratio)
    assert price.cache_write == price.input  # no write surcharge: billed as plain input


@pytest.mark.parametrize(
    ("kind", "model", "base"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai", "o3-2025-04-16", "o3"),
        ("openai", "GPT-4o", "gpt-4o"),
        ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("anthropic", "claude-sonnet-4-0", "claude-sonnet-4"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ],
)
def test_snapshots_and_aliases_resolve_to_base(kind: str, model: str, base: str) -> None:
    assert lookup_price(kind, model) == lookup_price(kind, base)


def test_exact_entry_wins_over_snapshot_stripping() -> None:
    launch = lookup_price("openai", "gpt-4o-2024-05-13")
    assert launch is not None and launch.input == D(5)
    assert lookup_price("openai", "gpt-4o") != launch


def test_kind_matters() -> None:
    assert lookup_price("anthropic", "gpt-4o") is None
    assert lookup_price("nonesuch", "gpt-4o") is None


def test_unknown_model_is_none_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.from_yaml(
        "openai:\n  m: {input: 1, output: 2, cache_read: 1, cache_write: 1}"
    )
    with caplog.at_level(logging.WARNING, logger="sluice.cost"):
        assert table.lookup("openai", "llama-3-70b") is None
        assert table.lookup("openai", "llama-3-70b") is None
        assert table.lookup("openai", "qwen") is None
    messages = [r.getMessage() for r in caplog.records if r.name == "sluice.cost"]
    assert len(messages) == 2
    assert "llama-3-70b" in messages[0] and "qwen" in messages[1]


def test_default_table_is_loaded_once() -> None:
    assert default_price_table() is default_price_table()


def test_prices_are_exact_decimals() -> None:
    price = lookup_price("openai", "gpt-4o-mini")
    assert price is not None
    assert price.cache_read == D("0.075")  # not 0.07499999999999999722444243843710864894092


# --- configured prices -----------------------------------------------------------------


def test_configured_price_overrides_table() -> None:
    price = resolve_price(
        PriceConfig(input=1, output=2, cache_read=0.5, cache_write=3), "anthropic", "claude-opus-4"
    )
    assert price is not None
    assert (price.input, price.output, price.cache_read, price.cache_write) == (
        D(1),
        D(2),
        D("0.5"),
        D(3),
    )
    # what the table knows beyond prices is kept
    assert price.batch_discount == D("0.5") and price.context_window == 200000


def test_configured_price_without_cache_prices_uses_table_ratios() -> None:
    anthropic = resolve_price(PriceConfig(input=2, output=10), "anthropic", "claude-sonnet-4-5")
    assert anthropic is not None
    assert anthropic.cache_read == D("0.2") and anthropic.cache_write == D("2.5")
    openai = resolve_price(PriceConfig(input=2, output=8), "openai", "gpt-4o-2024-08-06")
    assert openai is not None
    assert openai.cache_read == D(1) and openai.cache_write == D(2)


def test_configured_price_for_unknown_model_defaults_cache_to_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sluice.cost"):
        price = resolve_price(PriceConfig(input=0.2, output=0.6), "openai", "my-local-llama")
    tenth = D("0.2")
    assert price == Price(input=tenth, output=D("0.6"), cache_read=tenth, cache_write=tenth)
    assert not caplog.records  # a configured price is not "unknown"


def test_no_configured_price_uses_table() -> None:
    assert resolve_price(None, "openai", "gpt-5") == lookup_price("openai", "gpt-5")
    assert resolve_price(None, "openai", "not-a-model") is None
