"""The address a school's SAML IdP metadata was given by, kept so the timer fetches it again.

`schools.idp_metadata_url`: the https URL (plain http only on loopback, the fetch rule of
saml/metadata_fetch.py) the school's IdP metadata was registered or last updated from, at
`school add|update --saml-metadata URL` or on the portals' identity-provider pages; NULL: given
as a file (or inline, or by a metadata source's entity id), which nothing fetches again.
`ketenbroker metadata refresh` fetches each such URL again with `school update`'s checks and
keeps the last good copy on any failure (cli/url_refresh.py): an ADFS server's yearly
certificate roll-over (AutoCertificateRollover) reaches the broker before ADFS switches.

Additive: a nullable column older code neither reads nor writes, so a version before it runs on
it: `oldest_reader` stays where 0016 left it. A school updated by older code during a rolling
upgrade keeps its URL, and the next refresh fetches the school's own copy from it again. Down
again drops the column: the schools' metadata stays, refreshed by hand (`school update`) again.

Kept to one column of one table so that it re-chains onto any other revision at merge.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None
# Additive (a nullable column older code never reads): the value 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.add_column("schools", sa.Column("idp_metadata_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("schools") as batch:
        batch.drop_column("idp_metadata_url")
