"""Virtual keys: minting, peppered hashing, and the request shapes of the admin API.

A key is `sk-sluice-` + 43 URL-safe characters (256 random bits). Only
HMAC-SHA256(pepper, key) is stored, so a leaked database does not yield usable keys and a
key is shown exactly once, when it is created.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from sluice.config_base import Frozen
from sluice.governance.spec import Budget, Identity, RateLimits

KEY_PREFIX = "sk-sluice-"
_SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 6  # enough to tell keys apart in a list
MAX_KEY_CHARS = 200  # anything longer is not one of ours; refused before hashing
# Used only with `auth.insecure_dev_pepper`: public, so hashes made with it protect nothing.
DEV_PEPPER = b"sluice-insecure-development-pepper"
_NAME_CHARS = 255


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def hash_key(key: str, pepper: bytes) -> str:
    """HMAC-SHA256 of the key under the server's pepper, hex."""
    return hmac.digest(pepper, key.encode("utf-8", "surrogatepass"), "sha256").hex()


def same_hash(a: str, b: str) -> bool:
    """Constant-time equality of two hex digests."""
    return hmac.compare_digest(a.encode(), b.encode())


def shown_prefix(key: str) -> str:
    return key[:_SHOWN_PREFIX_CHARS]


def clean_label(text: str) -> bool:
    """A name both databases store as given: 1-255 characters, no control characters, valid
    UTF-8 (PostgreSQL refuses NUL; lone surrogates cannot be encoded)."""
    if not 0 < len(text) <= _NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# --- admin API request bodies ------------------------------------------------------------


class _KeyFields(Frozen):
    name: str | None = None
    team: str | None = None
    user: str | None = None
    tier: str | None = None
    allowed_models: list[str] | None = Field(default=None, max_length=1000)
    limits: RateLimits | None = None
    budgets: list[Budget] | None = Field(default=None, max_length=100)
    metadata: dict[str, Any] | None = None
    # Epoch seconds; null clears the expiry (update) or means "never" (create).
    expires_at: float | None = Field(default=None, gt=0, lt=1e11)

    @field_validator("name", "team", "user", "tier")
    @classmethod
    def _clean(cls, text: str | None) -> str | None:
        if text is not None and not clean_label(text):
            raise ValueError(f"must be 1 to {_NAME_CHARS} printable characters")
        return text

    @field_validator("allowed_models")
    @classmethod
    def _model_names(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and not all(clean_label(n) for n in names):
            raise ValueError(f"model names must be 1 to {_NAME_CHARS} printable characters")
        return names

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > 100:
            raise ValueError("metadata may have at most 100 entries")
        return value


class KeyCreate(_KeyFields):
    """`POST /admin/keys`: tenant is required; everything else optional."""

    tenant: str = Field(min_length=1, max_length=_NAME_CHARS)

    @field_validator("tenant")
    @classmethod
    def _clean_tenant(cls, text: str) -> str:
        if not clean_label(text):
            raise ValueError(f"must be 1 to {_NAME_CHARS} printable characters")
        return text


class KeyUpdate(_KeyFields):
    """`PATCH /admin/keys/{id}`: only the fields present change; tenant never does."""


# --- the stored key ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class KeyRecord:
    key_id: str
    key_hash: str
    prefix: str
    tenant: str
    name: str | None = None
    team: str | None = None
    user: str | None = None
    tier: str | None = None
    allowed_models: tuple[str, ...] = ()
    limits: RateLimits = field(default_factory=RateLimits)
    budgets: tuple[Budget, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None

    def problem(self, now: float | None = None) -> str | None:
        """Why this key may not be used right now (None: it may)."""
        if self.revoked_at is not None:
            return "this API key has been revoked"
        if self.expires_at is not None and self.expires_at <= (now or time.time()):
            return "this API key has expired"
        return None

    def identity(self) -> Identity:
        return Identity(
            key_id=self.key_id,
            tenant=self.tenant,
            team=self.team,
            user=self.user,
            tier=self.tier,
            allowed_models=self.allowed_models,
            limits=self.limits,
            budgets=self.budgets,
            metadata=dict(self.metadata),
        )

    def public(self) -> dict[str, Any]:
        """What the admin API and CLI show: everything but the hash."""
        return {
            "key_id": self.key_id,
            "prefix": self.prefix,
            "name": self.name,
            "tenant": self.tenant,
            "team": self.team,
            "user": self.user,
            "tier": self.tier,
            "allowed_models": list(self.allowed_models),
            "limits": self.limits.model_dump(),
            "budgets": [b.model_dump() for b in self.budgets],
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "status": self.status(),
        }

    def status(self, now: float | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or time.time()):
            return "expired"
        return "active"


def allows_model(identity: Identity, model: str) -> bool:
    return identity.allows(model)
