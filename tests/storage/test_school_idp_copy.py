"""The portals' certificate banners read a school's IdP copy in force and whether it was given
by URL in one query (`school_idp_copy`), a publisher's SAML services' copies in two, however
many services (`publisher_sp_copies`; web/portal/certificate_notice.py): the same copies logins
use (reading.py `metadata_in_force`), a source's first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from broker.core.admins import Publisher
from broker.core.federation import FederationEntity, FeedDates
from broker.core.model import OidcUpstream, School, Service
from broker.registry import SqlRegistry
from broker.registry.portal_reading import MetadataCopy

IDP = "https://idp.lyceum.example/metadata"
OWN = "<own-idp/>"
SCHOOL = School("30CC", "Lyceum aan Zee", IDP)
ISSUER = "https://login.lyceum.example"
OIDC = School("30CD", "Lyceum op OIDC", ISSUER, oidc=OidcUpstream(ISSUER, "client", "secret"))
NOW = datetime.now(UTC)


@contextmanager
def counted(registry: SqlRegistry) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(_c: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement != "BEGIN":  # SQLite's own, which PostgreSQL's driver does not send
            statements.append(statement)

    event.listen(registry._engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(registry._engine, "before_cursor_execute", seen)


def _read(registry: SqlRegistry, school_id: str) -> MetadataCopy | None:
    with counted(registry) as statements:
        copy = registry.school_idp_copy(school_id)
    assert len(statements) == 1, statements
    return copy


def test_the_registered_copy_and_its_url_in_one_query(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(SCHOOL, OWN)
    assert _read(sql_registry, SCHOOL.id) == MetadataCopy(OWN, fetched=False)
    sql_registry.update_school_metadata(SCHOOL.id, OWN, url="https://idp.lyceum.example/md")
    assert _read(sql_registry, SCHOOL.id) == MetadataCopy(OWN, fetched=True)


def test_a_sources_copy_first_and_none_past_its_end(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(SCHOOL, OWN)
    entity = [FederationEntity(IDP, "idp", "<older/>", NOW + timedelta(days=3))]
    sql_registry.federation.store("one", "d1", FeedDates(None, None), entity, NOW)
    later = [FederationEntity(IDP, "idp", "<later/>", NOW + timedelta(days=9))]
    sql_registry.federation.store("two", "d2", FeedDates(None, None), later, NOW)
    assert _read(sql_registry, SCHOOL.id) == MetadataCopy("<later/>", fetched=False)
    assert sql_registry.school_metadata()[IDP] == "<later/>"  # what logins use
    for source in ("one", "two"):
        ended = [FederationEntity(IDP, "idp", "<ended/>", NOW - timedelta(days=1))]
        sql_registry.federation.store(source, f"{source}-ended", FeedDates(None, None), ended, NOW)
    assert _read(sql_registry, SCHOOL.id) == MetadataCopy(None, fetched=False)
    assert IDP not in sql_registry.school_metadata()


def test_no_copy_for_a_school_on_openid_connect_or_not_registered(
    sql_registry: SqlRegistry,
) -> None:
    sql_registry.add_school(OIDC, "")
    assert _read(sql_registry, OIDC.id) is None
    assert _read(sql_registry, "99XX") is None


def test_a_publishers_sp_copies_in_two_statements_however_many_services(
    sql_registry: SqlRegistry,
) -> None:
    sql_registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
    for number in range(3):
        service = Service(
            f"dienst{number}",
            f"Dienst {number}",
            f"https://sp{number}.example/sp",
            None,
            publisher_id="uitgever-a",
        )
        url = "https://sp0.example/md" if number == 0 else None
        sql_registry.add_service(service, f"<sp{number}/>", url=url)
    later = [FederationEntity("https://sp1.example/sp", "sp", "<sp1-feed/>", NOW + timedelta(9))]
    sql_registry.federation.store("feed", "d1", FeedDates(None, None), later, NOW)
    with counted(sql_registry) as statements:
        copies = sql_registry.publisher_sp_copies("uitgever-a")
    assert len(statements) == 2, statements
    assert sorted(copies) == [
        ("Dienst 0", MetadataCopy("<sp0/>", fetched=True)),
        ("Dienst 1", MetadataCopy("<sp1-feed/>", fetched=False)),
        ("Dienst 2", MetadataCopy("<sp2/>", fetched=False)),
    ]
    assert sql_registry.publisher_sp_copies("nobody") == []
