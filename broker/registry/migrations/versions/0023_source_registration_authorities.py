"""The registration authorities each metadata source's copy held was read under.

`metadata_sources.registration_authorities`: the source's `registration_authorities` list (one a
line) when its last good copy was stored; NULL: a source without a list (every member read).
Two uses: a copy from a source with a list beats every copy of the same entity id from a source
without one (an interfederation feed cannot stand in for the national registration,
registry/federation.py `copy_rank`), and a list changed in the configuration re-reads a feed
whose bytes did not change (otherwise an unchanged digest would keep the old selection).

Additive: a nullable column older code neither reads nor writes, so a version before it runs on
it: `oldest_reader` stays where 0016 left it. The copies held before it are NULL, as a source
without a list; the first refresh after a list is configured re-reads the feed. Down again
drops the column (the lists are in the configuration; the next refresh compares by digest).

Kept to one column of one table so that it re-chains onto any other revision at merge.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None
# Additive (a nullable column older code never reads): the value 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.add_column(
        "metadata_sources", sa.Column("registration_authorities", sa.Text(), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("metadata_sources") as batch:
        batch.drop_column("registration_authorities")
