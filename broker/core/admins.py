"""Portal administrators: who they are and what their role lets them reach.

Administrators are adults acting for an organisation (the broker's operator, a school, a
publisher); their e-mail address is their login id. It is stored in the registry and shown in the
portal, but never written to a log: logs name an administrator by `id` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AdminRole(StrEnum):
    OPERATOR = "operator"
    SCHOOL = "school"
    PUBLISHER = "publisher"


@dataclass(frozen=True)
class Admin:
    """An administrator account. `tenant_id` is the school id or publisher id (None for an
    operator, who acts for the broker itself)."""

    id: int
    email: str
    role: AdminRole
    tenant_id: str | None

    def may_act_for(self, role: AdminRole, tenant_id: str | None) -> bool:
        """The one rights rule: the role must match, and for a tenant role the tenant too."""
        if self.role is not role:
            return False
        return role is AdminRole.OPERATOR or (tenant_id is not None and tenant_id == self.tenant_id)


@dataclass(frozen=True)
class AdminCredentials:
    """What sign-in checks against; read only by the sign-in step, never rendered."""

    admin: Admin
    password_hash: str = field(repr=False)
    # None: the stored secret does not open with this configuration's keys
    # (core/sealed_secrets.py); sign-in stops after the password, saying so, until it is fixed.
    totp_secret: str | None = field(repr=False)
    # True (with `totp_secret` None): it was refused as a value in clear in a registry that
    # holds sealed secrets only (registry/sealed_only.py); sign-in stops likewise.
    totp_in_clear: bool = False


@dataclass(frozen=True)
class Invitation:
    """An operator's invitation: the token itself is only ever in the link, stored as a hash."""

    email: str
    role: AdminRole
    tenant_id: str | None
    expires_at: datetime
    totp_secret: str = field(repr=False)
    # Names the invitation in the operator's pages (to withdraw it); the token stays unknown.
    token_hash: str = ""


@dataclass(frozen=True)
class Publisher:
    """An organisation offering services; its administrators manage those services."""

    id: str
    name: str
