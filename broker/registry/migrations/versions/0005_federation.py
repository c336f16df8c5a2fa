"""Federation metadata: configured sources and the entities of their last good copy.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metadata_sources",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entity_count", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_metadata_sources")),
    )
    op.create_table(
        "federation_entities",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.CheckConstraint("role IN ('idp', 'sp')", name=op.f("ck_federation_entities_role")),
        sa.ForeignKeyConstraint(
            ["source"],
            ["metadata_sources.name"],
            name=op.f("fk_federation_entities_source_metadata_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "source", "entity_id", "role", name=op.f("pk_federation_entities")
        ),
    )
    op.create_index(
        op.f("ix_federation_entities_valid_until"),
        "federation_entities",
        ["valid_until"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_federation_entities_valid_until"), table_name="federation_entities")
    op.drop_table("federation_entities")
    op.drop_table("metadata_sources")
