"""OpenID Connect logout: post-logout redirect URIs and back-channel logout for clients.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Defaults for the clients registered before: no logout URIs, no back-channel logout.
    op.add_column(
        "oidc_clients",
        sa.Column(
            "post_logout_redirect_uris", sa.JSON(), server_default=sa.text("'[]'"), nullable=False
        ),
    )
    op.add_column(
        "oidc_clients", sa.Column("backchannel_logout_uri", sa.String(length=1024), nullable=True)
    )
    op.add_column(
        "oidc_clients",
        sa.Column(
            "backchannel_logout_session_required",
            sa.Boolean(),
            server_default=sa.false(),
            nullable=False,
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("oidc_clients") as batch:
        batch.drop_column("backchannel_logout_session_required")
        batch.drop_column("backchannel_logout_uri")
        batch.drop_column("post_logout_redirect_uris")
