"""The publisher organisation of a removed service, in its removal record.

`removals.publisher_id`: for a service's removal, the id of the publisher organisation that
managed it, "" for a service no organisation managed (operators only); NULL for every other
kind and for the removals recorded before this revision (not known). A removed service's id
keeps its pseudonyms and its declaration history (removal.py), so taking it again is the
operator's decision only (registry/id_reuse.py): `publisher add --reuse-removed-id` allows it
for the same publisher as before, which only this column can tell.

Additive: a nullable column older code neither reads nor writes, so a version before it runs on
it: `oldest_reader` stays where 0016 left it. A removal older code records meanwhile is NULL,
as one from before: its publisher is not known, and taking its id asks the operator to
acknowledge that the pseudonyms carry over. Down again drops the column.

Kept to one column of one table so that it re-chains onto any other revision at merge.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None
# Additive (a nullable column older code never reads): the value 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.add_column("removals", sa.Column("publisher_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("removals") as batch:
        batch.drop_column("publisher_id")
