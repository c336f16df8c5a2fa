"""The last good copy of every metadata source, and what the login path reads of it.

A refresh that verified a download replaces that source's entities in one transaction and bumps
the registry generation only when the download differs from the copy held (same SHA-256: only
the source's `fetched_at` moves), so every worker rebuilds its pysaml2 view on its next look and
an unchanged feed costs nothing. A verified download older than the copy held (`is_older`: a
replayed feed) is refused in the same transaction, the row locked, so two refreshes running at
once cannot both pass the check. A refused download only records its reason code: the copy held
stays in force. The registry never creates schools or services from a source; a registered
school or service whose entity id a source holds takes that source's metadata (reading.py).

When several sources hold an entity, a copy from a source limited to some registration
authorities (whose list therefore took it) beats every copy from a source without a list, and
among those the latest validUntil wins (`copy_rank`): an interfederation feed's copy of an
entity id, registered again by another federation, never stands in for the national one. The
list a copy was read under is kept with it, and the digest held covers the list as well as the
feed (`copy_digest`), so a changed list re-reads an unchanged feed, and so does a copy that
code from before revision 0023 stored unfiltered under a list (see `copy_digest`).

With the copy, the same transaction keeps the members the download left out for a problem of
their own (`left_out_json`, revision 0026): every successful refresh replaces them, an unchanged
feed's too (a member's own validUntil passes with the clock), and a refused one keeps them with
the copy. The attention report reads them (`left_out`): a registered school whose entity the feed
holds but left out needs its federation entry mended, not its metadata registered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from hashlib import sha256

from sqlalchemy import Engine, Select, delete, insert, select

from broker.core.federation import (
    FederationEntity,
    FeedDates,
    LeftOut,
    OlderThanHeld,
    SourceHealth,
    SourceRecord,
    is_older,
    sources_health,
)
from broker.registry.changes import bump_generation
from broker.registry.database import session_on
from broker.registry.federation_tables import FederationEntityRow, MetadataSourceRow
from broker.registry.tables import as_utc

NO_END = datetime.max.replace(tzinfo=UTC)
# Rows per INSERT: 5,000 entities go in a handful of statements, within every driver's limits.
_BATCH = 500
# Members left out kept per source, and the characters of each one's detail: a feed with
# thousands of broken members must not make its row megabytes (each is in the refresh's
# output and log all the same). The registration authorities' exclusions are never kept.
MAX_LEFT_OUT_HELD = 1000
MAX_LEFT_OUT_DETAIL = 300


def _utc(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None


def copy_rank(listed: str | None, until: datetime | None) -> tuple[bool, datetime]:
    """Which of several sources' copies of one entity is used: the highest. `listed`: the
    registration authorities its source was read under (`MetadataSourceRow`); a listed
    source's copy wins even when it has expired (the entity is then not trusted: its
    federation's word, not another's copy)."""
    return (listed is not None, as_utc(until) if until is not None else NO_END)


def _authority_lines(authorities: Sequence[str]) -> str | None:
    return "\n".join(sorted(authorities)) or None


def copy_digest(feed_digest: str, authorities: Sequence[str]) -> str:
    """What a copy held is compared by: the feed's SHA-256 (hex) alone when read without a
    list, else a SHA-256 over the list and that digest. Code from before revision 0023
    stored the feed's digest alone, unfiltered, and left the list column as it was: a copy it
    stored under a list now differs in digest, so the next refresh reads the feed again
    instead of keeping the unfiltered entities. A copy stored without a list keeps its digest;
    one stored under a list by code that did not yet do this is read again once."""
    lines = _authority_lines(authorities)
    if lines is None:
        return feed_digest
    # Authorities hold no whitespace (config.py), so the newline and NUL separate unambiguously.
    return sha256(f"{lines}\n\0{feed_digest}".encode()).hexdigest()


def left_out_json(left_out: Sequence[LeftOut]) -> str | None:
    """What `metadata_sources.left_out` holds: the first `MAX_LEFT_OUT_HELD` members, each
    detail cut to `MAX_LEFT_OUT_DETAIL` characters, as a JSON list; None for none."""
    if not left_out:
        return None
    return json.dumps(
        [
            {
                "entity_id": each.entity_id,
                "role": each.role,
                "reason": each.reason,
                "detail": each.detail[:MAX_LEFT_OUT_DETAIL],
            }
            for each in left_out[:MAX_LEFT_OUT_HELD]
        ],
        separators=(",", ":"),
    )


def _left_out_of(held: str | None) -> list[LeftOut]:
    """`left_out_json`'s list read back; a value that is not such a list reads as none."""
    try:
        members = json.loads(held) if held else []
    except ValueError:
        return []
    if not isinstance(members, list):
        return []
    return [
        LeftOut(m["entity_id"], m["reason"], m.get("detail") or "", m.get("role"))
        for m in members
        if isinstance(m, dict)
        and isinstance(m.get("entity_id"), str)
        and isinstance(m.get("reason"), str)
    ]


def ranked_copies() -> Select[str, datetime | None, str, str | None]:
    """Entity id, validUntil, XML and the source's list (for `copy_rank`) of the entities'
    copies; the caller adds its WHERE."""
    return select(
        FederationEntityRow.entity_id,
        FederationEntityRow.valid_until,
        FederationEntityRow.xml,
        MetadataSourceRow.registration_authorities,
    ).join(MetadataSourceRow, MetadataSourceRow.name == FederationEntityRow.source)


class FederationStore:
    """Writes and status reads of metadata sources; `writer` is the write-locking engine."""

    def __init__(self, engine: Engine, writer: Engine) -> None:
        self._engine = engine
        self._writer = writer

    def store(
        self,
        source: str,
        digest: str,
        dates: FeedDates,
        entities: Iterable[FederationEntity],
        now: datetime,
        *,
        allow_older: bool = False,
        authorities: Sequence[str] = (),
        left_out: Sequence[LeftOut] = (),
    ) -> bool:
        """Make a verified download the source's last good copy; True when it changed anything.
        `digest`: the download's SHA-256 (hex); what is held is `copy_digest`'s. Raises
        OlderThanHeld, changing nothing, for a download older than the copy held, unless
        `allow_older` (an operator going back on purpose). `authorities`: the registration
        authorities the download was read under (empty: none, every member). `left_out`: the
        members it left out for a problem of their own, kept with the copy (replacing the
        last ones, also when the copy is unchanged: no generation bump for them alone, the
        attention report reads them fresh)."""
        listed = _authority_lines(authorities)
        digest = copy_digest(digest, authorities)
        with session_on(self._writer) as session:
            row = session.get(MetadataSourceRow, source, with_for_update=True)
            if row is None:
                row = MetadataSourceRow(name=source, entity_count=0)
                session.add(row)
            elif row.digest is not None and row.digest != digest and not allow_older:
                held = FeedDates(_utc(row.published_at), _utc(row.valid_until))
                if is_older(dates, held):
                    raise OlderThanHeld(dates, held)
            row.last_attempt_at = now
            row.last_error = None
            row.fetched_at = now
            row.left_out = left_out_json(left_out)
            if row.digest == digest and row.registration_authorities == listed:
                return False
            kept = list(entities)
            row.digest = digest
            row.valid_until = dates.valid_until
            row.published_at = dates.published_at
            row.entity_count = len(kept)
            row.registration_authorities = listed
            session.flush()
            session.execute(delete(FederationEntityRow).where(FederationEntityRow.source == source))
            for start in range(0, len(kept), _BATCH):
                session.execute(
                    insert(FederationEntityRow),
                    [
                        {
                            "source": source,
                            "entity_id": e.entity_id,
                            "role": e.role,
                            "valid_until": e.valid_until,
                            "xml": e.xml,
                        }
                        for e in kept[start : start + _BATCH]
                    ],
                )
            bump_generation(session)
            return True

    def refused(self, source: str, reason: str, now: datetime) -> None:
        """Record a refused or failed refresh; the last good copy stays in force."""
        with session_on(self._writer) as session:
            row = session.get(MetadataSourceRow, source)
            if row is None:
                session.add(
                    MetadataSourceRow(
                        name=source, entity_count=0, last_attempt_at=now, last_error=reason
                    )
                )
            else:
                row.last_attempt_at = now
                row.last_error = reason

    def records(self) -> dict[str, SourceRecord]:
        with session_on(self._engine) as session:
            return {
                row.name: SourceRecord(
                    name=row.name,
                    fetched_at=_utc(row.fetched_at),
                    valid_until=_utc(row.valid_until),
                    entity_count=row.entity_count,
                    last_attempt_at=as_utc(row.last_attempt_at),
                    last_error=row.last_error,
                    registration_authorities=tuple((row.registration_authorities or "").split()),
                )
                for row in session.scalars(select(MetadataSourceRow))
            }

    def left_out(self) -> list[LeftOut]:
        """The members each source's last good download left out for a problem of their own,
        the sources by name, each's in document order (core/federation.py `left_out_in`)."""
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(MetadataSourceRow.left_out)
                .where(MetadataSourceRow.left_out.is_not(None))
                .order_by(MetadataSourceRow.name)
            )
            return [each for held in rows for each in _left_out_of(held)]

    def health(self, sources: Sequence[tuple[str, int]], now: datetime) -> list[SourceHealth]:
        """`sources_health` of the records held (core/federation.py)."""
        return sources_health(self.records(), sources, now)

    def entity(self, entity_id: str, role: str) -> FederationEntity | None:
        """A source's copy of one entity (the one `copy_rank` puts first when several sources
        hold it)."""
        with session_on(self._engine) as session:
            rows = session.execute(
                ranked_copies().where(
                    FederationEntityRow.entity_id == entity_id, FederationEntityRow.role == role
                )
            ).all()
        if not rows:
            return None
        _, until, xml, _ = max(rows, key=lambda r: copy_rank(r[3], r[1]))
        return FederationEntity(entity_id, role, xml, _utc(until))

    def sources_of(self, role: str) -> dict[str, tuple[str, ...]]:
        """Every entity of `role` some source holds, with the names of those sources (the
        listing commands say where a registration's metadata comes from)."""
        held: dict[str, list[str]] = {}
        with session_on(self._engine) as session:
            rows = session.execute(
                select(FederationEntityRow.entity_id, FederationEntityRow.source)
                .where(FederationEntityRow.role == role)
                .order_by(FederationEntityRow.source)
            )
            for entity_id, source in rows:
                held.setdefault(entity_id, []).append(source)
        return {entity_id: tuple(sources) for entity_id, sources in held.items()}

    def forget(self, source: str) -> bool:
        """Drop a source's copy and record, with its entities: only ever on the operator's word
        (`metadata forget`), never as a side effect of a refresh."""
        with session_on(self._writer) as session:
            row = session.get(MetadataSourceRow, source)
            if row is None:
                return False
            session.execute(delete(FederationEntityRow).where(FederationEntityRow.source == source))
            session.delete(row)
            bump_generation(session)
            return True
