"""OpenID Connect: schools' providers (the broker as client) and services' client registrations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "school_oidc_providers",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=1024), nullable=False),
        sa.Column("client_id", sa.String(length=1024), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        sa.Column("algorithms", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_school_oidc_providers_school_id_schools"),
        ),
        sa.PrimaryKeyConstraint("school_id", name=op.f("pk_school_oidc_providers")),
    )
    op.create_table(
        "oidc_clients",
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("auth_method", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("jwks_uri", sa.String(length=1024), nullable=True),
        sa.Column("id_token_alg", sa.String(length=16), nullable=False),
        sa.Column("refresh_tokens", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "auth_method IN ('client_secret_basic', 'client_secret_post', "
            "'private_key_jwt', 'none')",
            name=op.f("ck_oidc_clients_auth_method"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_oidc_clients_service_id_services"),
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_oidc_clients")),
    )


def downgrade() -> None:
    op.drop_table("oidc_clients")
    op.drop_table("school_oidc_providers")
