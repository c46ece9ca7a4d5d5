"""Model prices: the shipped table (`prices.yaml`) and a deployment's configured override.

`lookup_price(kind, model)` finds a model in the table: an exact name or alias first, then
the name with a dated-snapshot suffix stripped (`gpt-4o-2024-08-06` → `gpt-4o`,
`claude-3-5-haiku-20241022` → `claude-3-5-haiku`). An unknown model has no price (`None`,
never 0) and is logged once per model on the `sluice.cost` logger.

`resolve_price(configured, kind, model)` is what the pipeline calls for a deployment: its
configured `price:` wins over the table. A configured price that leaves out cache prices
gets them from the table's ratios for that model (e.g. 0.1x / 1.25x input on Anthropic
models, 0.5x / 1x on gpt-4o); for a model not in the table both default to the input
price, i.e. no cache discount and no write surcharge is assumed.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from typing import Any

import yaml

from sluice.config import PriceConfig

log = logging.getLogger("sluice.cost")

# -YYYY-MM-DD (OpenAI snapshots) or -YYYYMMDD (Anthropic snapshots) at the end of a name.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens, plus the limits the table knows for the model."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    batch_discount: Decimal = _ZERO  # fraction taken off every component for batch calls
    context_window: int | None = None
    max_output: int | None = None
    min_cache_tokens: int | None = None  # shortest prompt prefix the provider caches


def _decimal(value: Any) -> Decimal:
    # str() first: Decimal(0.075) would carry the float's binary error into every sum.
    return Decimal(str(value))


def _price_from_entry(entry: Mapping[str, Any]) -> Price:
    return Price(
        input=_decimal(entry["input"]),
        output=_decimal(entry["output"]),
        cache_read=_decimal(entry["cache_read"]),
        cache_write=_decimal(entry["cache_write"]),
        batch_discount=_decimal(entry.get("batch_discount", 0)),
        context_window=entry.get("context_window"),
        max_output=entry.get("max_output"),
        min_cache_tokens=entry.get("min_cache_tokens"),
    )


class PriceTable:
    """Prices by provider kind and model name (aliases expanded), with snapshot stripping."""

    def __init__(self, prices: Mapping[str, Mapping[str, Price]]) -> None:
        self._prices = {kind: dict(models) for kind, models in prices.items()}
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def from_yaml(cls, text: str) -> PriceTable:
        data = yaml.safe_load(text) or {}
        prices: dict[str, dict[str, Price]] = {}
        for kind, models in data.items():
            table = prices.setdefault(str(kind), {})
            for name, entry in (models or {}).items():
                price = _price_from_entry(entry)
                for alias in [name, *entry.get("aliases", [])]:
                    table[str(alias).lower()] = price
        return cls(prices)

    def find(self, provider_kind: str, model: str) -> Price | None:
        """The table's price for a model, or None; never logs."""
        models = self._prices.get(provider_kind)
        if not models:
            return None
        name = model.lower()
        found = models.get(name)
        if found is None:
            base = _SNAPSHOT.sub("", name)
            if base != name:
                found = models.get(base)
        return found

    def lookup(self, provider_kind: str, model: str) -> Price | None:
        """Like `find`, but an unknown model is logged (once per kind and model)."""
        found = self.find(provider_kind, model)
        if found is None and (provider_kind, model) not in self._warned:
            self._warned.add((provider_kind, model))
            log.warning(
                "no price known for %s model %r: its calls get no cost (set `price:` on "
                "the deployment)",
                provider_kind,
                model,
            )
        return found

    def resolve(
        self, configured: PriceConfig | None, provider_kind: str, model: str
    ) -> Price | None:
        """A deployment's configured price over the table's; see the module docstring."""
        if configured is None:
            return self.lookup(provider_kind, model)
        known = self.find(provider_kind, model)
        price_in = _decimal(configured.input)
        if configured.cache_read is not None:
            cache_read = _decimal(configured.cache_read)
        elif known is not None and known.input:
            cache_read = price_in * known.cache_read / known.input
        else:
            cache_read = price_in
        if configured.cache_write is not None:
            cache_write = _decimal(configured.cache_write)
        elif known is not None and known.input:
            cache_write = price_in * known.cache_write / known.input
        else:
            cache_write = price_in
        price = Price(
            input=price_in,
            output=_decimal(configured.output),
            cache_read=cache_read.normalize(),
            cache_write=cache_write.normalize(),
        )
        if known is not None:
            price = replace(
                price,
                batch_discount=known.batch_discount,
                context_window=known.context_window,
                max_output=known.max_output,
                min_cache_tokens=known.min_cache_tokens,
            )
        return price


@functools.cache
def default_price_table() -> PriceTable:
    """The table shipped with Sluice, loaded once per process."""
    text = resources.files("sluice.cost").joinpath("prices.yaml").read_text(encoding="utf-8")
    return PriceTable.from_yaml(text)


def lookup_price(provider_kind: str, model: str) -> Price | None:
    return default_price_table().lookup(provider_kind, model)


def resolve_price(
    deployment_price: PriceConfig | None, provider_kind: str, model: str
) -> Price | None:
    return default_price_table().resolve(deployment_price, provider_kind, model)
