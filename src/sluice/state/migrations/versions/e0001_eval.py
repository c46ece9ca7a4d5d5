"""Evaluation tables: user feedback, saved eval runs, shadow pairs, online scores.

Adopts `sluice_feedback` and `sluice_eval_results` made by Sluice's old `create_all` (same
columns), else creates them; creates `sluice_shadow_pairs` and `sluice_online_scores`.

Revision ID: e0001_eval
Revises: (none; branch `eval`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0001_eval"
down_revision: str | None = None
branch_labels = ("eval",)
depends_on = None

_TABLES = ("sluice_feedback", "sluice_eval_results", "sluice_shadow_pairs", "sluice_online_scores")


def _columns(name: str) -> list[sa.Column[object]]:
    s, d, t = sa.String, sa.Double, sa.Text
    if name == "sluice_feedback":
        return [
            sa.Column("tenant", s(255), primary_key=True),
            sa.Column("request_id", s(128), primary_key=True),
            sa.Column("key_id", s(255), nullable=True),
            sa.Column("score", d(), nullable=False),
            sa.Column("thumbs", s(8), nullable=True),
            sa.Column("comment", t(), nullable=True),
            sa.Column("tags", t(), nullable=False),
            sa.Column("ts", d(), nullable=False),
        ]
    if name == "sluice_eval_results":
        return [
            sa.Column("run_id", s(64), primary_key=True),
            sa.Column("target", s(255), primary_key=True),
            sa.Column("item_id", s(255), primary_key=True),
            sa.Column("dataset", s(512), nullable=False),
            sa.Column("ts", d(), nullable=False),
            sa.Column("score", d(), nullable=False),
            sa.Column("passed", sa.Boolean(), nullable=False),
            sa.Column("scores", t(), nullable=False),
            sa.Column("request_id", s(128), nullable=False),
            sa.Column("latency_ms", d(), nullable=False),
            sa.Column("cost_usd", s(40), nullable=True),
            sa.Column("cost_source", s(16), nullable=False),
            sa.Column("error", t(), nullable=True),
            sa.Column("output", t(), nullable=True),
        ]
    if name == "sluice_shadow_pairs":
        return [
            sa.Column("request_id", s(128), primary_key=True),
            sa.Column("candidate", s(255), primary_key=True),
            sa.Column("route", s(255), nullable=False),
            sa.Column("tenant", s(255), nullable=True),
            sa.Column("production_model", s(255), nullable=True),
            sa.Column("candidate_request_id", s(128), nullable=False),
            sa.Column("ts", d(), nullable=False),
            sa.Column("question", t(), nullable=False),
            sa.Column("production", t(), nullable=False),
            sa.Column("candidate_output", t(), nullable=True),
            sa.Column("production_ms", d(), nullable=False),
            sa.Column("candidate_ms", d(), nullable=False),
            sa.Column("error", t(), nullable=True),
        ]
    return [
        sa.Column("request_id", s(128), primary_key=True),
        sa.Column("route", s(255), nullable=False),
        sa.Column("model", s(255), nullable=False),
        sa.Column("ts", d(), nullable=False),
        sa.Column("score", d(), nullable=False),
        sa.Column("verdict", sa.Integer(), nullable=False),
        sa.Column("reason", t(), nullable=False),
        sa.Column("judge_request_id", s(128), nullable=False),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name in _TABLES:
        if inspector.has_table(name):
            continue  # made by create_all before migrations: the same table
        op.create_table(name, *_columns(name))
        op.create_index(f"ix_{name}_ts", name, ["ts"])


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_table(name)
