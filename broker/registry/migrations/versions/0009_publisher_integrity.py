"""Publisher organisations: a service's publisher is a foreign key, and an organisation's
removal is recorded like a school's or a service's.

`services.publisher_id` gets a foreign key to `publishers`: no registry import or portal
registration racing `publisher remove-organisation` can leave a service naming an organisation
that is gone. (The writers lock the organisation's row first, so they are refused with
`UnknownPublisher` rather than failing on the key: sql_registry.py, bulk_import.py.)

Rows the key would refuse: services naming a publisher id that has no organisation (before this
revision a registration or import racing the organisation's removal could leave one). The
upgrade deletes nothing and does not refuse (every CLI command migrates first, so a refusal would
leave the operator without the commands to look and repair): it registers each missing
organisation again under its id, with the id as its name and no administrators, and logs a
warning naming the ids. `ketenbroker publisher organisations` lists them with their services;
the operator keeps them (and renames them with a registry import) or removes them as usual.

`removals.kind` admits `publisher`: `publisher remove-organisation` leaves the same record (kind,
id, name, when, by whom) as a school's or a service's removal.

The downgrade drops the key and narrows the kind again. It is refused, changing nothing, while
`removals` holds an organisation's record, which revision 0008's check does not admit: an audit
record is not thrown away by a schema change. Delete those rows by hand first if they may go.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from broker.core.errors import ConfigurationError

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KINDS = "kind IN ('school', 'service', 'publisher')"
KINDS_0008 = "kind IN ('school', 'service')"
PUBLISHER_KEY = "fk_services_publisher_id_publishers"

log = logging.getLogger(__name__)

# Only the columns this revision reads and writes, as they are at 0008.
_services = sa.table("services", sa.column("publisher_id", sa.String(64)))
_publishers = sa.table("publishers", sa.column("id", sa.String(64)), sa.column("name"))
_removals = sa.table("removals", sa.column("kind", sa.String(16)))


def _restore_missing_publishers() -> None:
    missing = sorted(
        op.get_bind().scalars(
            sa.select(_services.c.publisher_id)
            .distinct()
            .where(
                _services.c.publisher_id.is_not(None),
                _services.c.publisher_id.not_in(sa.select(_publishers.c.id)),
            )
        )
    )
    if not missing:
        return
    op.bulk_insert(_publishers, [{"id": found, "name": found} for found in missing])
    log.warning(
        "revision 0009: services named %d publisher organisation(s) that did not exist: %s; "
        "registered again under their ids (no administrators), see `ketenbroker publisher "
        "organisations`",
        len(missing),
        ", ".join(missing),
    )


def upgrade() -> None:
    _restore_missing_publishers()
    with op.batch_alter_table("services") as batch:
        batch.create_foreign_key(op.f(PUBLISHER_KEY), "publishers", ["publisher_id"], ["id"])
    with op.batch_alter_table("removals") as batch:
        batch.drop_constraint(op.f("ck_removals_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_removals_kind"), KINDS)


def downgrade() -> None:
    recorded = op.get_bind().scalar(
        sa.select(sa.func.count()).select_from(_removals).where(_removals.c.kind == "publisher")
    )
    if recorded:
        raise ConfigurationError(
            f"downgrade below revision 0009 refused: table removals holds {recorded} publisher "
            "organisation removal record(s), which revision 0008 does not admit; nothing was "
            "changed (delete them first with DELETE FROM removals WHERE kind = 'publisher' "
            "only if they may go)"
        )
    with op.batch_alter_table("removals") as batch:
        batch.drop_constraint(op.f("ck_removals_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_removals_kind"), KINDS_0008)
    with op.batch_alter_table("services") as batch:
        batch.drop_constraint(op.f(PUBLISHER_KEY), type_="foreignkey")
