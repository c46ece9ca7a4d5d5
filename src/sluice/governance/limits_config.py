"""The `limits:` config section: rate limits and budgets by scope, counters, fail modes, ledger.

Scopes in config are named; the name `"*"` means "each one" (every user gets its own counter
with that limit) and a named entry wins over `"*"`. A virtual key carries its own limits and
budgets (`Identity.limits`, `Identity.budgets`); `keys` here is the default for keys that
carry none.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config_base import Frozen
from sluice.identity import Budget, RateLimits

EACH = "*"


class BudgetsConfig(Frozen):
    """Token and USD budgets per tenant, team, user (end user or key owner) and feature."""

    keys: list[Budget] = Field(default_factory=list)  # default for keys that carry none
    tenants: dict[str, list[Budget]] = Field(default_factory=dict)
    teams: dict[str, list[Budget]] = Field(default_factory=dict)
    users: dict[str, list[Budget]] = Field(default_factory=dict)
    features: dict[str, list[Budget]] = Field(default_factory=dict)
    # Counter backend unreachable: "closed" refuses calls a hard budget applies to (503),
    # "open" lets them through unmetered.
    on_backend_error: Literal["open", "closed"] = "closed"
    # The longest a call may hold its reservation.
    reservation_ttl_s: float = Field(default=900.0, gt=0)
    # Reservations in Redis are leases renewed while the call runs: a replica that dies
    # mid-call has its reservations released within this many seconds.
    reservation_lease_s: float = Field(default=20.0, gt=0)


class LedgerConfig(Frozen):
    """Durable spend ledger (`sluice_spend_ledger`), written in batches off the request path."""

    store_url: str | None = None  # SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…)
    batch_size: int = Field(default=200, ge=1)
    flush_interval_s: float = Field(default=0.5, gt=0)
    max_pending: int = Field(default=100_000, ge=1)  # rows buffered before new ones drop
    migrate: bool = True  # run the governance Alembic migrations (the ledger tables) first
    # Local append-only spool of rows not yet written (sluice.observe.spool): replayed after
    # a crash, so a killed replica loses no ledger row. null: no spool.
    spool_dir: str | None = "sluice-spool/ledger"


class LimitsConfig(Frozen):
    enabled: bool = False
    # memory: this process only; redis: exact across every replica sharing `redis_url`.
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "sluice:gov:"
    backend_timeout_s: float = Field(default=0.25, gt=0)
    # Gateway-wide limit over all callers.
    gateway: RateLimits = RateLimits()
    keys: RateLimits = RateLimits()  # default for keys that carry no limits of their own
    users: dict[str, RateLimits] = Field(default_factory=dict)
    teams: dict[str, RateLimits] = Field(default_factory=dict)
    tiers: dict[str, RateLimits] = Field(default_factory=dict)
    # Output tokens reserved for TPM and budgets when a request sets no max_tokens.
    default_output_tokens: int = Field(default=1024, ge=1)
    # Counter backend unreachable: "open" admits calls (counted, logged), "closed" refuses.
    on_backend_error: Literal["open", "closed"] = "open"
    budgets: BudgetsConfig = BudgetsConfig()
    ledger: LedgerConfig = LedgerConfig()
