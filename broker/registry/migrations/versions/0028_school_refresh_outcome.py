"""What the metadata refresh last made of each school's metadata URL.

`schools.idp_refreshed_at`: when a copy was last fetched from the school's URL and accepted
(changed or not), or the URL given (`school add|update --saml-metadata URL`, the portals);
`schools.idp_refresh_failed_at` and `schools.idp_refresh_failure`: when a fetch was last refused
and its reason code (`metadata_invalid`, `other_entity_id`, ...: codes, never the server's
words). Written by `ketenbroker metadata refresh` for every school on the IdP fetched
(cli/url_refresh.py), without a generation bump. The attention report's
`school_metadata_not_refreshed` reads them (core/attention.py): a school whose copy has not been
refreshed for days keeps signing in only until its IdP rolls its certificate.

Additive: three nullable columns older code neither reads nor writes, so a version before it
runs on it: `oldest_reader` stays where 0016 left it. A refresh by older code during a rolling
upgrade records nothing; the next by new code does. Down again drops the columns (the refresh's
output and log lines still say what failed).

Kept to columns of one table so that it re-chains onto any other revision at merge.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None
# Additive (nullable columns older code never reads): the value 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.add_column("schools", sa.Column("idp_refreshed_at", sa.DateTime(timezone=True)))
    op.add_column("schools", sa.Column("idp_refresh_failed_at", sa.DateTime(timezone=True)))
    op.add_column("schools", sa.Column("idp_refresh_failure", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("schools") as batch:
        batch.drop_column("idp_refresh_failure")
        batch.drop_column("idp_refresh_failed_at")
        batch.drop_column("idp_refreshed_at")
