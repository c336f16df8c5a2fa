"""Metadata sources against a real registry (SQLite and PostgreSQL) and a feed on a loopback
port: a signed aggregate is taken; a bad signature, an expired validUntil, a truncated download,
an HTTP error and an unreachable source each leave the last good copy in force; a last good copy
past its validUntil stops trust in its entities; the status says which sources are not ok."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from saml2.mdstore import InMemoryMetaData, MetadataStore
from saml2.s_utils import UnknownSystemEntity

from bench.metadata_aggregate import (
    DS,
    MD,
    REDIRECT,
    certificate_body,
    idp_entity,
    signed_aggregate,
    sp_entity,
    with_slo,
)
from broker.certificates import self_signed_pair
from broker.cli.instance import init_instance
from broker.cli.metadata_refresh import refresh_sources
from broker.config import MetadataSettings, MetadataSource, Settings, load_settings
from broker.core.federation import NOT_CONFIGURED, SourceRecord, SourceState
from broker.core.model import NamingProfile, School, Service
from broker.registry import SqlRegistry
from broker.saml.entities import SamlEntities, sp_config
from tests.support.feed import Feed

SP = "https://sp.publisher.example/metadata"
IDP = "https://idp.school.example/metadata"
LATER_SP = "https://later.publisher.example/metadata"
MEMBER_CERT = certificate_body(self_signed_pair("member")[1])
SIGNER_KEY, SIGNER_CERT = self_signed_pair("federation signer")
OTHER_KEY, _ = self_signed_pair("someone else")


def sp(entity_id: str = SP, acs: str = "https://sp.publisher.example/acs") -> str:
    return sp_entity(entity_id, acs, MEMBER_CERT)


def feed_body(
    *entities: str,
    key: bytes = SIGNER_KEY,
    valid_for: timedelta = timedelta(days=7),
    published: datetime | None = None,
) -> bytes:
    chosen = list(entities) or [
        sp(),
        idp_entity(IDP, "https://idp.school.example/sso", MEMBER_CERT),
    ]
    return signed_aggregate(
        chosen, key, valid_until=datetime.now(UTC) + valid_for, published=published
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class Federation:
    settings: Settings
    registry: SqlRegistry
    feed: Feed
    clock: Clock

    def refresh(self) -> str:
        (outcome,) = refresh_sources(self.settings, self.registry, clock=self.clock)
        return outcome.result if outcome.reason is None else f"{outcome.result}:{outcome.reason}"

    def sp_metadata(self) -> str | None:
        return self.registry.service_metadata().get(SP)


@pytest.fixture
def federation(registry_url: str, tmp_path: Path) -> Iterator[Federation]:
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    signer = tmp_path / "signer.crt"
    signer.write_bytes(SIGNER_CERT)
    feed = Feed()
    source = MetadataSource(name="fed", url=feed.url, file=None, signing_certs=(signer,))
    settings = dataclasses.replace(
        load_settings(config),
        registry_url=registry_url,
        metadata=MetadataSettings(sources=(source,)),
    )
    from broker.registry import migrate

    migrate(registry_url)
    clock = Clock()
    registry = SqlRegistry(registry_url, clock=clock)
    # Registered by entity id only: the operator let them in, the federation supplies metadata.
    registry.add_service(Service("pub", "Publisher", SP, None, NamingProfile.OID, ()), None)
    registry.add_school(School("12AB", "School", IDP, "name_id", False, ()), "")
    try:
        yield Federation(settings, registry, feed, clock)
    finally:
        feed.stop()
        registry.close()


def test_a_signed_aggregate_supplies_registered_entities_only(federation: Federation) -> None:
    assert federation.sp_metadata() is None
    assert federation.registry.school_metadata() == {}
    before = federation.registry.generation()
    federation.feed.body = feed_body(sp(), sp(LATER_SP, "https://later.publisher.example/acs"))
    assert federation.refresh() == "updated"
    assert federation.registry.generation() > before
    metadata = federation.sp_metadata()
    assert metadata is not None and 'entityID="https://sp.publisher.example/metadata"' in metadata
    # In the aggregate but not registered: kept in the copy, not trusted for logins.
    assert LATER_SP not in federation.registry.service_metadata()
    assert federation.registry.federation.entity(LATER_SP, "sp") is not None
    # The same feed again changes nothing: no generation bump, every worker keeps its view.
    generation = federation.registry.generation()
    assert federation.refresh() == "unchanged"
    assert federation.registry.generation() == generation


def test_the_school_role_comes_from_the_same_aggregate(federation: Federation) -> None:
    federation.feed.body = feed_body()
    assert federation.refresh() == "updated"
    assert set(federation.registry.school_metadata()) == {IDP}


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ("wrong_signer", "signature_invalid"),
        ("tampered", "signature_invalid"),
        ("expired", "expired"),
        ("truncated", "fetch_failed"),
        ("truncated_body", "malformed"),
        ("http_error", "fetch_failed"),
        ("unreachable", "fetch_failed"),
        ("not_xml", "not_metadata"),
        ("too_long_valid", "valid_until_too_far"),
    ],
)
def test_a_bad_download_leaves_the_last_good_copy_in_force(
    federation: Federation, spoil: str, reason: str
) -> None:
    federation.feed.body = feed_body()
    assert federation.refresh() == "updated"
    good = federation.sp_metadata()
    generation = federation.registry.generation()

    moved = sp(acs="https://sp.publisher.example/moved-acs")
    if spoil == "wrong_signer":
        federation.feed.body = feed_body(moved, key=OTHER_KEY)
    elif spoil == "tampered":
        federation.feed.body = feed_body(moved).replace(b"moved-acs", b"evil-acs")
    elif spoil == "expired":
        federation.feed.body = feed_body(moved, valid_for=timedelta(seconds=-5))
    elif spoil == "truncated":
        federation.feed.body = feed_body(moved)
        federation.feed.mode = "truncate"
    elif spoil == "truncated_body":
        data = feed_body(moved)
        federation.feed.body = data[: len(data) * 2 // 3]
    elif spoil == "http_error":
        federation.feed.mode = "error"
    elif spoil == "unreachable":
        federation.feed.stop()
    elif spoil == "not_xml":
        federation.feed.body = b"<html>down for maintenance</html>"
    elif spoil == "too_long_valid":
        federation.feed.body = feed_body(moved, valid_for=timedelta(days=40))

    assert federation.refresh() == f"refused:{reason}"
    assert federation.sp_metadata() == good
    assert federation.registry.generation() == generation
    record = federation.registry.federation.records()["fed"]
    assert record.last_error == f"metadata_refused:{reason}"
    (health,) = federation.registry.federation.health([("fed", 3600)], federation.clock())
    # Trust continues on the last good copy; the reason shows why refreshing failed.
    assert health.state is SourceState.OK and health.reason == f"metadata_refused:{reason}"
    # A restarted broker (a new process on the same database) starts from that copy.
    restarted = SqlRegistry(federation.settings.registry_url)
    try:
        assert restarted.service_metadata().get(SP) == good
    finally:
        restarted.close()


def test_a_new_good_download_replaces_the_copy(federation: Federation) -> None:
    federation.feed.body = feed_body()
    federation.refresh()
    federation.feed.body = feed_body(sp(acs="https://sp.publisher.example/new-acs"))
    assert federation.refresh() == "updated"
    assert "new-acs" in (federation.sp_metadata() or "")
    # The school left the feed: it is no longer trusted.
    assert federation.registry.school_metadata() == {}


def test_a_school_whose_sso_url_is_not_https_is_not_trusted(federation: Federation) -> None:
    school = idp_entity(IDP, "http://idp.school.example/sso", MEMBER_CERT)
    federation.feed.body = feed_body(sp(), school)
    assert federation.refresh() == "updated"  # the rest of the feed is taken
    assert federation.sp_metadata() is not None
    assert federation.registry.school_metadata() == {}
    assert federation.registry.federation.entity(IDP, "idp") is None


def test_a_school_whose_slo_url_is_not_https_keeps_its_feed_copy(federation: Federation) -> None:
    # Kept, not left out: leaving it out put the school back on its registration copy (stale)
    # or on none (`school_metadata_missing`); logins need no SLO endpoint, and the logout
    # path skips a plain-http one (logout_messages.slo_endpoint).
    slo = "http://idp.school.example/slo"
    school = with_slo(idp_entity(IDP, "https://idp.school.example/sso", MEMBER_CERT), slo)
    federation.feed.body = feed_body(sp(), school)
    assert federation.refresh() == "updated"
    assert slo in federation.registry.school_metadata()[IDP]
    held = federation.registry.federation.entity(IDP, "idp")
    assert held is not None and slo in held.xml


def test_a_service_whose_slo_url_is_not_https_keeps_its_feed_copy(federation: Federation) -> None:
    slo = with_slo(sp(), "https://sp.publisher.example/slo", response="http://sp.example/answer")
    school = idp_entity(IDP, "https://idp.school.example/sso", MEMBER_CERT)
    federation.feed.body = feed_body(slo, school)
    assert federation.refresh() == "updated"
    assert "http://sp.example/answer" in (federation.sp_metadata() or "")
    assert federation.registry.federation.entity(SP, "sp") is not None
    assert federation.registry.school_metadata() != {}


def _replay_refused(federation: Federation, old: bytes, good: str | None) -> None:
    generation = federation.registry.generation()
    federation.feed.body = old
    assert federation.refresh() == "refused:older_than_held"
    assert federation.sp_metadata() == good
    assert federation.registry.generation() == generation
    (health,) = federation.registry.federation.health([("fed", 3600)], federation.clock())
    # Shown as every refusal is: the copy held stays in force, the reason says why.
    assert health.state is SourceState.OK
    assert health.reason == "metadata_refused:older_than_held"


def test_an_older_signed_feed_replayed_is_refused(federation: Federation) -> None:
    # Whoever relays the feed (a mirror, a proxy, a file copied in) kept last week's: signed by
    # the federation and within its validUntil, it still holds the ACS since moved away.
    now = datetime.now(UTC)
    old = feed_body(valid_for=timedelta(days=5), published=now - timedelta(days=2))
    federation.feed.body = old
    assert federation.refresh() == "updated"
    federation.feed.body = feed_body(
        sp(acs="https://sp.publisher.example/new-acs"), published=now - timedelta(hours=1)
    )
    assert federation.refresh() == "updated"
    good = federation.sp_metadata()
    assert "new-acs" in (good or "")
    _replay_refused(federation, old, good)
    # The copy held, its publication instant with it, is in the database: a restarted refresh
    # (a new process) refuses the replay too.
    restarted = SqlRegistry(federation.settings.registry_url, clock=federation.clock)
    try:
        _replay_refused(dataclasses.replace(federation, registry=restarted), old, good)
    finally:
        restarted.close()
    # A later feed is taken again, and clears the reason.
    federation.feed.body = feed_body(sp(acs="https://sp.publisher.example/new-acs"), published=now)
    assert federation.refresh() == "updated"
    assert federation.registry.federation.records()["fed"].last_error is None


def test_without_publication_instants_a_feed_ending_earlier_is_older(
    federation: Federation,
) -> None:
    old = feed_body(valid_for=timedelta(days=5))
    federation.feed.body = old
    assert federation.refresh() == "updated"
    federation.feed.body = feed_body(sp(acs="https://sp.publisher.example/new-acs"))
    assert federation.refresh() == "updated"
    _replay_refused(federation, old, federation.sp_metadata())


def test_an_operator_goes_back_on_purpose_for_one_named_source(federation: Federation) -> None:
    old = feed_body(valid_for=timedelta(days=5))
    federation.feed.body = old
    federation.refresh()
    federation.feed.body = feed_body(sp(acs="https://sp.publisher.example/new-acs"))
    federation.refresh()
    federation.feed.body = old
    assert federation.refresh() == "refused:older_than_held"
    with pytest.raises(ValueError, match="named"):
        refresh_sources(federation.settings, federation.registry, allow_older=True)
    (outcome,) = refresh_sources(
        federation.settings, federation.registry, ["fed"], clock=federation.clock, allow_older=True
    )
    assert outcome.result == "updated"
    assert "new-acs" not in (federation.sp_metadata() or "")


def test_a_copy_past_its_valid_until_stops_trust(federation: Federation) -> None:
    federation.feed.body = feed_body(valid_for=timedelta(hours=1))
    federation.refresh()
    expiry = federation.registry.metadata_expiry()
    assert expiry is not None and expiry - federation.clock() <= timedelta(hours=1, minutes=1)
    federation.feed.stop()
    federation.clock.now += timedelta(hours=2)
    assert federation.refresh() == "refused:fetch_failed"
    assert federation.sp_metadata() is None
    assert federation.registry.school_metadata() == {}
    assert federation.registry.metadata_expiry() is None
    (health,) = federation.registry.federation.health([("fed", 3600)], federation.clock())
    assert health.state is SourceState.EXPIRED and health.reason == "metadata_expired"
    assert not health.usable


def test_a_source_copy_overrides_the_registration_copy_also_when_expired(
    federation: Federation,
) -> None:
    own = sp("https://own.publisher.example/metadata", "https://own.publisher.example/acs")
    federation.registry.add_service(
        Service("own", "Own", "https://own.publisher.example/metadata", None), own
    )
    assert federation.registry.service_metadata()["https://own.publisher.example/metadata"] == own
    fed_copy = sp("https://own.publisher.example/metadata", "https://own.publisher.example/acs2")
    federation.feed.body = feed_body(fed_copy, valid_for=timedelta(hours=1))
    federation.refresh()
    assert (
        "acs2" in federation.registry.service_metadata()["https://own.publisher.example/metadata"]
    )
    federation.clock.now += timedelta(hours=2)
    # Expired: the old copy from the registration does not come back either.
    assert "https://own.publisher.example/metadata" not in federation.registry.service_metadata()


def test_status_says_missing_then_ok_then_stale(federation: Federation) -> None:
    store = federation.registry.federation
    (health,) = store.health([("fed", 3600)], federation.clock())
    assert health.state is SourceState.MISSING and not health.usable
    federation.feed.body = feed_body(valid_for=timedelta(days=7))
    federation.refresh()
    (health,) = store.health([("fed", 3600)], federation.clock())
    assert health.state is SourceState.OK and health.reason is None
    federation.feed.stop()
    federation.clock.now += timedelta(hours=3)
    federation.refresh()
    (health,) = store.health([("fed", 3600)], federation.clock())
    assert health.state is SourceState.STALE and health.usable
    assert health.reason == "metadata_refused:fetch_failed"


def test_a_source_removed_from_the_configuration_keeps_its_copy_until_forgotten(
    federation: Federation,
) -> None:
    """A refresh never drops a copy: before 2026-11-30 a full run without the source (a
    misspelled table, a renamed source) dropped it, and with it every school's metadata."""
    federation.feed.body = feed_body()
    federation.refresh()
    assert federation.sp_metadata() is not None
    unconfigured = dataclasses.replace(federation.settings, metadata=MetadataSettings())
    (kept,) = refresh_sources(unconfigured, federation.registry, clock=federation.clock)
    assert (kept.source, kept.result, kept.reason) == ("fed", "unconfigured", NOT_CONFIGURED)
    assert kept.entities == 2 and kept.valid_until is not None
    assert federation.sp_metadata() is not None
    (health,) = federation.registry.federation.health([], federation.clock())
    assert (health.name, health.state) == ("fed", SourceState.UNCONFIGURED)
    assert not health.usable and not health.untrusted
    # Only the operator's word drops it.
    assert federation.registry.federation.forget("fed")
    assert federation.sp_metadata() is None
    assert federation.registry.federation.records() == {}
    assert refresh_sources(unconfigured, federation.registry, clock=federation.clock) == []


def test_a_refresh_reads_the_source_records_once(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report after a refresh says the states and the entity counts of copies nobody
    configures from one read of the records (operations/sources.py `records_and_states`);
    it read them twice before, once for each."""
    federation.feed.body = feed_body()
    federation.refresh()
    store = federation.registry.federation
    reads: list[int] = []
    records = store.records

    def counted() -> dict[str, SourceRecord]:
        reads.append(1)
        return records()

    monkeypatch.setattr(store, "records", counted)
    unconfigured = dataclasses.replace(federation.settings, metadata=MetadataSettings())
    (kept,) = refresh_sources(unconfigured, federation.registry, clock=federation.clock)
    assert (kept.source, kept.result, kept.entities) == ("fed", "unconfigured", 2)
    assert len(reads) == 1


def test_a_renamed_source_leaves_the_old_copy_in_force_while_the_new_one_fails(
    federation: Federation, tmp_path: Path
) -> None:
    """The reviewer's case: renamed to `surfconext`, its file unreadable. The school's logins
    go on on the copy held under the old name."""
    federation.feed.body = feed_body()
    federation.refresh()
    renamed = MetadataSource(
        name="surfconext",
        url=None,
        file=tmp_path / "not-there.xml",
        signing_certs=federation.settings.metadata.sources[0].signing_certs,
    )
    settings = dataclasses.replace(
        federation.settings, metadata=MetadataSettings(sources=(renamed,))
    )
    refused, kept = refresh_sources(settings, federation.registry, clock=federation.clock)
    assert (refused.source, refused.result, refused.reason) == (
        "surfconext",
        "refused",
        "file_unreadable",
    )
    assert (kept.source, kept.result) == ("fed", "unconfigured")
    assert IDP in federation.registry.school_metadata()
    assert federation.sp_metadata() is not None
    states = federation.registry.federation.health(
        settings.metadata.refresh_periods(), federation.clock()
    )
    assert [(h.name, h.state) for h in states] == [
        ("surfconext", SourceState.MISSING),
        ("fed", SourceState.UNCONFIGURED),
    ]


def _plain_store(settings: Settings, documents: Iterable[str]) -> MetadataStore:
    """pysaml2's own store of the same documents: what the worker's lookups must equal."""
    config = sp_config(settings, [])
    store = MetadataStore(config.attribute_converters, config)
    for n, xml in enumerate(documents):
        source = InMemoryMetaData(config.attribute_converters, xml)
        source.load()
        store.metadata[n] = source
    return store


def _answers(store: Any, entity_id: str) -> tuple[object, ...]:
    def outcome(call: Callable[[], Any]) -> object:
        try:
            return call()
        except Exception as err:  # the refusal is part of what is compared
            return (type(err), err.args)

    return (
        outcome(lambda: store.single_sign_on_service(entity_id, REDIRECT)),
        outcome(lambda: store.certs(entity_id, "idpsso", "signing")),
        outcome(lambda: store[entity_id]),
    )


def test_a_workers_lookups_follow_moves_roll_overs_and_removals(
    federation: Federation,
) -> None:
    """The worker's indexed metadata (entities.py, metadata_index.py) across registry changes:
    an entity taken over by the feed and given back, a certificate roll-over, a removal."""
    registry, other_cert = federation.registry, certificate_body(self_signed_pair("rolled")[1])
    direct = [f"https://idp{n}.direct.example/metadata" for n in range(30)]
    for n, entity_id in enumerate(direct):
        xml = idp_entity(entity_id, f"https://idp{n}.direct.example/sso", MEMBER_CERT)
        registry.add_school(School(f"D{n:03d}", f"Direct {n}", entity_id), _alone(xml))
    moving = direct[7]
    federation.feed.body = feed_body(
        idp_entity(IDP, "https://idp.school.example/sso", MEMBER_CERT),
        idp_entity(moving, "https://idp7.federation.example/sso", MEMBER_CERT),
    )
    assert federation.refresh() == "updated"
    worker = SamlEntities(federation.settings, registry)
    every = [IDP, *direct, "https://nobody.example/metadata"]

    def check() -> Any:
        store = worker.client.metadata
        plain = _plain_store(federation.settings, registry.school_metadata().values())
        for entity_id in every:
            assert _answers(store, entity_id) == _answers(plain, entity_id), entity_id
        return store

    def sso(entity_id: str) -> str:
        location: str = worker.client.metadata.single_sign_on_service(entity_id, REDIRECT)[0][
            "location"
        ]
        return location

    check()
    assert sso(moving) == "https://idp7.federation.example/sso"  # the feed's copy wins
    # The feed drops the entity: its registration copy is used again, the feed's is gone.
    federation.feed.body = feed_body(idp_entity(IDP, "https://idp.school.example/sso", MEMBER_CERT))
    assert federation.refresh() == "updated"
    check()
    assert sso(moving) == "https://idp7.direct.example/sso"
    # Roll-over (`school update --saml-metadata`): only the new certificate is trusted.
    rolled = idp_entity(direct[3], "https://idp3.direct.example/sso", other_cert)
    registry.update_school_metadata("D003", _alone(rolled))
    store = check()
    assert ["".join(c.split()) for _, c in store.certs(direct[3], "idpsso", "signing")] == [
        other_cert
    ]
    # Removed: refused as an entity the broker never knew.
    registry.remove_school("D005", apply=True)
    store = check()
    with pytest.raises(UnknownSystemEntity):
        store.single_sign_on_service(direct[5], REDIRECT)


def _alone(xml: str) -> str:
    """An EntityDescriptor from the aggregate builders as a document of its own."""
    namespaces = f'xmlns:md="{MD}" xmlns:ds="{DS}"'
    return xml.replace("<md:EntityDescriptor ", f"<md:EntityDescriptor {namespaces} ", 1)
