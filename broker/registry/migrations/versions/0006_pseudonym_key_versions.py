"""Pseudonym key rotation per chain: each chain's key version and migration window.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
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
        "pseudonym_key_versions",
        sa.Column("chain", sa.String(length=100), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("window_ends", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "(previous_version IS NULL AND window_ends IS NULL)"
            " OR (previous_version IS NOT NULL AND window_ends IS NOT NULL)",
            name=op.f("ck_pseudonym_key_versions_window"),
        ),
        sa.CheckConstraint(
            "current_version > 0", name=op.f("ck_pseudonym_key_versions_current_version")
        ),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_pseudonym_key_versions")),
    )


def downgrade() -> None:
    op.drop_table("pseudonym_key_versions")
