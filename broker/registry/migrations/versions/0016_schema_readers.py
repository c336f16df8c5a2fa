"""The oldest code that can still run on the schema, so an operator can upgrade without downtime.

`schema_readers` holds one row: `oldest_reader`, the newest revision of the oldest Ketenbroker
that can run on this schema. A version whose own newest revision is older than the registry's
serves on it when that revision is at or after `oldest_reader` (migration.py): the operator
migrates with the new version, then replaces the old workers one by one.

Each revision from this one on declares its own `oldest_reader` (a module constant, below); the
upgrade machinery writes the effective one in the migration's own transaction (migration.py,
`record_oldest_reader`). This revision only adds a table older code never reads, so code at
0015 could run after it; but a 0015 version refuses every revision it does not know (it has no
record to read), so upgrading to this revision stops the world once: the first rolling upgrade
is possible only from a version that has 0016.

Down again drops the table.

Revision ID: 0016
Revises: 0015
Create Date: 2027-01-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None
oldest_reader = "0015"


def upgrade() -> None:
    op.create_table(
        "schema_readers",
        sa.Column("oldest_reader", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("oldest_reader", name=op.f("pk_schema_readers")),
    )


def downgrade() -> None:
    op.drop_table("schema_readers")
