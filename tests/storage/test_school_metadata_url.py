"""Revision 0027: the URL a school's SAML IdP metadata was given by is kept with the school
(SQLite and PostgreSQL), on every school of a board's IdP alike, cleared by a copy given as a
file or a move to an OpenID provider, listed once per IdP for `metadata refresh`; the revision
goes down (the schools' metadata kept) and up again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import inspect

from broker.core.model import OidcUpstream, School
from broker.registry import SqlRegistry
from broker.registry.migration import migration_connection
from tests.storage.test_publisher_integrity import HEAD, _move
from tests.storage.test_shared_school_idp import BOARD_IDP, BOARD_XML, ELSEWHERE, NOORD, ZUID
from tests.support.sealing import TEST_SEAL

URL = "https://sts.bestuur.example/FederationMetadata/2007-06/FederationMetadata.xml"


def test_the_url_is_the_idps_on_every_school_on_it(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML, URL)
    sql_registry.add_school(ZUID, BOARD_XML, URL)
    sql_registry.add_school(ELSEWHERE, "<other/>")  # a file: not fetched again
    assert sql_registry.metadata_urls("idp") == [
        ("10AA", BOARD_IDP, URL),
        ("10AA01", BOARD_IDP, URL),
    ]
    # An update given as a file is the IdP's: neither school is fetched again.
    sql_registry.update_school_metadata("10AA01", "<board-idp-2/>", BOARD_XML)
    assert sql_registry.metadata_urls("idp") == []
    sql_registry.update_school_metadata("10AA", "<board-idp-3/>", "<board-idp-2/>", url=URL)
    assert [each[0] for each in sql_registry.metadata_urls("idp")] == ["10AA", "10AA01"]
    assert sql_registry.metadata_url("idp", "10AA01") == URL


def test_a_move_to_an_openid_provider_clears_the_url(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(ELSEWHERE, "<other/>", URL)
    oidc = OidcUpstream("https://op.school.example", "client", "secret", ("RS256",))
    sql_registry.update_school_idp(
        replace(ELSEWHERE, idp_entity_id=oidc.issuer, subject_attribute="sub", oidc=oidc),
        "",
        url=URL,
    )
    assert sql_registry.metadata_url("idp", ELSEWHERE.id) is None
    assert sql_registry.metadata_urls("idp") == []


def _columns(url: str, table: str) -> set[str]:
    with migration_connection(url) as connection:
        return {c["name"] for c in inspect(connection).get_columns(table)}


def down_and_up(
    url: str,
    below: str,
    columns: set[str],
    before: Callable[[SqlRegistry], None],
    table: str = "schools",
) -> SqlRegistry:
    """A registry at HEAD given a school by URL and `before`, moved down to `below` (the
    `table`'s `columns` gone) and up again (back): opened again for the test to look at."""
    _move(url, HEAD)
    registry = SqlRegistry(url, seal=TEST_SEAL)
    registry.add_school(School("30CC", "College", "https://adfs.college.example"), "<x/>", URL)
    before(registry)
    registry.close()
    _move(url, below, down=True)
    assert not columns & _columns(url, table)
    _move(url, HEAD)
    assert columns <= _columns(url, table)
    return SqlRegistry(url, seal=TEST_SEAL)


def test_revision_0027_goes_down_and_up_again_with_schools(registry_url: str) -> None:
    again = down_and_up(registry_url, "0026", {"idp_metadata_url"}, lambda _: None)
    try:
        # The metadata stays; the URL is given again (`school update --saml-metadata URL`).
        assert again.registered_metadata("idp", "30CC") == "<x/>"
        assert again.metadata_urls("idp") == []
    finally:
        again.close()
