"""A school's town.

`schools.town`: the school's town (plaats, vestigingsplaats), shown under its name on the
discovery page and searched there, so that schools of one name ("Stedelijk Gymnasium") can be
told apart. Optional: existing schools get none (an empty text) until an operator gives one
(`ketenbroker school update --town`, or the registry file's `town`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "schools",
        sa.Column("town", sa.String(length=80), server_default=sa.text("''"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("schools") as batch:
        batch.drop_column("town")
