"""A metadata update prepared against one registered copy is written only while that copy is
still the registered one (SqlRegistry.update_school_metadata / update_service_metadata with
`expected`), on SQLite and PostgreSQL: of two operators updating at once the second is refused
with `MetadataChanged`, nothing changed, instead of silently overwriting the first."""

from __future__ import annotations

import pytest

from broker.core.errors import UnknownSchool, UnknownService
from broker.core.model import School, Service
from broker.registry import SqlRegistry
from broker.registry.errors import MetadataChanged

SCHOOL = School("00AA", "Het Voorbeeld College", "https://idp.voorbeeld.nl/saml")
SERVICE = Service("lesmethode", "Lesmethode", "https://sp.lesmethode.nl", None)
FEDERATED = Service("fed", "Federated", "https://sp.fed.example", None)


@pytest.fixture
def registry(sql_registry: SqlRegistry) -> SqlRegistry:
    sql_registry.add_school(SCHOOL, "<idp-1/>")
    sql_registry.add_service(SERVICE, "<sp-1/>")
    sql_registry.add_service(FEDERATED, None)  # no copy of its own (registered by entity id)
    return sql_registry


def test_the_copy_read_is_replaced(registry: SqlRegistry) -> None:
    generation = registry.generation()
    registry.update_school_metadata("00AA", "<idp-2/>", "<idp-1/>")
    registry.update_service_metadata("lesmethode", "<sp-2/>", "<sp-1/>")
    registry.update_service_metadata("fed", "<fed-1/>", "")  # none of its own: read as ""
    assert registry.registered_metadata("idp", "00AA") == "<idp-2/>"
    assert registry.registered_metadata("sp", "lesmethode") == "<sp-2/>"
    assert registry.registered_metadata("sp", "fed") == "<fed-1/>"
    assert registry.generation() > generation


def test_a_copy_changed_meanwhile_is_not_overwritten(registry: SqlRegistry) -> None:
    registry.update_school_metadata("00AA", "<idp-other/>")  # the other operator, first
    registry.update_service_metadata("lesmethode", "<sp-other/>")
    generation = registry.generation()
    with pytest.raises(MetadataChanged, match="00AA: the metadata changed meanwhile"):
        registry.update_school_metadata("00AA", "<idp-2/>", "<idp-1/>")
    with pytest.raises(MetadataChanged, match="run the command again"):
        registry.update_service_metadata("lesmethode", "<sp-2/>", "<sp-1/>")
    with pytest.raises(MetadataChanged):
        registry.update_service_metadata("fed", "<fed-1/>", "<fed-0/>")
    assert registry.registered_metadata("idp", "00AA") == "<idp-other/>"
    assert registry.registered_metadata("sp", "lesmethode") == "<sp-other/>"
    assert registry.registered_metadata("sp", "fed") == ""
    assert registry.generation() == generation


def test_unknown_ids_are_still_unknown(registry: SqlRegistry) -> None:
    with pytest.raises(UnknownSchool, match="no school with id '99ZZ'"):
        registry.update_school_metadata("99ZZ", "<x/>", "<idp-1/>")
    with pytest.raises(UnknownService, match="no service with id 'nope'"):
        registry.update_service_metadata("nope", "<x/>", "")
