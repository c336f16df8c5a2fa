"""A school's other names.

`schools.aliases`: the names students still know a school by (a former name after a merger, an
informal name, a location's), a JSON list of at most a handful (core/school_aliases.py). The
discovery page finds the school by each as by its name. Existing schools get none (`[]`) until
an operator gives some (`ketenbroker school update --alias`, the registry file's `aliases`, or
the school's page in the operator's portal).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "schools",
        sa.Column("aliases", sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("schools") as batch:
        batch.drop_column("aliases")
