"""Federation metadata as the broker keeps it: entities of a source's last good copy, what is
known about each source, and whether a source is healthy (for /readyz and alerts).

Pure data and rules; fetching and parsing live in broker/saml, storing in broker/registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# A source counts as stale once its last good copy is older than this many refresh periods: one
# missed run is noise, two in a row is a broken timer or a feed that is down.
STALE_AFTER_PERIODS = 2


@dataclass(frozen=True)
class FederationEntity:
    """One entity of a verified download, in one role (`idp`: a school, `sp`: a publisher)."""

    entity_id: str
    role: str
    xml: str
    # The earlier of the document's and the entity's own validUntil; None: no end given.
    valid_until: datetime | None


@dataclass(frozen=True)
class SourceRecord:
    """What the registry knows about a source: its last good copy and its last attempt."""

    name: str
    fetched_at: datetime | None
    valid_until: datetime | None
    entity_count: int
    last_attempt_at: datetime
    last_error: str | None


class SourceState(StrEnum):
    OK = "ok"
    # Trust continues on the last good copy, but refreshing has failed for too long.
    STALE = "stale"
    # The last good copy is past its validUntil: its entities are no longer trusted.
    EXPIRED = "expired"
    # No good copy yet: nothing from this source is trusted.
    MISSING = "missing"


@dataclass(frozen=True)
class SourceHealth:
    name: str
    state: SourceState
    # A reason code: the last refresh's refusal, `metadata_expired`, `never_fetched`, ...
    reason: str | None
    valid_until: datetime | None
    fetched_at: datetime | None

    @property
    def usable(self) -> bool:
        """Whether logins through this source's entities can work (stale still works)."""
        return self.state in (SourceState.OK, SourceState.STALE)


def source_health(
    name: str, record: SourceRecord | None, refresh_seconds: int, now: datetime
) -> SourceHealth:
    if record is None or record.fetched_at is None:
        reason = record.last_error if record is not None else None
        return SourceHealth(name, SourceState.MISSING, reason or "never_fetched", None, None)
    if record.valid_until is not None and record.valid_until <= now:
        return SourceHealth(
            name, SourceState.EXPIRED, "metadata_expired", record.valid_until, record.fetched_at
        )
    stale_after = timedelta(seconds=STALE_AFTER_PERIODS * refresh_seconds)
    if now - record.fetched_at > stale_after:
        return SourceHealth(
            name,
            SourceState.STALE,
            record.last_error or "not_refreshed",
            record.valid_until,
            record.fetched_at,
        )
    return SourceHealth(
        name, SourceState.OK, record.last_error, record.valid_until, record.fetched_at
    )
