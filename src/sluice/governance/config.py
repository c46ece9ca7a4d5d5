"""The `governance:` config section: who may call (auth) and where keys live (store).

The limits helper's sections (`limits`, `budgets`, fail modes) hang off the same model; the
counter backend (`backend`, `redis_url`) is shared by limits, budgets and key-revocation
broadcasts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config_base import Frozen


class AuthConfig(Frozen):
    # On by default: a config that says nothing about auth serves virtual keys only. The
    # simulator-only built-in config switches it off (SLUICE_AUTH=true turns it back on).
    enabled: bool = True
    # Name of the environment variable holding the server-side pepper for key hashes.
    pepper_env: str = "SLUICE_KEY_PEPPER"
    # Local development only: start without a pepper (keys hashed with a fixed, public one).
    insecure_dev_pepper: bool = False
    # How long a key lookup is trusted before the store is asked again; bounds how late a
    # revocation on another replica is seen.
    key_cache_ttl_s: float = Field(default=0.5, ge=0, le=60)
    key_cache_size: int = Field(default=100_000, ge=1)


class GovernanceConfig(Frozen):
    auth: AuthConfig = AuthConfig()
    # Keys (and the spend ledger): SQLite for one process, PostgreSQL for several replicas.
    store_url: str = "sqlite:///sluice.db"
    # Counters for limits and budgets, and revocation broadcasts: in-process or Redis.
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # limits: ... and budgets: ... (rate limits and budgets) are added here by that module.
