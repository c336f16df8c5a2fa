"""The address a service's SAML SP metadata was given by, and what the metadata refresh last
made of it: the services' counterpart of 0027 and 0028.

`services.sp_metadata_url`: the https URL (plain http only on loopback, saml/metadata_fetch.py's
rule) the service's SP metadata was registered or last updated from (`publisher add-service|
update --saml-metadata URL`, `registry import`'s `saml_metadata_url`); NULL: given as a file or
pasted (or by a metadata source's entity id), which nothing fetches again.
`services.sp_refreshed_at`, `services.sp_refresh_failed_at`, `services.sp_refresh_failure`: the
last copy fetched and accepted (or given by URL), the last refused and its reason code. Written
by `ketenbroker metadata refresh` (cli/url_refresh.py) without a generation bump; the attention
report's `service_metadata_not_refreshed` reads them (core/attention.py). A platform that rolls
its signing or encryption key (yearly, as ADFS does) reaches the broker before it switches.

Additive: four nullable columns older code neither reads nor writes, so a version before it runs
on it: `oldest_reader` stays where 0016 left it. A service updated by older code during a rolling
upgrade keeps its URL, and the next refresh fetches the service's own copy from it again. Down
again drops the columns: the services' metadata stays, updated by hand (`publisher update`).

Kept to columns of one table so that it re-chains onto any other revision at merge.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None
# Additive (nullable columns older code never reads): the value 0016 declares.
oldest_reader = "0015"


def upgrade() -> None:
    op.add_column("services", sa.Column("sp_metadata_url", sa.Text(), nullable=True))
    op.add_column("services", sa.Column("sp_refreshed_at", sa.DateTime(timezone=True)))
    op.add_column("services", sa.Column("sp_refresh_failed_at", sa.DateTime(timezone=True)))
    op.add_column("services", sa.Column("sp_refresh_failure", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("sp_refresh_failure")
        batch.drop_column("sp_refresh_failed_at")
        batch.drop_column("sp_refreshed_at")
        batch.drop_column("sp_metadata_url")
