"""Room for sealed secrets: staff TOTP secrets become Text.

From this version on, the secrets the registry must keep openable (an administrator's and an
invitation's TOTP secret, the broker's client secret at a school's OpenID provider) are stored
sealed, AES-256-GCM under a key derived from the broker's session secret (core/sealed_secrets.py).
A sealed TOTP secret is longer than the 64 characters `admins.totp_secret` and
`invitations.totp_secret` held, so both become Text (on PostgreSQL a change of type without a
rewrite; on SQLite, batch mode copies the table, `admins` keeping its AUTOINCREMENT, revision
0008). `school_oidc_providers.client_secret` is Text already.

The revision seals nothing: it has no key. The values written before it stay in clear, and this
version reads them as they are (COMPAT(clear-registry-secrets)), until the operator runs
`ketenbroker registry seal-secrets` once every worker runs this version.

Additive for the schema (a wider column), so a version at 0019 down to 0015 runs on it:
`oldest_reader` stays where 0016 left it. What such a version cannot read are the sealed values
this version writes (a new administrator, invitation or school client secret) and those
`seal-secrets` seals; that seam is the operator's, said in docs/operations.md ("Sealed registry
secrets"): upgrade every worker, then seal.

Down again narrows the columns back, and is refused, changing nothing, while any secret is
sealed: code before 0020 cannot read one, and a migration cannot open it. Restore the back-up
taken before sealing instead.

Revision ID: 0020
Revises: 0019
Create Date: 2027-01-20
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from broker.core.errors import ConfigurationError

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None
# Additive (a wider column): the value revision 0016 declares.
oldest_reader = "0015"

# core/sealed_secrets.py SEALED_MARK, as a LIKE pattern: a value of any sealed format (a later
# `$kbs2$` too) is one code before 0020 would take for a secret in clear.
SEALED = "$kbs%"
_COLUMNS = (("admins", "totp_secret"), ("invitations", "totp_secret"))
_SECRETS = (*_COLUMNS, ("school_oidc_providers", "client_secret"))


def _table_kwargs(table: str) -> dict[str, Any]:
    # SQLite's batch copy keeps what the new table is told: admins keeps AUTOINCREMENT (0008).
    sqlite = op.get_bind().dialect.name == "sqlite"
    return {"sqlite_autoincrement": True} if sqlite and table == "admins" else {}


def _retype(old: sa.types.TypeEngine[str], new: sa.types.TypeEngine[str]) -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, table_kwargs=_table_kwargs(table)) as batch:
            batch.alter_column(column, existing_type=old, type_=new, existing_nullable=False)


def upgrade() -> None:
    _retype(sa.String(length=64), sa.Text())


def downgrade() -> None:
    bind = op.get_bind()
    sealed = 0
    for table, column in _SECRETS:
        values = sa.table(table, sa.column(column, sa.Text()))
        sealed += bind.scalar(
            sa.select(sa.func.count()).select_from(values).where(values.c[column].like(SEALED))
        )
    if sealed:
        raise ConfigurationError(
            f"downgrade below revision 0020 refused: {sealed} secret(s) in the registry are "
            "sealed, which code before 0020 cannot read and a migration cannot open; nothing was "
            "changed (restore the back-up taken before `ketenbroker registry seal-secrets`)"
        )
    _retype(sa.Text(), sa.String(length=64))
