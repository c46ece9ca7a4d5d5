"""Alembic environment: online migrations on the connection `sluice.state.migrations`
hands over (already in a transaction, under the replica lock)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sluice.state.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):  # pragma: no cover - always set by upgrade()
    raise RuntimeError("run migrations through sluice.state.migrations")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=context.config.attributes["version_table"],
    render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite
)
with context.begin_transaction():
    context.run_migrations()
