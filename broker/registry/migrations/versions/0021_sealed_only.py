"""The mark that the registry holds sealed secrets only: `sealed_only`, one row or none.

Present, this version refuses a staff TOTP secret or a school's client secret stored in clear
(registry/sealed_only.py): the broker seals every secret it writes, so a value in clear there
was put there by someone else (by hand, from an old back-up's row). Absent, values in clear are
read as they are (COMPAT(clear-registry-secrets)), as at revision 0020.

The revision sets it when no value is in clear: a new registry (`init` migrates before any
secret is written) or one whose values `registry seal-secrets` sealed at 0020 already. With
values in clear it leaves it unset; the next `registry seal-secrets` seals them and sets it.
Counted without a key (a value in clear is one of no sealed format, `$kbs…`), used and expired
invitations included: their values, emptied by `seal-secrets`, hold the mark back until then.

Additive: a table older code never reads, so a version at 0020 down to 0015 runs on it as
before: `oldest_reader` stays where 0016 left it. Such a version does not honour the mark (it
reads values in clear as before), and one before 0020 writes its secrets in clear, which this
version then refuses once the mark is set: upgrade every worker before `seal-secrets`, as
docs/operations.md says.

Down again drops the table: code at 0020 reads values in clear again. Up once more sets the
mark again when nothing is in clear.

Revision ID: 0021
Revises: 0020
Create Date: 2027-01-24
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None
# Additive (a table older code never reads): the value revision 0016 declares.
oldest_reader = "0015"

# core/sealed_secrets.py SEALED_MARK, as a LIKE pattern (as revision 0020 has it).
SEALED = "$kbs%"
_SECRETS = (
    ("admins", "totp_secret"),
    ("invitations", "totp_secret"),
    ("school_oidc_providers", "client_secret"),
)


def _in_clear() -> int:
    bind = op.get_bind()
    found = 0
    for table, column in _SECRETS:
        values = sa.table(table, sa.column(column, sa.Text()))
        value = values.c[column]
        found += bind.scalar(
            sa.select(sa.func.count()).select_from(values).where(value != "", ~value.like(SEALED))
        )
    return found


def upgrade() -> None:
    sealed_only = op.create_table(
        "sealed_only",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_sealed_only_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sealed_only")),
    )
    if not _in_clear():
        op.bulk_insert(sealed_only, [{"id": 1, "since": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("sealed_only")
