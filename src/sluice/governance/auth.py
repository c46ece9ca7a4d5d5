"""Virtual keys → `Identity`: `authenticate(headers)`, the one check every data-plane route
shares (chat, `/v1/models`, `/v1/sluice/usage`), and `admit`, the model allow-list and the
request labels.

The auth stage (`sluice.stages.auth`, first in the pipeline) runs both for every call and
puts the identity on `CallContext.identity`; the HTTP server authenticates before reading the
body (an unauthenticated caller learns nothing about its body) and hands the stage the
result. Auth off: every call is `Identity.anonymous()`.

Keys come from `Authorization: Bearer` (OpenAI clients) or `x-api-key` (Anthropic
clients). Lookups are by peppered hash and confirmed with a constant-time comparison;
results (found or not) are cached for `auth.key_cache_ttl_s`, which bounds how long a key
revoked on another replica keeps working here. Tenant, team and tier always come from the
key, never from client headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from sqlalchemy.exc import SQLAlchemyError

from sluice.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from sluice.governance.config import AuthConfig
from sluice.governance.keys import (
    KEY_PREFIX,
    MAX_KEY_CHARS,
    KeyRecord,
    clean_label,
    same_hash,
)
from sluice.governance.spec import Identity
from sluice.governance.store import KeyStore
from sluice.types import ChatRequest

log = logging.getLogger("sluice.auth")

# End user, feature and session labels: the width of their columns in the records and the
# spend ledger (VARCHAR(255)); printable, no NUL (PostgreSQL text refuses it).
MAX_LABEL_CHARS = 255
_MISSING = (
    "missing API key: send 'Authorization: Bearer sk-sluice-…' (OpenAI clients) "
    "or 'x-api-key: sk-sluice-…' (Anthropic clients)"
)
_INVALID = "invalid API key"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer` or `x-api-key` (refused when they differ)."""
    scheme, _, bearer = headers.get("authorization", "").strip().partition(" ")
    found = {
        k
        for k in (
            bearer.strip() if scheme.lower() == "bearer" else "",
            headers.get("x-api-key", "").strip(),
        )
        if k
    }
    if len(found) > 1:
        raise AuthenticationError(
            "two different API keys (Authorization and x-api-key); send one",
            code="invalid_api_key",
        )
    return found.pop() if found else None


class KeyCache:
    """Lookups by key hash, each trusted for `ttl_s` seconds; one store query at a time per
    hash (concurrent requests with the same key wait for the same lookup)."""

    def __init__(self, store: KeyStore, ttl_s: float, max_entries: int) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: dict[str, tuple[float, KeyRecord | None, Identity | None]] = {}
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}

    async def get(self, key_hash: str) -> tuple[KeyRecord | None, Identity | None]:
        """The key's record and the identity built from it (built once per lookup)."""
        cached = self._entries.get(key_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        record = await self._lookup(key_hash)
        identity = record.identity() if record is not None else None
        if self._ttl_s > 0:
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude but bounded; refills within one TTL
            self._entries[key_hash] = (time.monotonic() + self._ttl_s, record, identity)
        return record, identity

    async def _lookup(self, key_hash: str) -> KeyRecord | None:
        pending = self._inflight.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[key_hash] = future
        try:
            record = await asyncio.to_thread(self._store.find_hash, key_hash)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._inflight[key_hash]
        future.set_result(record)
        return record

    def forget(self, key_hash: str) -> None:
        """Drop one entry (a key changed on this replica: seen at once, not after the TTL)."""
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self._entries.clear()


class Authenticator:
    def __init__(self, config: AuthConfig, store: KeyStore | None) -> None:
        self.enabled = config.enabled
        self.store = store
        self.cache = (
            KeyCache(store, config.key_cache_ttl_s, config.key_cache_size) if store else None
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """The caller's identity from its request headers (anonymous: auth is off).
        Raises 401 / 503."""
        if not self.enabled:
            return Identity.anonymous()
        return await self.authenticate_key(presented_key(headers))

    async def authenticate_key(self, key: str | None) -> Identity:
        """The identity of a presented key (anonymous: auth is off). Raises 401 / 503."""
        if not self.enabled:
            return Identity.anonymous()
        if key is None:
            raise AuthenticationError(_MISSING, code="missing_api_key")
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS or self.store is None:
            raise AuthenticationError(_INVALID, code="invalid_api_key")
        assert self.cache is not None
        key_hash = self.store.hash(key)
        try:
            record, identity = await self.cache.get(key_hash)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("key store unavailable: %s", type(exc).__name__)
            raise ServiceUnavailableError(
                "the key store is unavailable; try again", code="key_store_unavailable"
            ) from None
        if record is None or identity is None or not same_hash(record.key_hash, key_hash):
            raise AuthenticationError(_INVALID, code="invalid_api_key")
        problem = record.problem()
        if problem is not None:
            code = "key_revoked" if record.revoked_at is not None else "key_expired"
            raise AuthenticationError(problem, code=code)
        return identity

    def forget(self, key_hash: str) -> None:
        if self.cache is not None:
            self.cache.forget(key_hash)

    def clear(self) -> None:
        if self.cache is not None:
            self.cache.clear()

    def admit(self, identity: Identity, req: ChatRequest) -> None:
        """Refuse models the key may not use; settle the request labels (`CallMeta`'s
        precedence rule: header, then body)."""
        meta = req.meta
        if not identity.allows(req.model):
            raise PermissionDeniedError(
                f"this API key may not use model {req.model!r}",
                param="model",
                code="model_not_allowed",
            )
        headers = meta.headers
        meta.user = _label(headers.get("x-sluice-user") or meta.user, "user")
        meta.feature = _label(
            headers.get("x-sluice-feature") or _text(meta.metadata.get("feature")), "feature"
        )
        meta.session = _label(
            headers.get("x-sluice-session") or _text(meta.metadata.get("session_id")), "session"
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _label(value: str | None, what: str) -> str | None:
    if value and not clean_label(value):
        raise InvalidRequestError(
            f"the {what} label must be 1 to {MAX_LABEL_CHARS} printable characters",
            param=what,
        )
    return value or None
