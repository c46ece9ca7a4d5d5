"""Alembic migrations for the governance store, run in-process (`upgrade(url)`).

Revisions live in `versions/`; the chain is `0001_keys` → `0002_spend_ledger` → ….
The version table is `sluice_alembic_version`, so a database shared with other
applications' Alembic histories is not confused.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

VERSION_TABLE = "sluice_alembic_version"
_HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    # `%` is ConfigParser interpolation syntax; URLs may contain it (escaped passwords).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store at `url` to `revision` (blocking: call via `asyncio.to_thread`)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The revision the store is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    finally:
        engine.dispose()
