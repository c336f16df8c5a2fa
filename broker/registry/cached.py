"""A worker's view of the registry: schools, chains, services, release policies and notice modes
from memory.

They change rarely and are read on every login; the view holds them in memory and drops them all
when the registry's generation changes (broker/registry/changes.py: every change the login path
reads bumps it). It asks for the generation at most once a second, at once when a lookup misses
(so a newly registered school or service works on its very first login in every worker), and at
once after a change made in this process. So a school's change of policy or notice mode shows on
the next login in the worker that made it and within a second in every other worker. Policies
and notice modes are loaded per (school, service) on first use, not all at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, TypeVar

from broker.core.chain_move import ChainMove
from broker.core.model import Chain, ReleasePolicy, School, Service
from broker.core.ports import RegistryReader
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.registry.changes import local_changes
from broker.registry.errors import ServiceSwitchedOff

MAX_STALENESS_SECONDS = 1.0
log = logging.getLogger(__name__)
T = TypeVar("T")


class CachedSource(RegistryReader, Protocol):
    """What the view reads from: the registry reader, plus every chain's key version at once."""

    def pseudonym_key_versions(self) -> list[ChainKeyVersion]: ...

    def chain_moves(self) -> list[ChainMove]: ...

    def idps_naming_school(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class _Snapshot:
    generation: int
    checked_at: float
    local_changes: int
    schools: dict[str, School]
    schools_by_idp: dict[str, tuple[School, ...]]
    # IdPs whose logins must name their school (core/shared_idp.py): read on every SAML login
    # and every SSO session's answer, so from memory with the schools, not from the database.
    naming_idps: frozenset[str]
    services: dict[str, Service]
    services_by_entity_id: dict[str, Service]
    chains: dict[str, Chain]
    # Pseudonym chains' key versions: a rotation bumps the generation, so it arrives here.
    key_versions: dict[str, ChainKeyVersion]
    # Services' chain move records, by service id: a move bumps the generation likewise.
    moves: dict[str, ChainMove]
    # Loaded on first use, per (school, service): policies (None: switched off), notice modes.
    pairs: dict[tuple[str, str, str], object] = field(default_factory=dict)


class CachedRegistryReader:
    """Implements `broker.core.ports.RegistryReader` over another reader (the SQL registry)."""

    def __init__(
        self,
        source: CachedSource,
        *,
        max_staleness: float = MAX_STALENESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._max_staleness = max_staleness
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def _current(self, *, fresh: bool = False) -> _Snapshot:
        snapshot = self._snapshot
        now = self._clock()
        local = local_changes()
        if (
            snapshot is not None
            and not fresh
            and snapshot.local_changes == local
            and now - snapshot.checked_at < self._max_staleness
        ):
            return snapshot
        generation = self._source.generation()
        if snapshot is not None and snapshot.generation == generation:
            snapshot = replace(snapshot, checked_at=now, local_changes=local)
        else:
            with self._lock:
                # Generation first, then the rows: a change in between only makes the next
                # check reload again, never hides the change.
                schools = self._source.schools()
                _note_unreadable_secrets(schools, generation)
                services = self._source.services()
                chain_ids = {s.chain_id for s in services if s.chain_id}
                chains = [c for c in map(self._source.chain, chain_ids) if c is not None]
                snapshot = _Snapshot(
                    generation=generation,
                    checked_at=now,
                    local_changes=local,
                    schools={s.id: s for s in schools},
                    schools_by_idp=_by_idp(schools),
                    naming_idps=self._source.idps_naming_school(),
                    services={s.id: s for s in services},
                    services_by_entity_id={s.entity_id: s for s in services},
                    chains={c.id: c for c in chains},
                    key_versions={r.chain: r for r in self._source.pseudonym_key_versions()},
                    moves={m.service_id: m for m in self._source.chain_moves()},
                )
        self._snapshot = snapshot
        return snapshot

    def _lookup(self, pick: Callable[[_Snapshot], T | None]) -> T | None:
        found = pick(self._current())
        if found is None:
            # Perhaps registered a moment ago: one fresh look before saying "unknown".
            found = pick(self._current(fresh=True))
        return found

    def school(self, school_id: str) -> School | None:
        return self._lookup(lambda s: s.schools.get(school_id))

    def schools_by_idp(self, idp_entity_id: str) -> tuple[School, ...]:
        return self._lookup(lambda s: s.schools_by_idp.get(idp_entity_id)) or ()

    def idp_names_school(self, idp_entity_id: str) -> bool:
        # No fresh look when absent: most IdPs are not; setting it bumps the generation, which
        # this view checks at least once a second (at once in the process that set it).
        return idp_entity_id in self._current().naming_idps

    def schools(self) -> list[School]:
        return sorted(self._current().schools.values(), key=lambda s: s.id)

    def chain(self, chain_id: str) -> Chain | None:
        return self._lookup(lambda s: s.chains.get(chain_id))

    def service(self, service_id: str) -> Service | None:
        return self._lookup(lambda s: s.services.get(service_id))

    def service_by_entity_id(self, entity_id: str) -> Service | None:
        return self._lookup(lambda s: s.services_by_entity_id.get(entity_id))

    def services(self) -> list[Service]:
        return sorted(self._current().services.values(), key=lambda s: s.id)

    def pseudonym_key_version(self, chain: str) -> ChainKeyVersion | None:
        # No fresh look on a miss: most chains have no record, and a rotation bumps the
        # generation, which this view checks at least once a second.
        return self._current().key_versions.get(chain)

    def pseudonym_key_versions(self) -> list[ChainKeyVersion]:
        """Every rotated chain's record, from memory (monitoring reads them at scrape time)."""
        return list(self._current().key_versions.values())

    def chain_move(self, service_id: str) -> ChainMove | None:
        # No fresh look on a miss, as for key versions: most services were never moved.
        return self._current().moves.get(service_id)

    def chain_moves(self) -> list[ChainMove]:
        return list(self._current().moves.values())

    def policy(self, school_id: str, service_id: str) -> ReleasePolicy:
        def load() -> ReleasePolicy | None:
            try:
                return self._source.policy(school_id, service_id)
            except ServiceSwitchedOff:
                return None

        policy = self.per_pair("policy", school_id, service_id, load)
        if policy is None:
            raise ServiceSwitchedOff(school_id, service_id)
        return policy

    def per_pair(self, kind: str, school_id: str, service_id: str, load: Callable[[], T]) -> T:
        """What `load` gives for one (school, service), kept until the generation changes.
        `kind` names what it is (one cache for several kinds); `load` reads the registry."""
        pairs = self._current().pairs
        key = (kind, school_id, service_id)
        if key in pairs:
            return pairs[key]  # type: ignore[return-value]
        # Loaded after the generation was read (_current): a change in between only makes
        # the next check drop it again, never keeps an older value under a newer generation.
        value = load()
        pairs[key] = value
        return value

    def school_metadata(self) -> dict[str, str]:
        return self._source.school_metadata()

    def service_metadata(self) -> dict[str, str]:
        return self._source.service_metadata()

    def metadata_expiry(self) -> datetime | None:
        return self._source.metadata_expiry()

    def generation(self) -> int:
        return self._current().generation


def _note_unreadable_secrets(schools: list[School], generation: int) -> None:
    """One line per school whose client secret this worker cannot open, once per view loaded:
    the operator's cue (its logins are refused, oidc/back.py, until the secret is given
    again). Ids and the reason only."""
    for school in schools:
        if school.oidc is not None and school.oidc.secret_problem:
            log.error(
                "school client secret unreadable school=%s generation=%d reason=%s",
                school.id,
                generation,
                school.oidc.secret_problem,
            )


def _by_idp(schools: list[School]) -> dict[str, tuple[School, ...]]:
    """Schools by IdP entity id, several for a shared IdP, each tuple in the order of `schools`
    (by id)."""
    grouped: dict[str, list[School]] = {}
    for school in schools:
        grouped.setdefault(school.idp_entity_id, []).append(school)
    return {entity_id: tuple(found) for entity_id, found in grouped.items()}
