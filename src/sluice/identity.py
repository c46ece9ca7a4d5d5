"""Who a call belongs to: `Identity`, and the limit and budget shapes a key carries.

A leaf of the core layer (it imports only `config_base`), so every layer can name it.

The auth stage (`sluice.stages.auth`) resolves it once per call, first in the pipeline, and
puts it on `CallContext.identity`: frozen, never None. With auth off every call gets
`Identity.anonymous()` (tenant "default", no key, every model allowed). Tenant, team and tier
come from the virtual key only, never from client headers; what the caller *says* about a
call (end user, feature, session) are request labels on `CallMeta` (see `CallMeta` for the
one precedence rule).

A virtual key carries its own limits and budgets; config adds limits per user, team, tier and
gateway-wide, and budgets per tenant, team, user and feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from sluice.config_base import Frozen

Period = Literal["daily", "weekly", "monthly", "total"]  # UTC; weeks start on Monday


class RateLimits(Frozen):
    rpm: int | None = Field(default=None, ge=1)  # requests per minute
    tpm: int | None = Field(default=None, ge=1)  # tokens per minute (input + reserved output)


class Budget(Frozen):
    period: Period = "monthly"
    usd: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, ge=1)
    # hard: refuse with 429 budget_exceeded; soft: alert (and route to `downgrade_to` if set).
    kind: Literal["hard", "soft"] = "hard"
    downgrade_to: str | None = None  # a cheaper public model or route for soft budgets


@dataclass(slots=True, frozen=True)
class Identity:
    """Who a request belongs to, resolved from a virtual key (or the anonymous default)."""

    key_id: str | None = None
    tenant: str = "default"
    team: str | None = None
    user: str | None = None  # the key's owner; the end user of a call is CallMeta.user
    tier: str | None = None
    allowed_models: tuple[str, ...] = ()  # empty: every model and route
    limits: RateLimits = field(default_factory=RateLimits)
    budgets: tuple[Budget, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def anonymous(cls) -> Identity:
        """The identity of every call when auth is off: tenant "default", no key."""
        return ANONYMOUS

    @property
    def is_anonymous(self) -> bool:
        return self.key_id is None

    def allows(self, model: str) -> bool:
        """Whether this identity may call `model` (a public model or route name)."""
        return not self.allowed_models or model in self.allowed_models


ANONYMOUS = Identity()


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the caller presented, for the auth stage to resolve into an `Identity`: the API
    key it sent (never printed), or the identity an entry point already resolved from it
    (the HTTP server authenticates before it reads the body, so an unauthenticated caller
    learns nothing about its body; the stage then does not look the key up again)."""

    key: str | None = field(default=None, repr=False)
    resolved: Identity | None = None
