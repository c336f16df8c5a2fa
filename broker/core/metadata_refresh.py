"""What `metadata refresh` last made of a school's metadata URL, and when that needs the
operator: a school given by URL whose copy has not been refreshed for REFRESH_WARNING keeps
signing in only until its IdP rolls its certificate (ADFS: yearly, 20 days' notice).

Pure: the registry reads the records (revision 0028); the attention report's rule
`school_metadata_not_refreshed` (core/attention.py) asks `not_refreshed` of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# A timer runs the refresh hourly (docs/operations.md): three days without one accepted copy
# is not a hiccup of the school's server, and still leaves most of ADFS's 20 days' notice.
REFRESH_WARNING = timedelta(days=3)


@dataclass(frozen=True)
class RefreshRecord:
    """A school's last refresh outcomes: the last copy accepted (None: none since revision
    0028, or the URL was given before it), the last refused and its reason code."""

    refreshed_at: datetime | None = None
    failed_at: datetime | None = None
    failure: str | None = None


def not_refreshed(record: RefreshRecord, now: datetime) -> str | None:
    """Why the school's copy needs the operator, in English for the log and the report (no
    school data: dates and a reason code); None while the refresh keeps it current. Flagged
    when the last accepted copy is older than REFRESH_WARNING, or when none was ever recorded
    and the last fetch was refused."""
    failing = record.failed_at is not None and (
        record.refreshed_at is None or record.failed_at > record.refreshed_at
    )
    refusal = ""
    if failing and record.failed_at is not None:
        refusal = f"; last refused {record.failed_at.date().isoformat()} ({record.failure})"
    if record.refreshed_at is None:
        return f"no refresh accepted yet{refusal}" if failing else None
    if record.refreshed_at > now - REFRESH_WARNING:
        return None
    since = f"not refreshed since {record.refreshed_at.date().isoformat()}"
    return since + (refusal or "; no refusal recorded (does the refresh timer run?)")
