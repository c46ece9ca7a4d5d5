"""Async jobs (`sluice_jobs`) and their webhook delivery log (`sluice_job_deliveries`).

Revision ID: j0001_jobs
Revises: (none; branch `jobs`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0001_jobs"
down_revision: str | None = None
branch_labels = ("jobs",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sluice_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_index("ix_sluice_jobs_tenant_created", "sluice_jobs", ["tenant", "created_at"])
    op.create_table(
        "sluice_job_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=False),
    )
    op.create_index("ix_sluice_job_deliveries_job", "sluice_job_deliveries", ["job_id"])


def downgrade() -> None:
    op.drop_table("sluice_job_deliveries")
    op.drop_table("sluice_jobs")
