"""Model evaluations: a package scored on a table, linked to its model and dataset versions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 03:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=1000), nullable=False),
        sa.Column("package_digest", sa.String(length=71), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("dataset", sa.String(length=1000), nullable=False),
        sa.Column("data_digest", sa.String(length=71), nullable=False),
        sa.Column("target", sa.String(length=250), nullable=False),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("user", sa.String(length=250), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_evaluations_dataset_version_id_dataset_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evaluations_package_data", ["package_digest", "data_digest", "target"]
        )
        batch_op.create_index("ix_evaluations_model", ["model_name", "model_version"])


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_model")
        batch_op.drop_index("ix_evaluations_package_data")
    op.drop_table("evaluations")
