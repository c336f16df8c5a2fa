"""The publication instant of each metadata source's copy held, against replayed older feeds.

`metadata_sources.published_at`: the `mdrpi:PublicationInfo/@creationInstant` of the last good
copy. A refresh refuses a verified feed published before the copy held (or, when one of the two
does not say when it was published, one ending before it): whoever relays a feed (a mirror, a
proxy, a file copied in) could otherwise bring back an older signed feed still within its
validUntil, and with it a rotated-out key or a removed entity (core/federation.py, `is_older`).

Additive: a nullable column older code neither reads nor writes, so a version at 0021 down to
0015 runs on it: `oldest_reader` stays where 0016 left it. The copies held before it have no
publication instant; the next feed is compared with them by validUntil, and the first one taken
records its instant. Down again drops the column.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None
# Additive (a nullable column older code never reads): the value 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.add_column(
        "metadata_sources", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("metadata_sources") as batch:
        batch.drop_column("published_at")
