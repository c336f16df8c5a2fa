"""Receipts: per-login receipts in a hash chain per school, notice preferences, and each
school's privacy contact.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "schools",
        sa.Column("privacy_contact", sa.String(length=1024), server_default="", nullable=False),
    )
    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=True),
        sa.Column("attributes", sa.String(length=2048), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("school_protocol", sa.String(length=8), nullable=False),
        sa.Column("service_protocol", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("school_id", "seq", name=op.f("uq_receipts_school_id_seq")),
    )
    op.create_index(
        "ix_receipts_school_id_issued_at", "receipts", ["school_id", "issued_at"], unique=False
    )
    op.create_index(
        "ix_receipts_subject_service_id", "receipts", ["subject", "service_id"], unique=False
    )
    op.create_table(
        "receipt_chains",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("head_seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("anchor_seq", sa.Integer(), nullable=False),
        sa.Column("anchor_hash", sa.String(length=64), nullable=False),
        sa.Column("seal", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("school_id", name=op.f("pk_receipt_chains")),
    )
    op.create_table(
        "notice_preferences",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.CheckConstraint("mode IN ('session', 'changes')", name=op.f("ck_notice_preferences_mode")),
        sa.PrimaryKeyConstraint("school_id", "service_id", name=op.f("pk_notice_preferences")),
    )


def downgrade() -> None:
    op.drop_table("notice_preferences")
    op.drop_table("receipt_chains")
    op.drop_index("ix_receipts_subject_service_id", table_name="receipts")
    op.drop_index("ix_receipts_school_id_issued_at", table_name="receipts")
    op.drop_table("receipts")
    with op.batch_alter_table("schools") as batch:
        batch.drop_column("privacy_contact")
