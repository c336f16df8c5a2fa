"""A chain's removal is recorded like a school's, a service's or a publisher organisation's.

`removals.kind` admits `chain`: `ketenbroker chain remove` leaves the same record (kind, id,
name, when, by whom) as the other removals (registry/removal.py). Only the CHECK constraint
widens; older code writes and reads none of the new kind (it reads the records of services
only, for the names of their receipts), so a version at 0016 or 0015 runs on it as before:
`oldest_reader` stays where 0016 left it.

The downgrade narrows the kind again. It is refused, changing nothing, while `removals` holds a
chain's record, which revision 0016's check does not admit: an audit record is not thrown away
by a schema change (as revision 0009's downgrade refuses for an organisation's).

Revision ID: 0017
Revises: 0016
Create Date: 2027-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from broker.core.errors import ConfigurationError

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None
# Additive (a looser constraint): the value revision 0016 declares.
oldest_reader = "0015"

KINDS = "kind IN ('school', 'service', 'publisher', 'chain')"
KINDS_0016 = "kind IN ('school', 'service', 'publisher')"

_removals = sa.table("removals", sa.column("kind", sa.String(16)))


def _kinds(check: str) -> None:
    with op.batch_alter_table("removals") as batch:
        batch.drop_constraint(op.f("ck_removals_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_removals_kind"), check)


def upgrade() -> None:
    _kinds(KINDS)


def downgrade() -> None:
    recorded = op.get_bind().scalar(
        sa.select(sa.func.count()).select_from(_removals).where(_removals.c.kind == "chain")
    )
    if recorded:
        raise ConfigurationError(
            f"downgrade below revision 0017 refused: table removals holds {recorded} chain "
            "removal record(s), which revision 0016 does not admit; nothing was changed "
            "(delete them first with DELETE FROM removals WHERE kind = 'chain' only if they "
            "may go)"
        )
    _kinds(KINDS_0016)
