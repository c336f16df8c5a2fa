"""Federation metadata as the broker keeps it: entities of a source's last good copy, what is
known about each source, and whether a source is healthy (for /readyz and alerts).

Pure data and rules; fetching and parsing live in broker/saml, storing in broker/registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# A source counts as stale once its last good copy is older than this many refresh periods: one
# missed run is noise, two in a row is a broken timer or a feed that is down.
STALE_AFTER_PERIODS = 2
# How far a feed's publication instant may lie ahead of the broker's clock (two clocks never
# agree exactly). Further ahead it is refused: taken, it would make every correct feed after it
# "older than the copy held" until that instant came.
PUBLISHED_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class FederationEntity:
    """One entity of a verified download, in one role (`idp`: a school, `sp`: a publisher)."""

    entity_id: str
    role: str
    xml: str
    # The earlier of the document's and the entity's own validUntil; None: no end given.
    valid_until: datetime | None


# Why a member of a download was left out for a problem of its own (`LeftOut.reason`,
# saml/aggregate.py). A registered school or service whose entity id a source left out has no
# usable metadata from it although the feed holds it: its entry in the federation needs mending.
ENTITY_UNUSABLE = "entity_unusable"  # it fails the role's checks: `detail` says which
ENTITY_EXPIRED = "entity_expired"  # its own validUntil, or its group's, has passed
ENTITY_ID_REPEATED = "entity_id_repeated"  # an earlier member has its entity id: that one is used


@dataclass(frozen=True)
class LeftOut:
    """A member of a download left out, and why: `reason` one of the codes above or of
    saml/registration_authority.py; `detail` what is wrong (the entity id and a URL, the
    federation's, never personal data), else empty. `role`: "idp" or "sp", or None when the
    member was left out before its roles were read (it is then left out in either)."""

    entity_id: str
    reason: str
    detail: str = ""
    role: str | None = None

    def in_role(self, role: str) -> bool:
        return self.role is None or self.role == role


def left_out_in(members: Iterable[LeftOut], role: str) -> dict[str, LeftOut]:
    """The members left out in `role` (or before their roles were read), by entity id: the
    first of each (several sources, or a repeated entity id, may leave one out)."""
    found: dict[str, LeftOut] = {}
    for each in members:
        if each.in_role(role):
            found.setdefault(each.entity_id, each)
    return found


@dataclass(frozen=True)
class FeedDates:
    """When a verified feed says it was published and until when it holds."""

    # mdrpi:PublicationInfo/@creationInstant of the document; None: the feed does not say.
    published_at: datetime | None
    valid_until: datetime | None


def is_older(offered: FeedDates, held: FeedDates) -> bool:
    """Whether `offered` is an older publication than the copy `held`: a replay of a feed the
    federation has since replaced (a rotated-out key, a removed entity), by whoever relays it.

    Both publication instants known: those decide. Otherwise validUntil: a federation signs
    every feed for the same interval from its signing, so a later feed never ends earlier. (A
    federation that shortens that interval makes its next feeds end earlier than the copy held:
    those are refused until the copy held is past its own end; `metadata refresh
    --allow-older` takes one at once, docs/operations.md.) A feed published at the same instant
    as the copy held, or ending at the same moment, is not older: a re-signed copy of it."""
    if offered.published_at is not None and held.published_at is not None:
        return offered.published_at < held.published_at
    if offered.valid_until is not None and held.valid_until is not None:
        return offered.valid_until < held.valid_until
    return False


class OlderThanHeld(Exception):
    """A verified feed refused because it is older than the source's copy held (`is_older`)."""

    code = "older_than_held"

    def __init__(self, offered: FeedDates, held: FeedDates) -> None:
        super().__init__(self.code)
        self.offered = offered
        self.held = held


@dataclass(frozen=True)
class SourceRecord:
    """What the registry knows about a source: its last good copy and its last attempt."""

    name: str
    fetched_at: datetime | None
    valid_until: datetime | None
    entity_count: int
    last_attempt_at: datetime
    last_error: str | None
    # The registration authorities the copy held was read under, sorted; (): no list.
    registration_authorities: tuple[str, ...] = ()


class SourceState(StrEnum):
    OK = "ok"
    # Trust continues on the last good copy, but refreshing has failed for too long.
    STALE = "stale"
    # The last good copy is past its validUntil: its entities are no longer trusted.
    EXPIRED = "expired"
    # No good copy yet: nothing from this source is trusted.
    MISSING = "missing"
    # The registry holds a copy of a source the configuration no longer names: still in force
    # (until its validUntil), refreshed by nobody, until the operator drops it (`metadata
    # forget`) or configures the source again. A refresh never drops a copy by itself: a
    # misspelled or renamed source would otherwise take its schools' metadata with it.
    UNCONFIGURED = "unconfigured"


@dataclass(frozen=True)
class SourceHealth:
    name: str
    state: SourceState
    # A reason code: the last refresh's refusal, `metadata_expired`, `never_fetched`, ...
    reason: str | None
    valid_until: datetime | None
    fetched_at: datetime | None
    # False: a copy held of a source the configuration no longer names (`unconfigured_health`),
    # `unconfigured` while it holds, `expired` (untrusted, as a configured one) once it lapsed.
    configured: bool = True

    @property
    def usable(self) -> bool:
        """Whether logins through this configured source's entities can work (stale still
        works). An unconfigured copy counts as not usable: whether or not its copy still
        holds, it needs the operator."""
        return self.state in (SourceState.OK, SourceState.STALE)

    @property
    def untrusted(self) -> bool:
        """Expired or missing: none of the source's entities is trusted."""
        return self.state in (SourceState.EXPIRED, SourceState.MISSING)


NOT_CONFIGURED = "source_not_configured"
EXPIRED_REASON = "metadata_expired"


def unconfigured_health(record: SourceRecord, now: datetime) -> SourceHealth:
    """A copy held of a source the configuration does not name: `SourceState.UNCONFIGURED`
    while it holds; past its validUntil none of its entities is trusted, so `EXPIRED` as a
    configured source's (the page alert, the attention report), `configured` False."""
    if record.valid_until is not None and record.valid_until <= now:
        state, reason = SourceState.EXPIRED, EXPIRED_REASON
    else:
        state, reason = SourceState.UNCONFIGURED, NOT_CONFIGURED
    return SourceHealth(
        record.name, state, reason, record.valid_until, record.fetched_at, configured=False
    )


def source_health(
    name: str, record: SourceRecord | None, refresh_seconds: int, now: datetime
) -> SourceHealth:
    if record is None or record.fetched_at is None:
        reason = record.last_error if record is not None else None
        return SourceHealth(name, SourceState.MISSING, reason or "never_fetched", None, None)
    if record.valid_until is not None and record.valid_until <= now:
        return SourceHealth(
            name, SourceState.EXPIRED, EXPIRED_REASON, record.valid_until, record.fetched_at
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


def sources_health(
    records: Mapping[str, SourceRecord], sources: Sequence[tuple[str, int]], now: datetime
) -> list[SourceHealth]:
    """The state of each configured source, given as (name, refresh_seconds), then of each
    copy held of a source not among them (`unconfigured`, or `expired` once past its
    validUntil; by name), from the registry's `records` of them. A record that holds no copy
    (its refreshes were all refused) puts nothing in force and is left out."""
    configured = [source_health(name, records.get(name), every, now) for name, every in sources]
    named = {name for name, _ in sources}
    return configured + [
        unconfigured_health(record, now)
        for name, record in sorted(records.items())
        if name not in named and record.fetched_at is not None
    ]
