"""A service's move to another chain can keep its previous pseudonym for a migration window.

Table `chain_moves` (core/chain_move.py): per service moved with `ketenbroker chain move
--window`, the pseudonym chain it left, that chain's key version then, the chain it moved into
and the window's end. Additive: older code never reads the table, so a version at 0017 or 0016
runs on it as before (it releases no previous pseudonym for a move, and a service it removes
takes its row with it through the foreign key's ON DELETE CASCADE): `oldest_reader` stays where
0016 left it.

Down again drops the table (an open move window ends then: its services receive the new
pseudonym alone).

Revision ID: 0018
Revises: 0017
Create Date: 2027-01-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None
# Additive (a table older code never reads): the value revision 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.create_table(
        "chain_moves",
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("from_chain", sa.String(length=100), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("to_chain", sa.String(length=100), nullable=False),
        sa.Column("window_ends", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint("from_version > 0", name=op.f("ck_chain_moves_from_version")),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_chain_moves_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_chain_moves")),
    )


def downgrade() -> None:
    op.drop_table("chain_moves")
