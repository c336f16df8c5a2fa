"""The operator's switch for encrypted assertions, per service.

`services.assertion_encryption`: `auto` (the assertion is encrypted when the service's SP metadata
publishes an encryption key, saml/publisher_encryption.py) or `off` (signed and sent unencrypted
whatever the metadata publishes: a platform whose SAML software cannot decrypt AES-GCM, set with
`ketenbroker publisher update --id SERVICE --assertion-encryption off`). Every existing service
gets `auto`, what the code of this version does for it anyway.

Additive: a column with a server default, which older code neither reads nor writes (a service
it registers or imports gets `auto` from the default), so a version at 0018, 0017, 0016 or 0015
runs on it as before: `oldest_reader` stays where 0016 left it. Such a version does not honour
`off`: it encrypts for every service whose metadata asks (when it encrypts at all), so a service
set to `off` receives unencrypted assertions only from workers of this version on
(docs/operations.md, "Upgrading to encrypted assertions").

Down again drops the column; the services that were set to `off` are named in a warning, since
the code that runs on 0018 encrypts for them again.

Revision ID: 0019
Revises: 0018
Create Date: 2027-01-16
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None
# Additive (a column with a server default older code never reads): the value 0016 declares.
oldest_reader = "0015"

log = logging.getLogger(__name__)

CHECK = "assertion_encryption IN ('auto', 'off')"
_services = sa.table(
    "services", sa.column("id", sa.String(64)), sa.column("assertion_encryption", sa.String(8))
)


def upgrade() -> None:
    # Batch: SQLite adds a CHECK constraint to an existing table only by copying it.
    with op.batch_alter_table("services") as batch:
        batch.add_column(
            sa.Column(
                "assertion_encryption",
                sa.String(length=8),
                server_default=sa.text("'auto'"),
                nullable=False,
            )
        )
        batch.create_check_constraint(op.f("ck_services_assertion_encryption"), CHECK)


def downgrade() -> None:
    off = list(
        op.get_bind().scalars(
            sa.select(_services.c.id)
            .where(_services.c.assertion_encryption == "off")
            .order_by(_services.c.id)
        )
    )
    if off:
        log.warning(
            "revision 0019 down: %d service(s) had assertion encryption off and are encrypted "
            "for again by code at 0018 when their metadata publishes a key: %s",
            len(off),
            ", ".join(off),
        )
    with op.batch_alter_table("services") as batch:
        batch.drop_constraint(op.f("ck_services_assertion_encryption"), type_="check")
        batch.drop_column("assertion_encryption")
