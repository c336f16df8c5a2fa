"""Sealing every secret the registry keeps under the current key (`registry seal-secrets`).

Revision 0020 cannot seal (a migration has no key), and code before it cannot read a sealed
value, so the values written before this version stay in clear until the operator, once every
worker runs this version, runs `ketenbroker registry seal-secrets`. The same command re-seals
values sealed under `keys.previous_session_secret` after a rotation of the session secret.

All in one transaction, every row locked, every value opened (those under the current key too,
so a run with nothing to do has checked them): a value that does not open (a key this configuration
lacks, a changed value) stops the whole run and changes nothing, since sealing the rest under a
key that may be the wrong one would only add to what cannot be opened. Used, withdrawn and
expired invitations keep no secret: theirs are emptied, never opened (the administrator's row
holds a used one's; an expired one's is of no use to anyone), so an expired invitation whose
value does not open cannot stop the run, nor outlive it. An empty value is no secret: neither
counted nor sealed.

Once the registry is marked as holding sealed secrets only (sealed_only.py), a value in clear
does not open either: the broker wrote none since, so sealing it would make a value someone put
in the database the account's or the school's secret for good. The run stops, naming it, and
the secret must be given again. A run that finishes leaves nothing in clear, so it sets the mark
(a dry run says it would). The mark is read after every row is locked: a run that waited for
another sees the mark that one set.

Locks: invitations first, then administrators, then schools' OIDC rows, the order in which a
school's or a publisher's removal (removal.py) and an administrator's (admin_removal.py) take
them; in any other order the run and a removal that each held one table's rows could wait for
each other (a PostgreSQL deadlock, one of them rolled back).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from broker.core.errors import ConfigurationError
from broker.core.sealed_secrets import (
    SEALED_MARK,
    SecretBinding,
    SecretSeal,
    SecretState,
    SecretUnreadable,
)
from broker.registry.admin_tables import AdminRow, InvitationRow
from broker.registry.sealed_only import sealed_only_since
from broker.registry.tables import SchoolOidcRow, as_utc

STAFF, INVITATIONS, SCHOOLS = "staff TOTP", "invitation TOTP", "school client"
KINDS = (STAFF, INVITATIONS, SCHOOLS)


@dataclass
class SealingReport:
    """Counts per kind (`KINDS`), nothing more: no id, no value."""

    applied: bool = False
    # In clear, sealed now.
    sealed: Counter[str] = field(default_factory=Counter)
    # Sealed under an older key (the previous session secret's), sealed again under the current.
    resealed: Counter[str] = field(default_factory=Counter)
    # Sealed under the current key already.
    current: Counter[str] = field(default_factory=Counter)
    # Used, withdrawn or expired invitations whose secret was emptied.
    forgotten: int = 0
    # Since when the registry holds sealed secrets only (sealed_only.py): before the run, or
    # from it when applied; None after a dry run on a registry not marked yet.
    sealed_only_since: datetime | None = None
    # Whether this run sets the mark (a dry run: would).
    marks: bool = False

    @property
    def clear_left(self) -> int:
        """Values still in clear after this run: 0 when applied, else those it would seal."""
        return 0 if self.applied else sum(self.sealed.values())


class SecretsUnreadable(ConfigurationError):
    """Values that this configuration's keys do not open: the run changed nothing."""

    code = "sealed_secrets_unreadable"

    def __init__(self, problems: list[SecretUnreadable]) -> None:
        named = "; ".join(problem.detail for problem in problems)
        super().__init__(
            f"{len(problems)} secret(s) cannot be opened, so nothing was sealed: {named}. "
            "Set keys.previous_session_secret to the session secret they were sealed under, "
            "or give each secret again (a school's on its identity provider page or by "
            "registry import; an administrator: remove the account and invite them again)"
        )
        self.problems = problems


def _in_clear(column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    return (column != "") & column.not_like(f"{SEALED_MARK}%")


def count_in_clear(session: Session, now: datetime) -> int:
    """How many secrets are still in clear (`ketenbroker migrate` says so): no key needed. An
    invitation that is used or has expired counts for nothing: the run empties its secret."""
    total = 0
    for column in (AdminRow.totp_secret, SchoolOidcRow.client_secret):
        total += session.scalar(select(func.count()).where(_in_clear(column))) or 0
    # Expiry compared here, as `open_invitations` does: SQLite keeps no time zone to compare by.
    open_ones = select(InvitationRow.expires_at).where(
        InvitationRow.used.is_(False), _in_clear(InvitationRow.totp_secret)
    )
    return total + sum(1 for expires in session.scalars(open_ones) if as_utc(expires) > now)


def seal_every_secret(session: Session, seal: SecretSeal, now: datetime) -> SealingReport:
    """Seal (or re-seal) every secret under `seal`'s current key, in `session`'s transaction;
    the caller commits (and sets the mark, sealed_only.py), or rolls back for a dry run.
    `SecretsUnreadable` before any write when any value does not open (one in clear too, once
    the registry is marked). Invitations used or expired at `now` are emptied, not opened."""
    if seal.current_key_id is None:
        raise ConfigurationError(
            "cannot seal: the registry was opened without the broker's configuration"
        )
    report = SealingReport()
    problems: list[SecretUnreadable] = []
    writes: list[tuple[AdminRow | InvitationRow | SchoolOidcRow, str]] = []
    # Invitations before administrators: the removals' order (the module's docstring).
    invitations = select(InvitationRow).order_by(InvitationRow.token_hash).with_for_update()
    invitation_rows = list(session.scalars(invitations))
    admins = list(session.scalars(select(AdminRow).order_by(AdminRow.id).with_for_update()))
    schools = select(SchoolOidcRow).order_by(SchoolOidcRow.school_id).with_for_update()
    school_rows = list(session.scalars(schools))
    # Every row locked: now the mark, as the last run to commit left it.
    report.sealed_only_since = sealed_only_since(session)
    report.marks = report.sealed_only_since is None
    opening = seal if report.marks else seal.refusing_clear()

    def look(
        row: AdminRow | InvitationRow | SchoolOidcRow, kind: str, stored: str, bound: SecretBinding
    ) -> None:
        if not stored:
            return  # no secret: nothing to open or seal
        # Every value opened, those under the current key too: a run that reports nothing to
        # do has also checked that everything opens.
        try:
            clear = opening.open(stored, bound)
        except SecretUnreadable as unreadable:
            problems.append(unreadable)
            return
        state = seal.state(stored)
        if state is SecretState.CURRENT:
            report.current[kind] += 1
            return
        (report.sealed if state is SecretState.CLEAR else report.resealed)[kind] += 1
        writes.append((row, seal.seal(clear, bound)))

    for invitation in invitation_rows:
        if invitation.used or as_utc(invitation.expires_at) <= now:
            if invitation.totp_secret:
                report.forgotten += 1
                writes.append((invitation, ""))
        else:
            look(invitation, INVITATIONS, invitation.totp_secret, invitation.totp_binding)
    for admin in admins:
        look(admin, STAFF, admin.totp_secret, admin.totp_binding)
    for school in school_rows:
        bound = SecretBinding.school_client_secret(school.school_id)
        look(school, SCHOOLS, school.client_secret, bound)
    if problems:
        raise SecretsUnreadable(problems)
    for row, stored in writes:
        if isinstance(row, SchoolOidcRow):
            row.client_secret = stored
        else:
            row.totp_secret = stored
    return report
