"""Pipelines: the steps of each pipeline run, their cache keys, and their inputs and outputs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 01:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_steps",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=250), nullable=False),
        sa.Column("function", sa.String(length=500), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("code_digest", sa.String(length=71), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cached_from", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_pipeline_steps_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["runs.id"],
            name=op.f("fk_pipeline_steps_pipeline_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_pipeline_steps")),
    )
    with op.batch_alter_table("pipeline_steps", schema=None) as batch_op:
        batch_op.create_index("ix_pipeline_steps_pipeline", ["pipeline_run_id"], unique=False)
        batch_op.create_index("ix_pipeline_steps_cache_key", ["cache_key", "status"], unique=False)
    op.create_table(
        "step_values",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=True),
        sa.Column("materializer", sa.String(length=100), nullable=False),
        sa.Column("type_name", sa.String(length=250), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("source_run_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_step_values_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "direction", "name", name=op.f("pk_step_values")),
    )
    with op.batch_alter_table("step_values", schema=None) as batch_op:
        batch_op.create_index("ix_step_values_digest", ["digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("step_values", schema=None) as batch_op:
        batch_op.drop_index("ix_step_values_digest")
    op.drop_table("step_values")
    with op.batch_alter_table("pipeline_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_steps_cache_key")
        batch_op.drop_index("ix_pipeline_steps_pipeline")
    op.drop_table("pipeline_steps")
