"""Governance tables as SQLAlchemy Core, the same on SQLite and PostgreSQL.

Alembic migrations (`sluice.governance.migrations`) create and evolve them; this module is
what the running code queries. Times are epoch seconds (floats), like the call records.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Double, Index, MetaData, String, Table

metadata = MetaData()

# One row per virtual key. The key itself is never stored: `key_hash` is
# HMAC-SHA256(pepper, key) in hex, `prefix` its first characters for people to recognize.
keys = Table(
    "sluice_keys",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("name", String(255), nullable=True),
    Column("tenant", String(255), nullable=False),
    Column("team", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("tier", String(255), nullable=True),
    Column("allowed_models", JSON, nullable=False),  # list of model/route names; [] = all
    Column("limits", JSON, nullable=False),  # RateLimits as a dict
    Column("budgets", JSON, nullable=False),  # list of Budget dicts
    Column("meta", JSON, nullable=False),  # free-form metadata
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("expires_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    Index("ix_sluice_keys_key_hash", "key_hash", unique=True),
    Index("ix_sluice_keys_tenant", "tenant"),
)
