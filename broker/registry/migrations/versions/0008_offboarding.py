"""Offboarding: a school's or service's choice history outlives its registration, and an
administrator's id is never given out again.

`policy_changes` loses its foreign keys to `schools` and `services`: removing a school or a
service (`ketenbroker school remove`, `publisher remove`) deletes its current policies but keeps
who chose what when, which the receipts' policy versions refer to (receipts have no foreign keys
for the same reason).

`removals` records who removed which school or service when, with its name, so the receipts
that outlive it still name it on the my-data page and in the school's receipts.

`admins` gets SQLite's AUTOINCREMENT: without it SQLite hands the highest id out again after
that row is deleted, and a portal session of a removed school administrator (it names the
administrator by id) would then belong to whoever was created next. PostgreSQL's sequences
never reuse a value; there this changes nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REMOVAL_KINDS = "kind IN ('school', 'service')"
_HISTORY_KEYS = (
    ("fk_policy_changes_school_id_schools", ["school_id"], "schools"),
    ("fk_policy_changes_service_id_services", ["service_id"], "services"),
)


def upgrade() -> None:
    op.create_table(
        "removals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(REMOVAL_KINDS, name=op.f("ck_removals_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_removals")),
    )
    op.create_index(op.f("ix_removals_entry_id"), "removals", ["entry_id"], unique=False)
    with op.batch_alter_table("policy_changes") as batch:
        for name, _, _ in _HISTORY_KEYS:
            batch.drop_constraint(name, type_="foreignkey")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "admins", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    op.drop_index(op.f("ix_removals_entry_id"), table_name="removals")
    op.drop_table("removals")
    # Fails where history of a removed school or service is kept: that history has nowhere to go.
    with op.batch_alter_table("policy_changes") as batch:
        for name, columns, table in _HISTORY_KEYS:
            batch.create_foreign_key(name, table, columns, ["id"])
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("admins", recreate="always"):
            pass
