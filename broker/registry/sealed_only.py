"""The registry's mark that it holds sealed secrets only (revision 0021): from then on a staff
TOTP secret or a school's client secret in clear is refused, never used.

Before it, a value in clear is read as it is (COMPAT(clear-registry-secrets)): what code before
revision 0020 wrote. That must not stay so for good: someone who can write to the database (or
puts back a row from an old back-up) could then give an account a TOTP secret of their own
choosing, or a school a client secret. The mark is one row, `sealed_only`, set

- by `registry seal-secrets` when it finishes (nothing is left in clear then), and
- by revision 0021 when the registry holds no value in clear: a new registry (`init`, which
  migrates before any secret is written), or one whose values were all sealed at 0020.

An upgraded registry with values still in clear gets it from its first `seal-secrets`. Nothing
in the broker removes it: revision 0021 down drops the table, back to reading clear values.

Reading it costs nothing while every value is sealed: `seal_for` reads it only when a value in
clear is met, in the transaction that read the value (at most once per load of a worker's view,
once per staff sign-in with such a value). The row is in the database, so whoever can write
there can also delete it: the mark stops values put in clear by hand or by a restore, not an
attacker who knows to delete it first (`registry status` and the refusals' log lines show it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from broker.core.sealed_secrets import SecretSeal, in_clear
from broker.registry.tables import Base, as_utc

MARK_ROW_ID = 1


class SealedOnlyRow(Base):
    """Present: the registry holds sealed secrets only, since `since` (revision 0021)."""

    __tablename__ = "sealed_only"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def sealed_only_since(session: Session) -> datetime | None:
    """When the registry was marked as holding sealed secrets only; None: not (yet)."""
    since = session.scalar(select(SealedOnlyRow.since).where(SealedOnlyRow.id == MARK_ROW_ID))
    return as_utc(since) if since is not None else None


def mark_sealed_only(session: Session, now: datetime) -> datetime:
    """Set the mark (kept as it is when set already); when it was set."""
    since = sealed_only_since(session)
    if since is not None:
        return since
    try:
        # In a savepoint: two runs at once on a registry with no secret row lock nothing, both
        # find no mark, and the second insert meets the first's row; it then reads that one.
        with session.begin_nested():
            session.add(SealedOnlyRow(id=MARK_ROW_ID, since=as_utc(now)))
    except IntegrityError:
        marked = sealed_only_since(session)
        assert marked is not None  # the row the insert met
        return marked
    return as_utc(now)


def seal_for(session: Session, seal: SecretSeal, stored: Iterable[str]) -> SecretSeal:
    """The seal to open `stored` (values read in `session`) with: `seal`, or the one refusing
    values in clear when one of them is in clear and the registry is marked. The mark is read
    only then, so reading sealed values costs no query more."""
    if any(in_clear(value) for value in stored) and sealed_only_since(session) is not None:
        return seal.refusing_clear()
    return seal
