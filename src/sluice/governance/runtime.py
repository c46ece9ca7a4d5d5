"""`Governance`: the key store and the authenticator, built once per gateway.

`Governance.build(config)` reads the pepper from the environment and refuses to go on when
auth is on without one (unless `auth.insecure_dev_pepper`). Without a pepper and with auth
off there is no key store: the gateway serves everyone and the admin API says why it cannot
mint keys. `start()` runs the Alembic migrations (blocking I/O, in a thread).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from sluice.governance.auth import Authenticator
from sluice.governance.broadcast import KeyChanges
from sluice.governance.config import GovernanceConfig
from sluice.governance.keys import DEV_PEPPER
from sluice.governance.store import KeyStore

log = logging.getLogger("sluice.governance")


class GovernanceError(Exception):
    """A governance setup that cannot be used (no pepper with auth on)."""


def resolve_pepper(config: GovernanceConfig, env: Mapping[str, str]) -> bytes | None:
    auth = config.auth
    value = env.get(auth.pepper_env)
    if value:
        if len(value) < 16:
            raise GovernanceError(f"{auth.pepper_env} must be at least 16 characters long")
        return value.encode()
    if auth.insecure_dev_pepper:
        return DEV_PEPPER
    if auth.enabled:
        raise GovernanceError(
            f"governance.auth.enabled is true but {auth.pepper_env} is not set: set it to a "
            "long random secret (e.g. `openssl rand -hex 32`), the same on every replica, "
            "or for local development set governance.auth.insecure_dev_pepper: true"
        )
    return None


class Governance:
    def __init__(self, config: GovernanceConfig, store: KeyStore | None) -> None:
        self.config = config
        self.store = store
        self.auth = Authenticator(config.auth, store)
        # Redis backend: key changes reach every replica's cache at once, not after the TTL.
        self.changes: KeyChanges | None = None
        if store is not None and config.backend == "redis":
            self.changes = KeyChanges(config.redis_url, self.auth.forget, self.auth.clear)

    @classmethod
    def build(cls, config: GovernanceConfig, env: Mapping[str, str] | None = None) -> Governance:
        pepper = resolve_pepper(config, os.environ if env is None else env)
        if pepper == DEV_PEPPER:
            log.warning(
                "governance.auth.insecure_dev_pepper is on: key hashes use a public pepper; "
                "never run this way in production"
            )
        store = KeyStore(config.store_url, pepper) if pepper is not None else None
        return cls(config, store)

    @property
    def insecure(self) -> bool:
        """Auth off: every caller is served, as tenant "default"."""
        return not self.config.auth.enabled

    async def start(self) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.migrate)
        if self.changes is not None:
            await self.changes.start()

    async def key_changed(self, key_hash: str) -> None:
        """A key was updated or revoked here: forget it now, and tell the other replicas."""
        self.auth.forget(key_hash)
        if self.changes is not None:
            await self.changes.publish(key_hash)

    async def close(self) -> None:
        if self.changes is not None:
            await self.changes.close()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
