"""Several schools on one SAML identity provider (a school board's IdP, a hub).

`schools.idp_entity_id` loses its unique constraint and keeps a plain index (the ACS, logout and
`Scoping/IDPList` look schools up by it). Each school is still its own BRIN and its own pseudonym
namespace; a login through a shared IdP must name the chosen school in
nlEduPersonHomeOrganizationId (core/shared_idp.py). The registry's writers keep the rest of the
rule: only SAML schools share an entity id (an OpenID provider's issuer stays one school's), and
schools that share one hold the same metadata (sql_registry.py).

Down again is refused while two schools share an entity id: revision 0013 cannot hold them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from broker.core.errors import ConfigurationError

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_schools = sa.table("schools", sa.column("idp_entity_id", sa.String(1024)))


def upgrade() -> None:
    with op.batch_alter_table("schools") as batch:
        batch.drop_constraint(op.f("uq_schools_idp_entity_id"), type_="unique")
        batch.create_index(op.f("ix_schools_idp_entity_id"), ["idp_entity_id"], unique=False)


def downgrade() -> None:
    shared = op.get_bind().scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(_schools.c.idp_entity_id)
            .group_by(_schools.c.idp_entity_id)
            .having(sa.func.count() > 1)
            .subquery()
        )
    )
    if shared:
        raise ConfigurationError(
            f"downgrade below revision 0014 refused: {shared} identity provider(s) are shared "
            "by several schools, which revision 0013 does not admit; nothing was changed "
            "(remove the extra schools of each shared IdP first)"
        )
    with op.batch_alter_table("schools") as batch:
        batch.drop_index(op.f("ix_schools_idp_entity_id"))
        batch.create_unique_constraint(op.f("uq_schools_idp_entity_id"), ["idp_entity_id"])
