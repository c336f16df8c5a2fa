"""A school's hosted domain at its OpenID provider.

`school_oidc_providers.hosted_domain`: for a provider whose issuer is shared by many
organisations (Google: `https://accounts.google.com`), the school's Google Workspace domain; a
login must carry it as the ID token's `hd` (core/hosted_domain.py). NULL: none. Existing schools
get none; one on Google's issuer is then refused at every login (`hosted_domain_missing`) until an
operator sets it (`ketenbroker school update --hosted-domain`, the registry file's
`hosted_domain`, or the school's identity provider page in the portal), rather than keep letting
in every Google account.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "school_oidc_providers",
        sa.Column("hosted_domain", sa.String(length=253), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("school_oidc_providers") as batch:
        batch.drop_column("hosted_domain")
