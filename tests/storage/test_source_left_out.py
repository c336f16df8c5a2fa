"""Revision 0026: the members a metadata source's last good download left out for a problem of
their own are kept with its copy (SQLite and PostgreSQL), replaced by every successful refresh
(an unchanged feed too), kept by a refused one, and the attention report tells a registered
school or service whose entry its federation's feed holds but left out from one no source holds:
before, both were `school_metadata_missing`, with the advice to register its metadata."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect

from bench.metadata_aggregate import idp_entity, sp_entity
from broker.cli.metadata_refresh import refresh_sources
from broker.core.attention import AttentionReport, Entry
from broker.core.federation import FeedDates, LeftOut
from broker.operations.attention import Memo, gather_attention_report
from broker.registry import SqlRegistry
from broker.registry.federation import MAX_LEFT_OUT_DETAIL, MAX_LEFT_OUT_HELD
from broker.registry.migration import migration_connection
from tests.storage.test_federation_sources import (
    IDP,
    MEMBER_CERT,
    OTHER_KEY,
    SP,
    Federation,
    federation,  # noqa: F401  # fixture
    feed_body,
    sp,
)
from tests.storage.test_publisher_integrity import HEAD, _move

HTTP_SSO = "http://idp.school.example/sso"
SSO_PROBLEM = f"SSO URL '{HTTP_SSO}' of {IDP} must be https (plain http only on loopback)"
UNUSABLE_IDP = LeftOut(IDP, "entity_unusable", SSO_PROBLEM, "idp")


def _school(sso: str = "https://idp.school.example/sso") -> str:
    return idp_entity(IDP, sso, MEMBER_CERT)


def _entries(report: AttentionReport, kind: str) -> list[Entry]:
    return [e for s in report.sections if s.kind.code == kind for e in s.entries]


def _report(fed: Federation, memo: Memo | None = None) -> AttentionReport:
    return gather_attention_report(fed.settings, fed.registry, fed.clock(), memo)


def test_a_school_whose_entry_is_left_out_is_told_apart_from_one_no_source_holds(
    federation: Federation,  # noqa: F811 - the imported fixture
) -> None:
    federation.feed.body = feed_body(sp(), _school(HTTP_SSO))
    assert federation.refresh() == "updated"
    assert federation.registry.federation.left_out() == [UNUSABLE_IDP]
    assert _entries(_report(federation), "schools_logins_refused") == [
        Entry("12AB", "School", "school_entry_unusable", SSO_PROBLEM)
    ]
    # A refused download keeps the copy held, and what it left out with it.
    federation.feed.body = feed_body(sp(), _school(), key=OTHER_KEY)
    assert federation.refresh() == "refused:signature_invalid"
    assert federation.registry.federation.left_out() == [UNUSABLE_IDP]
    # The federation mended the entry: the next good download clears the list.
    federation.feed.body = feed_body(sp(), _school())
    assert federation.refresh() == "updated"
    assert federation.registry.federation.left_out() == []
    assert IDP in federation.registry.school_metadata()
    assert not _report(federation).needs_attention


def test_a_service_whose_entry_is_left_out_says_so(
    federation: Federation,  # noqa: F811 - the imported fixture
) -> None:
    http_acs = sp_entity(SP, "http://sp.publisher.example/acs", MEMBER_CERT)
    federation.feed.body = feed_body(http_acs, _school())
    assert federation.refresh() == "updated"
    (entry,) = _entries(_report(federation), "services_logins_refused")
    assert (entry.id, entry.reason) == ("pub", "service_entry_unusable")
    assert "ACS URL 'http://sp.publisher.example/acs'" in entry.detail


def test_an_unchanged_feed_replaces_the_list_as_its_members_expire(
    federation: Federation,  # noqa: F811 - the imported fixture
) -> None:
    """A member's own validUntil passes while the feed's bytes stay the same: the refresh is
    `unchanged` (no generation bump), yet the list moves, and the report, its facts memoised
    for the generation, reads it fresh."""
    until = federation.clock() + timedelta(hours=1)
    dated = _school().replace(
        "<md:EntityDescriptor ",
        f'<md:EntityDescriptor validUntil="{until.strftime("%Y-%m-%dT%H:%M:%SZ")}" ',
        1,
    )
    federation.feed.body = feed_body(sp(), dated)
    assert federation.refresh() == "updated"
    assert federation.registry.federation.left_out() == []
    memo = Memo()
    assert _entries(_report(federation, memo), "schools_logins_refused") == []
    generation = federation.registry.generation()
    federation.clock.now += timedelta(hours=2)
    assert federation.refresh() == "unchanged"
    assert federation.registry.generation() == generation
    (expired,) = federation.registry.federation.left_out()
    assert (expired.entity_id, expired.reason, expired.role) == (IDP, "entity_expired", None)
    # Held by the source (its copy expired) and left out: the feed's own reason, not
    # `school_source_expired` (a refresh does not mend it; the federation does).
    (entry,) = _entries(_report(federation, memo), "schools_logins_refused")
    assert (entry.reason, entry.detail) == ("school_entry_expired", expired.detail)


def test_the_list_is_bounded(
    federation: Federation,  # noqa: F811 - the imported fixture
) -> None:
    many = [
        LeftOut(f"https://idp{n}.example/metadata", "entity_unusable", "x" * 1000, "idp")
        for n in range(MAX_LEFT_OUT_HELD + 5)
    ]
    store = federation.registry.federation
    until = federation.clock() + timedelta(days=1)
    store.store("fed", "0" * 64, FeedDates(None, until), [], federation.clock(), left_out=many)
    held = store.left_out()
    assert len(held) == MAX_LEFT_OUT_HELD and held[0].entity_id == many[0].entity_id
    assert {len(each.detail) for each in held} == {MAX_LEFT_OUT_DETAIL}


def test_revision_0026_goes_down_and_up_again_with_a_copy_held(
    federation: Federation,  # noqa: F811 - the imported fixture
) -> None:
    federation.feed.body = feed_body(sp(), _school(HTTP_SSO))
    federation.refresh()
    url = federation.settings.registry_url
    federation.registry.close()
    _move(url, "0025", down=True)
    with migration_connection(url) as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("metadata_sources")}
    assert "left_out" not in columns and "registration_authorities" in columns
    _move(url, HEAD)
    again = SqlRegistry(url, clock=federation.clock)
    try:
        # The copy is kept; the list comes back with the next refresh, the feed unchanged.
        assert again.federation.left_out() == []
        assert SP in again.service_metadata()
        (outcome,) = refresh_sources(federation.settings, again, clock=federation.clock)
        assert outcome.result == "unchanged"
        assert again.federation.left_out() == [UNUSABLE_IDP]
    finally:
        again.close()
