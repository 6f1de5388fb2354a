"""Indexes on params.key and tags.key, where search filters start.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 21:18:34.744194
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("params", schema=None) as batch_op:
        batch_op.create_index("ix_params_key", ["key"], unique=False)

    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.create_index("ix_tags_key", ["key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.drop_index("ix_tags_key")

    with op.batch_alter_table("params", schema=None) as batch_op:
        batch_op.drop_index("ix_params_key")
