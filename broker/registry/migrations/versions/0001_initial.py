"""Initial registry schema: schools, chains, services, declarations, release policies.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chains",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains")),
    )
    registry_state = op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_registry_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_state")),
    )
    # The counter exists from the start, so readers and writers never have to create it.
    op.bulk_insert(registry_state, [{"id": 1, "generation": 0}])
    op.create_table(
        "schools",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("idp_entity_id", sa.String(length=1024), nullable=False),
        sa.Column("subject_attribute", sa.String(length=64), nullable=False),
        sa.Column("use_eck_id", sa.Boolean(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("idp_metadata", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schools")),
        sa.UniqueConstraint("idp_entity_id", name=op.f("uq_schools_idp_entity_id")),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=True),
        sa.Column("naming", sa.String(length=8), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("sp_metadata", sa.Text(), nullable=True),
        sa.CheckConstraint("naming IN ('oid', 'plain')", name=op.f("ck_services_naming")),
        sa.CheckConstraint("protocol IN ('saml', 'oidc')", name=op.f("ck_services_protocol")),
        sa.ForeignKeyConstraint(
            ["chain_id"], ["chains.id"], name=op.f("fk_services_chain_id_chains")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("entity_id", name=op.f("uq_services_entity_id")),
    )
    op.create_index(op.f("ix_services_chain_id"), "services", ["chain_id"], unique=False)
    op.create_table(
        "declarations",
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_declarations_service_id_services")
        ),
        sa.PrimaryKeyConstraint("service_id", "attribute", name=op.f("pk_declarations")),
    )
    op.create_table(
        "policy_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_policy_changes_school_id_schools")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_policy_changes_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_changes")),
        sa.UniqueConstraint(
            "school_id",
            "service_id",
            "version",
            name=op.f("uq_policy_changes_school_id_service_id_version"),
        ),
    )
    op.create_table(
        "release_policies",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_release_policies_school_id_schools")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_release_policies_service_id_services")
        ),
        sa.PrimaryKeyConstraint("school_id", "service_id", name=op.f("pk_release_policies")),
    )


def downgrade() -> None:
    op.drop_table("release_policies")
    op.drop_table("policy_changes")
    op.drop_table("declarations")
    op.drop_index(op.f("ix_services_chain_id"), table_name="services")
    op.drop_table("services")
    op.drop_table("schools")
    op.drop_table("registry_state")
    op.drop_table("chains")
