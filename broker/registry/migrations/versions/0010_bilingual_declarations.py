"""Bilingual purposes, and declaration changes that keep schools' choices.

`declarations.purpose_en`: the English purpose of a declared attribute (empty: English pages show
the Dutch one). The existing `purpose` becomes the Dutch text: a reason typed before this
revision counts as Dutch, whatever its language, and publishers can retype it in the portal.

`services.reconfirm_version`: the latest declaration version that needs schools to confirm their
choices again (an attribute added, required-ness changed; broker/core/declarations.py). Until
now every version did, so existing services get their current declaration version: nothing
that releases today starts releasing, nothing that waits for a school stops waiting.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "declarations",
        sa.Column("purpose_en", sa.Text(), server_default=sa.text("''"), nullable=False),
    )
    op.add_column(
        "services",
        sa.Column("reconfirm_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.execute("UPDATE services SET reconfirm_version = declaration_version")


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("reconfirm_version")
    with op.batch_alter_table("declarations") as batch:
        batch.drop_column("purpose_en")
