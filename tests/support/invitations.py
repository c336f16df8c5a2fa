"""An invitation as a version before per-browser seeds sent it: with the TOTP seed its page
showed stored in the row, sealed and bound to the token hash (COMPAT(invitation-stored-seed),
web/portal/invitation_seed.py); and one a version before one open invitation per address made
beside another (`add_invitation` refuses that now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from broker.core.admins import AdminRole
from broker.core.sealed_secrets import SecretBinding, SecretSeal
from broker.registry.admin_tables import InvitationRow
from broker.registry.migration import migration_connection
from tests.support.tables import table_of


def store_old_invitation(
    registry_url: str,
    seal: SecretSeal,
    hashed: str,
    email: str,
    role: AdminRole,
    tenant_id: str | None,
    secret: str,
    expires_at: datetime | None = None,
) -> None:
    """Write the row as the older version did (`email` lower-case, as it stored it)."""
    sealed = seal.seal(secret, SecretBinding.invitation_totp(hashed))
    _store(registry_url, hashed, email, role, tenant_id, sealed, expires_at)


def store_second_invitation(
    registry_url: str, hashed: str, email: str, role: AdminRole, tenant_id: str | None
) -> None:
    """Write an invitation beside one open for the same address, as an older version did."""
    _store(registry_url, hashed, email, role, tenant_id, "", None)


def _store(
    registry_url: str,
    hashed: str,
    email: str,
    role: AdminRole,
    tenant_id: str | None,
    totp_secret: str,
    expires_at: datetime | None,
) -> None:
    with migration_connection(registry_url) as connection:
        connection.execute(
            insert(table_of(InvitationRow)).values(
                token_hash=hashed,
                email=email,
                role=role.value,
                tenant_id=tenant_id,
                totp_secret=totp_secret,
                expires_at=expires_at or datetime.now(UTC) + timedelta(days=1),
                created_by=1,
                used=False,
            )
        )
