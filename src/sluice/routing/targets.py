"""What routing knows about each public model it may pick: its price and context window."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sluice.config import SluiceConfig
from sluice.cost.prices import Price, resolve_price


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    price: Price | None  # of the deployment that serves it first
    context_window: int | None  # the largest among its deployments; None: not known

    @property
    def unit_cost(self) -> Decimal:
        """Input plus output price per million tokens (unknown: dearest of all)."""
        if self.price is None:
            return Decimal("Infinity")
        return self.price.input + self.price.output

    def fits(self, tokens: int) -> bool:
        return self.context_window is None or tokens <= self.context_window


def targets_of(config: SluiceConfig) -> dict[str, Target]:
    """A Target for every public model the config serves."""
    by_id = {d.id: d for d in config.deployments}
    served: dict[str, list[str]] = {}
    for dep in config.deployments:
        for name in dep.public_names:
            served.setdefault(name, []).append(dep.id)
    for name, plan in config.models.items():
        if plan.deployments is not None:
            served[name] = list(plan.deployments)
    targets = {}
    for name, ids in served.items():
        deps = [by_id[i] for i in ids]
        first = deps[0]
        price = resolve_price(first.price, config.providers[first.provider].kind, first.model)
        windows = [d.context_window or (price.context_window if price else None) for d in deps]
        known = [w for w in windows if w is not None]
        window = max(known) if known and len(known) == len(windows) else None
        targets[name] = Target(name, price, window)
    return targets
