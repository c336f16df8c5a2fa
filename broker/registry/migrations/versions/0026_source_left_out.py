"""The members each metadata source's last good download left out for a problem of their own.

`metadata_sources.left_out`: a JSON list, one object per member the refresh left out
(saml/aggregate.py `LeftOut`: entity id, role, reason code, what is wrong), in document order,
at most `MAX_LEFT_OUT_HELD` of them (registry/federation.py); NULL: none. The members a source's
`registration_authorities` leave out are not in it: an interfederation feed leaves out thousands
on purpose. Written in the transaction that stores the copy, replaced by every successful
refresh (an unchanged feed too: a member's own validUntil passes with the clock), kept by a
refused one. The attention report reads it: a registered school or service whose entity id a
source left out is told apart from one no source holds (core/attention.py).

Additive: a nullable column older code neither reads nor writes, so a version before it runs on
it: `oldest_reader` stays where 0016 left it. An older worker that stores a copy during a
rolling upgrade leaves the column as it was (a list from an earlier download) until the next
refresh by new code. Down again drops the column (the next refresh's output names them).

Kept to one column of one table so that it re-chains onto any other revision at merge.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None
# Additive (a nullable column older code never reads): the value 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.add_column("metadata_sources", sa.Column("left_out", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metadata_sources") as batch:
        batch.drop_column("left_out")
