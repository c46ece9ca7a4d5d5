"""Alembic environment: online migrations against `sqlalchemy.url`, one transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from sluice.governance.migrations import VERSION_TABLE
from sluice.governance.schema import metadata

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
                context.run_migrations()
    finally:
        engine.dispose()
