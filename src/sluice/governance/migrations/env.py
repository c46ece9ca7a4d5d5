"""Alembic environment: online migrations against `sqlalchemy.url`, one transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from sluice.governance.migrations import VERSION_TABLE
from sluice.governance.schema import metadata

LOCK_ID = 0x51_0C_E0_01  # any constant unique to Sluice's migrations
url = context.config.get_main_option("sqlalchemy.url")
if url is None:  # pragma: no cover - alembic_config() always sets it
    raise RuntimeError("sqlalchemy.url is not set")
if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table=VERSION_TABLE,
                render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # Replicas starting together: one migrates, the others wait, then find
                    # the store at head (PostgreSQL DDL is transactional).
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
                context.run_migrations()
    finally:
        engine.dispose()
