"""pgqueuer's tables, the shared work queue on PostgreSQL (sluice.queue.pg), in our history.

pgqueuer declares its schema itself (`schema_ddl.render_install`: an enum, the queue, log,
schedules and statistics tables, indexes, the NOTIFY trigger), named after a prefix —
`queue.name`, given here as this branch's "table" (a prefix other than the default keeps
its revision in a version table of its own, like a renamed records table). This revision
runs that DDL inside the migration's transaction, under the migration lock, so replicas
starting together never race and a failed install leaves nothing half made. A database
where an older Sluice let pgqueuer install the tables itself is adopted as it is (the
schema is pgqueuer 1.6's either way). On SQLite it does nothing: the embedded queue is
branch `queue`. A pgqueuer release that changes its schema gets a revision after this one
(tests/integration/test_pgqueue_schema.py fails until then).

Revision ID: p0001_pgqueuer
Revises: (none; branch `pgqueue`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from pgqueuer.adapters.persistence import schema_ddl, schema_plan
from pgqueuer.domain.settings import DBSettings

revision = "p0001_pgqueuer"
down_revision: str | None = None
branch_labels = ("pgqueue",)
depends_on = None


def _settings() -> DBSettings | None:
    if op.get_bind().dialect.name != "postgresql":
        return None
    return DBSettings(prefix=str(context.config.attributes["tables"]["pgqueue"]))


def upgrade() -> None:
    settings = _settings()
    if settings is None:
        return
    # Also pgqueuer's own schema lock (held by `Queries.install`, as an older Sluice ran
    # it): a replica of the old version starting meanwhile waits for this transaction.
    lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
    op.get_bind().execute(lock, {"key": schema_plan.advisory_key(settings)})
    if sa.inspect(op.get_bind()).has_table(settings.queue_table):
        return  # installed by pgqueuer itself (Sluice before this revision): adopted
    op.execute(sa.text(schema_ddl.render_install(settings, create_schema=False)))


def downgrade() -> None:
    settings = _settings()
    if settings is not None:
        op.execute(sa.text(schema_ddl.render_uninstall(settings)))
