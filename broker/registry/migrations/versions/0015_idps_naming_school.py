"""IdPs whose logins must name their school, kept as a property of the IdP.

Revision 0014 required a login through an IdP to name the chosen school while two or more
schools were registered with it: removing one of two schools turned the check off although the
board's IdP still signs in the other school's students, and a board IdP registered for one
school could not ask for it. `idps_naming_school` holds the entity ids that require it (one row
each, core/shared_idp.py); the registry adds a row when a second school joins an IdP and never
removes one when schools leave; the operator sets or clears it (`school update
--idp-names-school`). Every entity id two or more schools share now is added here.

Down again drops the table: revision 0014 counts schools instead. It is refused while an IdP
with one school is marked (an operator's mark, or one kept after a school left), which 0014
would silently stop requiring; the operator clears the mark first (`--no-idp-names-school`).
The mark of an IdP with no school left is dropped: no login goes through it, no command
clears it, and it would block the downgrade for good.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-19
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from broker.core.errors import ConfigurationError

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_schools = sa.table("schools", sa.column("idp_entity_id", sa.String(1024)))
_naming = sa.table("idps_naming_school", sa.column("entity_id", sa.String(1024)))


def upgrade() -> None:
    table = op.create_table(
        "idps_naming_school",
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("entity_id", name=op.f("pk_idps_naming_school")),
    )
    shared = (
        sa.select(_schools.c.idp_entity_id)
        .group_by(_schools.c.idp_entity_id)
        .having(sa.func.count() > 1)
    )
    op.execute(table.insert().from_select(["entity_id"], shared))


def downgrade() -> None:
    alone = op.get_bind().scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(_schools.c.idp_entity_id)
            .join(_naming, _naming.c.entity_id == _schools.c.idp_entity_id)
            .group_by(_schools.c.idp_entity_id)
            .having(sa.func.count() == 1)
            .subquery()
        )
    )
    if alone:
        raise ConfigurationError(
            f"downgrade below revision 0015 refused: {alone} identity provider(s) of one school "
            "must name the school in their logins, which revision 0014 does not keep; nothing "
            "was changed (clear it first: ketenbroker school update SCHOOL --no-idp-names-school)"
        )
    op.drop_table("idps_naming_school")
