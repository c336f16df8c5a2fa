"""Revision 0029: the URL a service's SAML SP metadata was given by is kept with the service
(SQLite and PostgreSQL), cleared by a copy given as a file, listed for `metadata refresh`, with
what the refresh last made of it (a URL given counts as a refresh; a refusal keeps the last
success and adds its time and reason code; no generation bump); a service a metadata source
holds is not fetched; the revision goes down (the services and their metadata kept) and up
again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker.cli import url_refresh
from broker.core.federation import FederationEntity, FeedDates
from broker.core.metadata_refresh import RefreshRecord
from broker.core.model import Service
from broker.registry import SqlRegistry
from tests.storage.test_publisher_integrity import HEAD, _move
from tests.storage.test_school_metadata_url import down_and_up
from tests.storage.test_school_refresh_record import START, Clock, _Settings
from tests.support.sealing import TEST_SEAL

URL = "https://lms.uitgever.example/saml/metadata"
SP = "https://lms.uitgever.example/saml"
LMS = Service("lms", "Leeromgeving", SP, None)
FILED = Service("toets", "Toetsen", "https://toets.uitgever.example/sp", None)
COLUMNS = {"sp_metadata_url", "sp_refreshed_at", "sp_refresh_failed_at", "sp_refresh_failure"}


def test_the_url_and_its_outcomes_are_kept_with_the_service(registry_url: str) -> None:
    _move(registry_url, HEAD)
    clock = Clock()
    registry = SqlRegistry(registry_url, seal=TEST_SEAL, clock=clock)
    try:
        registry.add_service(LMS, "<sp/>", url=URL)
        registry.add_service(FILED, "<toets/>")  # a file: not fetched again
        assert registry.metadata_urls("sp") == [(LMS.id, SP, URL)]
        assert registry.metadata_url("sp", LMS.id) == URL
        assert registry.refresh_records("sp") == {LMS.id: RefreshRecord(START)}

        generation = registry.generation()
        clock.now = START + timedelta(hours=1)
        registry.record_refresh("sp", [LMS.id], "other_entity_id")
        refused = RefreshRecord(START, clock.now, "other_entity_id")
        assert registry.refresh_records("sp") == {LMS.id: refused}
        clock.now = START + timedelta(hours=2)
        registry.record_refresh("sp", [LMS.id], None)
        assert registry.refresh_records("sp") == {
            LMS.id: RefreshRecord(clock.now, refused.failed_at, refused.failure)
        }
        assert registry.generation() == generation  # logins never read it
        assert registry.refresh_records("idp") == {}  # the schools' columns are others

        # A copy given as a file clears the URL; one given by URL again is a refresh.
        registry.update_service_metadata(LMS.id, "<sp-2/>", "<sp/>")
        assert registry.metadata_urls("sp") == []
        assert registry.refresh_records("sp") == {}
        clock.now = START + timedelta(hours=3)
        registry.update_service_metadata(LMS.id, "<sp-3/>", "<sp-2/>", url=URL)
        assert registry.refresh_records("sp")[LMS.id].refreshed_at == clock.now
        assert registry.registered_metadata("sp", LMS.id) == "<sp-3/>"
    finally:
        registry.close()


def test_a_service_a_source_holds_is_not_fetched_and_not_refused(
    registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A federation came to carry the service's SP: logins use the source's copy, so its URL
    is not fetched, and the run says so without a refusal or a record."""
    _move(registry_url, HEAD)
    fetched: list[str] = []
    monkeypatch.setattr(url_refresh, "fetch_metadata", lambda url, **_: fetched.append(url))
    registry = SqlRegistry(registry_url, seal=TEST_SEAL, clock=Clock())
    try:
        registry.add_service(LMS, "<sp/>", url=URL)
        before = registry.refresh_records("sp")
        entity = FederationEntity(SP, "sp", "<sp/>", None)
        registry.federation.store("entree", "d", FeedDates(None, None), [entity], START)
        outcomes = url_refresh.refresh_by_url(_Settings(), registry, "sp")  # type: ignore[arg-type]
        assert [(o.entry_id, o.result, o.detail) for o in outcomes] == [(LMS.id, "held", "entree")]
        assert fetched == []
        assert registry.refresh_records("sp") == before
    finally:
        registry.close()


def _service_by_url(registry: SqlRegistry) -> None:
    registry.add_service(LMS, "<sp/>", url=URL)
    registry.record_refresh("sp", [LMS.id], "metadata_invalid")


def test_revision_0029_goes_down_and_up_again_with_services(registry_url: str) -> None:
    again = down_and_up(registry_url, "0028", COLUMNS, _service_by_url, table="services")
    try:
        # The metadata stays; the URL is given again (`publisher update --saml-metadata URL`).
        assert again.registered_metadata("sp", LMS.id) == "<sp/>"
        assert again.metadata_urls("sp") == []
        assert again.refresh_records("sp") == {}
        # The schools' URLs (0027) are untouched by going down to 0028 and up.
        assert [each[0] for each in again.metadata_urls("idp")] == ["30CC"]
    finally:
        again.close()
