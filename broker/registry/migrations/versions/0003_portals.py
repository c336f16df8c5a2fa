"""Portals: administrators, invitations, publishers; approval and declaration versions of
services; activation and accepted declaration version of release policies.

Existing services become approved and stay at declaration version 1, existing policies active and
accepted at version 1: a migrated broker keeps answering every login it answered before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLE_CHECK = "role IN ('operator', 'school', 'publisher')"


def _flags(table: str) -> None:
    op.add_column(
        table, sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column(
        table,
        sa.Column("declaration_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )


def upgrade() -> None:
    op.add_column(
        "services", sa.Column("approved", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column("services", sa.Column("publisher_id", sa.String(length=64), nullable=True))
    op.add_column(
        "services",
        sa.Column("declaration_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.create_index(op.f("ix_services_publisher_id"), "services", ["publisher_id"], unique=False)
    _flags("release_policies")
    _flags("policy_changes")
    op.create_table(
        "admins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(ROLE_CHECK, name=op.f("ck_admins_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admins")),
        sa.UniqueConstraint("email", name=op.f("uq_admins_email")),
    )
    op.create_table(
        "invitations",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.CheckConstraint(ROLE_CHECK, name=op.f("ck_invitations_role")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_invitations")),
    )
    op.create_table(
        "publishers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publishers")),
    )
    op.create_table(
        "declaration_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("declarations", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declaration_changes")),
    )
    op.create_index(
        op.f("ix_declaration_changes_service_id"),
        "declaration_changes",
        ["service_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_declaration_changes_service_id"), table_name="declaration_changes")
    op.drop_table("declaration_changes")
    op.drop_table("publishers")
    op.drop_table("invitations")
    op.drop_table("admins")
    for table in ("policy_changes", "release_policies"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("declaration_version")
            batch.drop_column("active")
    op.drop_index(op.f("ix_services_publisher_id"), table_name="services")
    with op.batch_alter_table("services") as batch:
        batch.drop_column("declaration_version")
        batch.drop_column("publisher_id")
        batch.drop_column("approved")
