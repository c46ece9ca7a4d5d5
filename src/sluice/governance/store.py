"""`KeyStore`: virtual keys in SQLite or PostgreSQL (SQLAlchemy Core, table `sluice_keys`).

Every method is synchronous and does blocking I/O: from the event loop call them through
`asyncio.to_thread`. The table is defined in `sluice.state.tables` and made by the
`governance` branch of the one Alembic environment (`migrate()`), never by `create_all`, so
SQLite and PostgreSQL stores evolve the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from sluice.governance.keys import (
    KeyCreate,
    KeyRecord,
    KeyUpdate,
    hash_key,
    new_key,
    new_key_id,
    shown_prefix,
)
from sluice.governance.spec import Budget, RateLimits
from sluice.state import engines, migrations
from sluice.state.tables import keys

# Request-body field -> column, for the fields a create or update may set.
_COLUMN_OF = {
    "name": "name",
    "team": "team",
    "user": "user_id",
    "tier": "tier",
    "allowed_models": "allowed_models",
    "limits": "limits",
    "budgets": "budgets",
    "metadata": "meta",
    "expires_at": "expires_at",
}
MAX_LIST = 1000


class KeyStore:
    def __init__(self, url: str, pepper: bytes) -> None:
        self.url = url
        self._pepper = pepper
        self.engine: Engine = engines.acquire(url)  # shared with every store on this URL

    def migrate(self) -> None:
        """Create or upgrade the governance tables (idempotent)."""
        migrations.upgrade(self.url, "governance")

    def close(self) -> None:
        engines.release(self.engine)

    def hash(self, key: str) -> str:
        return hash_key(key, self._pepper)

    # --- writes ---------------------------------------------------------------------------

    def create(self, spec: KeyCreate, now: float | None = None) -> tuple[KeyRecord, str]:
        """A new key: its record and the key itself (the only time it is ever available)."""
        now = time.time() if now is None else now
        for _ in range(3):  # a hash or id collision is astronomically unlikely; retry anyway
            key = new_key()
            row: dict[str, Any] = {
                "key_id": new_key_id(),
                "key_hash": self.hash(key),
                "prefix": shown_prefix(key),
                "tenant": spec.tenant,
                "created_at": now,
                "updated_at": now,
                "revoked_at": None,
                **_defaults(),
                **_columns(spec, set(_COLUMN_OF)),
            }
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(keys).values(row))
            except IntegrityError:
                continue
            return _record(row), key
        raise RuntimeError("could not mint a unique key")  # pragma: no cover

    def update(self, key_id: str, patch: KeyUpdate, now: float | None = None) -> KeyRecord | None:
        """Apply the fields present in `patch`; None when there is no such key."""
        values = _columns(patch, patch.model_fields_set)
        values["updated_at"] = time.time() if now is None else now
        with self.engine.begin() as conn:
            done = conn.execute(update(keys).where(keys.c.key_id == key_id).values(values))
            if done.rowcount == 0:
                return None
        return self.get(key_id)

    def revoke(self, key_id: str, now: float | None = None) -> KeyRecord | None:
        """Mark the key revoked (kept for audit; revoking twice keeps the first time)."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            conn.execute(
                update(keys)
                .where(keys.c.key_id == key_id, keys.c.revoked_at.is_(None))
                .values(revoked_at=now, updated_at=now)
            )
        return self.get(key_id)

    # --- reads ----------------------------------------------------------------------------

    def get(self, key_id: str) -> KeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(keys).where(keys.c.key_id == key_id)).mappings().first()
        return _record(row) if row is not None else None

    def find(self, key: str) -> KeyRecord | None:
        """The record for a presented key, whatever its state (None: not one of ours)."""
        return self.find_hash(self.hash(key))

    def find_hash(self, key_hash: str) -> KeyRecord | None:
        with self.engine.connect() as conn:
            query = select(keys).where(keys.c.key_hash == key_hash)
            row = conn.execute(query).mappings().first()
        return _record(row) if row is not None else None

    def list(self, tenant: str | None = None, limit: int = 100, offset: int = 0) -> list[KeyRecord]:
        query = select(keys).order_by(keys.c.created_at, keys.c.key_id)
        if tenant is not None:
            query = query.where(keys.c.tenant == tenant)
        query = query.limit(max(0, min(limit, MAX_LIST))).offset(max(0, offset))
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]


def _defaults() -> dict[str, Any]:
    return {
        "name": None,
        "team": None,
        "user_id": None,
        "tier": None,
        "allowed_models": [],
        "limits": {},
        "budgets": [],
        "meta": {},
        "expires_at": None,
    }


def _columns(spec: KeyCreate | KeyUpdate, fields: set[str]) -> dict[str, Any]:
    """Column values for the given request fields; null list/dict fields mean "empty"."""
    out: dict[str, Any] = {}
    empty = _defaults()
    for name in fields & set(_COLUMN_OF):
        column = _COLUMN_OF[name]
        value = getattr(spec, name)
        if value is None:
            out[column] = empty[column]
        elif name == "limits":
            out[column] = value.model_dump(exclude_none=True)
        elif name == "budgets":
            out[column] = [b.model_dump(exclude_none=True) for b in value]
        else:
            out[column] = value
    return out


def _record(row: Mapping[Any, Any]) -> KeyRecord:
    return KeyRecord(
        key_id=row["key_id"],
        key_hash=row["key_hash"],
        prefix=row["prefix"],
        tenant=row["tenant"],
        name=row["name"],
        team=row["team"],
        user=row["user_id"],
        tier=row["tier"],
        allowed_models=tuple(row["allowed_models"] or ()),
        limits=RateLimits.model_validate(row["limits"] or {}),
        budgets=tuple(Budget.model_validate(b) for b in row["budgets"] or ()),
        metadata=dict(row["meta"] or {}),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        expires_at=None if row["expires_at"] is None else float(row["expires_at"]),
        revoked_at=None if row["revoked_at"] is None else float(row["revoked_at"]),
    )
