"""A service's assertion encryption setting on SQLite and PostgreSQL (revision 0019): `auto` for
every service by default and for rows older code writes, `off` set by the operator and read into
the worker's view, only `auto` or `off` stored, and the revision down (warning which services
were off) and up again without drift."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from broker.core.errors import BadRequest, UnknownService
from broker.core.model import AssertionEncryption, ClientAuthMethod, Protocol, Service
from broker.oidc.registration import new_client
from broker.registry import SqlRegistry, migrate
from broker.registry.cached import CachedRegistryReader
from broker.registry.migration import migration_connection, model_drift
from broker.registry.tables import ServiceRow
from tests.storage.test_publisher_integrity import HEAD, _move, _revision
from tests.support.tables import table_of

OFF, AUTO = AssertionEncryption.OFF, AssertionEncryption.AUTO
SAML_SERVICE = Service("lesmethode", "Lesmethode", "https://lesmethode.example/sp", None)


def _oidc_service() -> Service:
    client, _ = new_client(("https://app.example/cb",), ClientAuthMethod.SECRET_BASIC)
    return Service("app", "App", "app", None, protocol=Protocol.OIDC, oidc=client)


def _insert_as_older_code(url: str, service_id: str) -> None:
    """A service row as code at 0018 writes it: no assertion_encryption named."""
    with migration_connection(url) as connection:
        connection.execute(
            insert(table_of(ServiceRow)).values(
                id=service_id, name=service_id, entity_id=f"https://{service_id}.example/sp",
                naming="oid", protocol="saml", sp_metadata="<md/>",
            )
        )  # fmt: skip


def test_the_setting_is_auto_until_the_operator_sets_it(sql_registry: SqlRegistry) -> None:
    sql_registry.add_service(SAML_SERVICE, "<md/>")
    view = CachedRegistryReader(sql_registry)
    found = view.service("lesmethode")
    assert found is not None and found.assertion_encryption is AUTO
    generation = sql_registry.generation()
    assert sql_registry.set_assertion_encryption("lesmethode", OFF, "cli:test") is True
    assert sql_registry.generation() > generation
    # The worker's view has it with the service: the login path asks no more.
    found = view.service_by_entity_id(SAML_SERVICE.entity_id)
    assert found is not None and found.assertion_encryption is OFF
    assert sql_registry.set_assertion_encryption("lesmethode", OFF, "cli:test") is False
    assert sql_registry.set_assertion_encryption("lesmethode", AUTO, "cli:test") is True
    assert view.service("lesmethode").assertion_encryption is AUTO  # type: ignore[union-attr]


def test_what_the_registry_refuses(sql_registry: SqlRegistry, registry_url: str) -> None:
    sql_registry.add_service(_oidc_service(), None)
    generation = sql_registry.generation()
    with pytest.raises(BadRequest, match="is an OpenID Connect client"):
        sql_registry.set_assertion_encryption("app", OFF)
    with pytest.raises(UnknownService):
        sql_registry.set_assertion_encryption("nobody", OFF)
    assert sql_registry.generation() == generation
    # Nothing but auto or off is stored.
    sql_registry.add_service(SAML_SERVICE, "<md/>")
    with pytest.raises(IntegrityError), migration_connection(registry_url) as connection:
        connection.execute(update(ServiceRow).values(assertion_encryption="never"))


def test_revision_0019_goes_down_and_up_again(
    registry_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        registry.add_service(SAML_SERVICE, "<md/>")
        registry.add_service(
            Service("tweede", "Tweede", "https://tweede.example/sp", None), "<md/>"
        )
        registry.set_assertion_encryption("lesmethode", OFF)
    finally:
        registry.close()
    with caplog.at_level(logging.WARNING):
        _move(registry_url, "0018", down=True)
    warned = [r.getMessage() for r in caplog.records if "revision 0019 down" in r.getMessage()]
    assert len(warned) == 1 and warned[0].endswith(": lesmethode"), warned
    # Code at 0018 registers a service (below 0019): the upgrade gives it `auto`.
    _insert_as_older_code(registry_url, "oud")
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        settings = {s.id: s.assertion_encryption for s in registry.all_services()}
    finally:
        registry.close()
    # Down dropped the setting (and said so): every service is auto again.
    assert settings == {"lesmethode": AUTO, "oud": AUTO, "tweede": AUTO}
    # Code at 0018 still running on 0019 (oldest_reader unchanged) writes a row: `auto`.
    _insert_as_older_code(registry_url, "rollend")
    registry = SqlRegistry(registry_url)
    try:
        found = registry.any_service("rollend")
    finally:
        registry.close()
    assert found is not None and found.assertion_encryption is AUTO
