"""Revision 0028: what `metadata refresh` last made of a school's metadata URL is kept with the
school (SQLite and PostgreSQL): a URL given counts as a refresh, a refusal keeps the last
success and adds its time and reason code, on every school on the IdP, with no generation bump;
a file or a move to an OpenID provider leaves nothing to report; the revision goes down (the
schools and their URLs kept) and up again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from broker.cli import url_refresh
from broker.core.federation import FederationEntity, FeedDates
from broker.core.metadata_refresh import RefreshRecord
from broker.core.model import OidcUpstream
from broker.registry import SqlRegistry
from tests.storage.test_publisher_integrity import HEAD, _move
from tests.storage.test_school_metadata_url import URL, down_and_up
from tests.storage.test_shared_school_idp import BOARD_IDP, BOARD_XML, ELSEWHERE, NOORD, ZUID
from tests.support.sealing import TEST_SEAL

START = datetime(2026, 12, 1, 3, tzinfo=UTC)
COLUMNS = {"idp_refreshed_at", "idp_refresh_failed_at", "idp_refresh_failure"}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_outcomes_are_kept_per_school_without_a_generation_bump(registry_url: str) -> None:
    _move(registry_url, HEAD)
    clock = Clock()
    registry = SqlRegistry(registry_url, seal=TEST_SEAL, clock=clock)
    try:
        registry.add_school(NOORD, BOARD_XML, URL)
        registry.add_school(ZUID, BOARD_XML, URL)
        registry.add_school(ELSEWHERE, "<other/>")  # a file: nothing to refresh
        given = RefreshRecord(START)
        assert registry.refresh_records("idp") == {NOORD.id: given, ZUID.id: given}

        generation = registry.generation()
        clock.now = START + timedelta(hours=1)
        registry.record_refresh("idp", [NOORD.id, ZUID.id], "metadata_invalid")
        refused = RefreshRecord(START, clock.now, "metadata_invalid")
        assert registry.refresh_records("idp") == {NOORD.id: refused, ZUID.id: refused}
        clock.now = START + timedelta(hours=2)
        registry.record_refresh("idp", [NOORD.id], None)
        records = registry.refresh_records("idp")
        assert records[NOORD.id] == RefreshRecord(
            clock.now, START + timedelta(hours=1), refused.failure
        )
        assert records[ZUID.id] == refused
        assert registry.generation() == generation  # logins never read it

        # An update given by URL is a refresh; a move to an OpenID provider leaves no record.
        clock.now = START + timedelta(hours=3)
        registry.update_school_metadata(ZUID.id, "<board-2/>", BOARD_XML, url=URL)
        assert registry.refresh_records("idp")[ZUID.id].refreshed_at == clock.now
        oidc = OidcUpstream("https://op.school.example", "client", "secret", ("RS256",))
        registry.add_school(
            replace(ELSEWHERE, id="40DD", idp_entity_id="https://x.example"), "<x/>", URL
        )
        registry.update_school_idp(
            replace(
                ELSEWHERE, id="40DD", idp_entity_id=oidc.issuer, subject_attribute="sub", oidc=oidc
            ),
            "",
            url=URL,
        )
        assert "40DD" not in registry.refresh_records("idp")
    finally:
        registry.close()


def _refused(registry: SqlRegistry) -> None:
    registry.record_refresh("idp", ["30CC"], "metadata_invalid")


def test_revision_0028_goes_down_and_up_again_with_schools(registry_url: str) -> None:
    again = down_and_up(registry_url, "0027", COLUMNS, _refused)
    try:
        # The school and its URL stay; what the refresh made of it is told again by its next run.
        assert again.metadata_urls("idp") == [("30CC", "https://adfs.college.example", URL)]
        assert again.refresh_records("idp") == {"30CC": RefreshRecord()}
    finally:
        again.close()


class _Settings:
    peers_on_loopback = False


def test_a_school_whose_idp_a_source_holds_is_not_fetched_and_not_refused(
    registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A federation came to carry a URL school's IdP: logins use the source's copy, so the URL
    is not fetched, and the run says so without a refusal (before, every run was refused with
    `held_by_source` and exited 1, which no command could mend)."""
    _move(registry_url, HEAD)
    fetched: list[str] = []
    monkeypatch.setattr(url_refresh, "fetch_metadata", lambda url, **_: fetched.append(url))
    registry = SqlRegistry(registry_url, seal=TEST_SEAL, clock=Clock())
    try:
        registry.add_school(NOORD, BOARD_XML, URL)
        before = registry.refresh_records("idp")
        entity = FederationEntity(BOARD_IDP, "idp", BOARD_XML, None)
        registry.federation.store("entree", "d", FeedDates(None, None), [entity], START)
        outcomes = url_refresh.refresh_by_url(_Settings(), registry, "idp")  # type: ignore[arg-type]
        assert [(o.entry_id, o.result, o.detail) for o in outcomes] == [
            (NOORD.id, "held", "entree")
        ]
        assert fetched == []
        assert registry.refresh_records("idp") == before
    finally:
        registry.close()
