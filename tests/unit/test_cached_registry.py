"""The worker's cached registry view: fresh where it must be, quiet where it may be."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from broker.core.chain_move import ChainMove
from broker.core.model import Chain, ReleasePolicy, School, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.registry.cached import CachedRegistryReader
from broker.registry.errors import ServiceSwitchedOff


@dataclass
class CountingSource:
    """An in-memory RegistryReader that counts what it is asked."""

    schools_: dict[str, School] = field(default_factory=dict)
    services_: dict[str, Service] = field(default_factory=dict)
    chains_: dict[str, Chain] = field(default_factory=dict)
    policies: dict[tuple[str, str], ReleasePolicy] = field(default_factory=dict)
    key_versions: dict[str, ChainKeyVersion] = field(default_factory=dict)
    moves: dict[str, ChainMove] = field(default_factory=dict)
    naming_idps: set[str] = field(default_factory=set)
    gen: int = 1
    calls: dict[str, int] = field(default_factory=dict)

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def school(self, school_id: str) -> School | None:
        self._count("school")
        return self.schools_.get(school_id)

    def schools_by_idp(self, idp_entity_id: str) -> tuple[School, ...]:
        self._count("schools_by_idp")
        return tuple(s for s in self.schools_.values() if s.idp_entity_id == idp_entity_id)

    def idp_names_school(self, idp_entity_id: str) -> bool:
        self._count("idp_names_school")
        return idp_entity_id in self.naming_idps

    def idps_naming_school(self) -> frozenset[str]:
        self._count("idps_naming_school")
        return frozenset(self.naming_idps)

    def schools(self) -> list[School]:
        self._count("schools")
        return list(self.schools_.values())

    def chain(self, chain_id: str) -> Chain | None:
        self._count("chain")
        return self.chains_.get(chain_id)

    def service(self, service_id: str) -> Service | None:
        self._count("service")
        return self.services_.get(service_id)

    def service_by_entity_id(self, entity_id: str) -> Service | None:
        self._count("service_by_entity_id")
        return next((s for s in self.services_.values() if s.entity_id == entity_id), None)

    def services(self) -> list[Service]:
        self._count("services")
        return list(self.services_.values())

    def policy(self, school_id: str, service_id: str) -> ReleasePolicy:
        self._count("policy")
        return self.policies.get((school_id, service_id), ReleasePolicy(school_id, service_id))

    def pseudonym_key_version(self, chain: str) -> ChainKeyVersion | None:
        self._count("pseudonym_key_version")
        return self.key_versions.get(chain)

    def pseudonym_key_versions(self) -> list[ChainKeyVersion]:
        self._count("pseudonym_key_versions")
        return list(self.key_versions.values())

    def chain_move(self, service_id: str) -> ChainMove | None:
        self._count("chain_move")
        return self.moves.get(service_id)

    def chain_moves(self) -> list[ChainMove]:
        self._count("chain_moves")
        return list(self.moves.values())

    def school_metadata(self) -> dict[str, str]:
        return {}

    def service_metadata(self) -> dict[str, str]:
        return {}

    def metadata_expiry(self) -> datetime | None:
        self._count("metadata_expiry")
        return None

    def generation(self) -> int:
        self._count("generation")
        return self.gen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _setup() -> tuple[CountingSource, Clock, CachedRegistryReader]:
    source = CountingSource()
    source.schools_["99XX00"] = School("99XX00", "Demo Lyceum", "https://idp.example/md")
    source.chains_["leermiddelen"] = Chain("leermiddelen", "Learning materials")
    source.services_["leesplank"] = Service(
        "leesplank", "Leesplank", "https://sp.example/md", "leermiddelen"
    )
    clock = Clock()
    return source, clock, CachedRegistryReader(source, clock=clock)


def test_lookups_within_a_second_ask_the_source_once() -> None:
    source, _clock, view = _setup()
    for _ in range(10):
        assert view.school("99XX00") is not None
        assert view.service_by_entity_id("https://sp.example/md") is not None
        assert view.schools_by_idp("https://idp.example/md")
        assert view.chain("leermiddelen") is not None
    assert source.calls["generation"] == 1
    assert source.calls["schools"] == 1
    assert source.calls["services"] == 1
    assert "school" not in source.calls


def test_a_change_in_generation_reloads_within_a_second() -> None:
    source, clock, view = _setup()
    assert view.service("leesplank") is not None
    source.services_["leesplank"] = Service("leesplank", "Leesplank", "https://sp.example/md", None)
    source.gen = 2
    clock.now += 0.5
    assert view.service("leesplank").chain_id == "leermiddelen"  # type: ignore[union-attr]
    clock.now += 0.6
    assert view.service("leesplank").chain_id is None  # type: ignore[union-attr]
    assert view.generation() == 2


def test_a_new_entity_is_found_at_once() -> None:
    source, _clock, view = _setup()
    assert view.school("11AA00") is None
    source.schools_["11AA00"] = School("11AA00", "Nieuw", "https://idp.new/md")
    source.gen = 2
    # No time passes: the miss itself makes the view look again.
    assert view.school("11AA00") is not None
    assert view.schools_by_idp("https://idp.new/md")


def test_policies_are_kept_until_the_generation_changes() -> None:
    source, clock, view = _setup()
    for _ in range(5):
        assert view.policy("99XX00", "leesplank").version == 0
    assert source.calls["policy"] == 1
    source.policies[("99XX00", "leesplank")] = ReleasePolicy(
        "99XX00", "leesplank", frozenset({"given_name"}), 1
    )
    source.gen = 2
    clock.now += 1.1
    assert view.policy("99XX00", "leesplank").attributes == frozenset({"given_name"})
    assert source.calls["policy"] == 2


def test_a_switched_off_service_stays_refused_from_memory() -> None:
    source, _clock, view = _setup()

    def switched_off(school_id: str, service_id: str) -> ReleasePolicy:
        source._count("policy")
        raise ServiceSwitchedOff(school_id, service_id)

    source.policy = switched_off  # type: ignore[method-assign]
    for _ in range(3):
        with pytest.raises(ServiceSwitchedOff):
            view.policy("99XX00", "leesplank")
    assert source.calls["policy"] == 1


def test_unknown_ids_stay_unknown() -> None:
    _source, _clock, view = _setup()
    assert view.service("nope") is None
    assert view.service_by_entity_id("https://nope.example") is None
    assert view.chain("nope") is None


def test_a_chains_key_rotation_arrives_with_the_generation() -> None:
    source, clock, view = _setup()
    assert view.pseudonym_key_version("leermiddelen") is None
    rotated = ChainKeyVersion("leermiddelen", 2, 1, datetime(2027, 1, 1, tzinfo=UTC))
    source.key_versions["leermiddelen"] = rotated
    source.gen = 2
    clock.now += 1.1
    assert view.pseudonym_key_version("leermiddelen") == rotated
    assert view.pseudonym_key_version("toetsen") is None
    # Read with the rest of the snapshot, never per login.
    assert "pseudonym_key_version" not in source.calls
    assert source.calls["pseudonym_key_versions"] == 2


def test_a_services_chain_move_arrives_with_the_generation_and_is_never_read_per_login() -> None:
    source, clock, view = _setup()
    assert view.chain_move("lesmethode") is None
    move = ChainMove("lesmethode", "toetsen", 1, "leermiddelen", datetime(2027, 1, 1, tzinfo=UTC))
    source.moves["lesmethode"] = move
    source.gen = 2
    clock.now += 1.1
    for _ in range(3):
        assert view.chain_move("lesmethode") == move
        assert view.chain_move("other") is None
    # Read with the rest of the snapshot (once per generation), never per login.
    assert "chain_move" not in source.calls
    assert source.calls["chain_moves"] == 2
