"""A removed service's id is never taken again through the publisher's portal (SAML or OIDC):
it would carry that service's pseudonyms and declaration history over to whoever registers it
(registry/id_reuse.py). The form says so beside the service id in the page's language, says
nothing of whose it was, and nothing is stored. The rule is the registry's, so every writer
refuses the same ids: one with a removal record, a declaration history, or a pseudonym key
version."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete

from broker.core.admins import Publisher
from broker.core.model import ClientAuthMethod, Declaration, Protocol, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.oidc.registration import new_client
from broker.registry.errors import ServiceIdUsedBefore
from broker.registry.id_reuse import IdReuse
from broker.registry.migration import migration_connection
from broker.registry.tables import RemovalRow
from tests.security.test_portal_declarations import NEW, post, sp_metadata
from tests.security.test_portal_self_service import NEW_OIDC, NOT_NEEDED, field_error
from tests.support.portal import OTHER_PUBLISHER, PUBLISHER_ID, PortalSite

USED_BEFORE = {
    "nl": "Deze dienst-id is al eerder gebruikt; kies een andere.",
    "en": "This service id was used before; choose another.",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("id-reuse"), port=8796)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def publisher(site: PortalSite) -> FlaskClient:
    return site.sign_in("publisher")


def _removed(site: PortalSite, service_id: str, publisher_id: str | None) -> None:
    """A service of `publisher_id` with a declaration change, then removed."""
    client, _ = new_client(
        ("https://zuid.example/cb",), ClientAuthMethod.SECRET_BASIC, id_token_alg="ES256"
    )
    registry = site.registry
    registry.add_service(
        Service(
            service_id,
            "Lezen van Zuid",
            service_id,
            None,
            declarations=(Declaration("given_name", "Om te begroeten."),),
            protocol=Protocol.OIDC,
            oidc=client,
            approved=True,
            publisher_id=publisher_id,
        ),
        None,
    )
    registry.set_declarations(
        service_id, (Declaration("email", "Geheim doel van Zuid."),), "admin:999"
    )
    registry.remove_service(service_id, apply=True, removed_by="cli:ops")


def _registration(protocol: str, service_id: str) -> tuple[str, dict[str, object]]:
    """(the form's address, what the publisher sends) for a new service under `service_id`."""
    fields: dict[str, object] = {**NOT_NEEDED, "service_id": service_id, "name": "Lezen van Noord"}
    if protocol == "oidc":
        return NEW_OIDC, {
            **fields,
            "redirect_uris": "https://noord.example/cb\r\n",
            "auth_method": "client_secret_basic",
            "id_token_alg": "ES256",
        }
    metadata = sp_metadata(f"https://sp.{service_id}.noord.example", "https://noord.example/acs")
    return NEW, {**fields, "naming": "oid", "metadata_xml": metadata}


@pytest.mark.parametrize(
    ("protocol", "earlier", "lang"),
    [
        ("oidc", OTHER_PUBLISHER, "nl"),
        ("saml", OTHER_PUBLISHER, "nl"),
        ("oidc", OTHER_PUBLISHER, "en"),
        # The publisher's own removed id, and one no organisation managed: the portal never
        # takes one either; only the operator does (docs/cli.md).
        ("saml", PUBLISHER_ID, "nl"),
        ("oidc", None, "nl"),
    ],
)
def test_a_removed_id_is_refused_beside_the_service_id_and_nothing_is_stored(
    site: PortalSite,
    publisher: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
    earlier: str | None,
    lang: str,
) -> None:
    whose = {OTHER_PUBLISHER: "ander", PUBLISHER_ID: "eigen", None: "geen"}[earlier]
    service_id = f"lezen-{protocol}-{whose}-{lang}"
    _removed(site, service_id, earlier)
    registry = site.registry
    history = registry.declaration_history(service_id)
    generation = registry.generation()
    url, data = _registration(protocol, service_id)
    with caplog.at_level(logging.INFO):
        status, page = post(publisher, url, data, lang)
    assert status == 400
    assert field_error(page, "service_id") == USED_BEFORE[lang]
    # Not whose it was: neither the organisation nor the earlier name or purposes.
    for told in (OTHER_PUBLISHER, "Zuid", "Geheim doel"):
        assert told not in page
    assert registry.any_service(service_id) is None
    assert registry.declaration_history(service_id) == history
    assert registry.generation() == generation
    refusal = [r.getMessage() for r in caplog.records if "service_id_used_before" in r.getMessage()]
    assert refusal == [
        f"portal refused status=400 reason=service_id_used_before service={service_id} "
        f"publisher={PUBLISHER_ID} admin={site.accounts['publisher'].admin.id}"
    ]


def test_a_new_id_still_registers(site: PortalSite, publisher: FlaskClient) -> None:
    url, data = _registration("oidc", "lezen-nieuw")
    status, page = post(publisher, url, data)
    assert status == 200, page  # the page that shows the client secret once
    found = site.registry.any_service("lezen-nieuw")
    assert found is not None and found.publisher_id == PUBLISHER_ID


def _noord_client(service_id: str) -> Service:
    """An OIDC client of the portal's publisher (uitgeverij-noord) under `service_id`."""
    client, _ = new_client(("https://noord.example/cb",), ClientAuthMethod.SECRET_BASIC)
    return Service(
        service_id,
        "Noord",
        service_id,
        None,
        protocol=Protocol.OIDC,
        oidc=client,
        publisher_id=PUBLISHER_ID,
    )


def _history_only(site: PortalSite, service_id: str) -> None:
    """A declaration history without a removal record (a removal from before revision 0008)."""
    _removed(site, service_id, OTHER_PUBLISHER)
    with migration_connection(site.settings.registry_url) as connection:
        connection.execute(delete(RemovalRow).where(RemovalRow.entry_id == service_id))


def _key_version_only(site: PortalSite, service_id: str) -> None:
    """A pseudonym key version for the id's own chain, and nothing else."""
    record = ChainKeyVersion(f"service:{service_id}", 2, None, None)
    site.registry.pseudonym_keys.replace(None, record, "cli:ops")


def _removal(site: PortalSite, service_id: str) -> None:
    _removed(site, service_id, OTHER_PUBLISHER)


@pytest.mark.parametrize(
    ("kind", "trace"),
    [("removal", _removal), ("history", _history_only), ("key-version", _key_version_only)],
)
def test_every_trace_of_an_earlier_use_refuses_a_registration_by_default(
    site: PortalSite, kind: str, trace: Callable[[PortalSite, str], None]
) -> None:
    service_id = f"spoor-{kind}"
    trace(site, service_id)
    service = _noord_client(service_id)
    with pytest.raises(ServiceIdUsedBefore) as refused:
        site.registry.add_service(service, None)
    # Not this organisation's before (or not recorded whose): the operator's flag for the
    # same publisher does not take it either; acknowledging the carried-over pseudonyms does.
    with pytest.raises(ServiceIdUsedBefore):
        site.registry.add_service(service, None, reuse=IdReuse.SAME_PUBLISHER)
    assert site.registry.any_service(service_id) is None
    assert "--reuse-removed-id" in refused.value.detail
    site.registry.add_service(service, None, reuse=IdReuse.CARRIED_OVER)
    assert site.registry.any_service(service_id) is not None


def test_the_same_publisher_takes_its_own_removed_id_with_the_operators_flag(
    site: PortalSite,
) -> None:
    _removed(site, "eigen-id", PUBLISHER_ID)
    site.registry.add_service(_noord_client("eigen-id"), None, reuse=IdReuse.SAME_PUBLISHER)
    found = site.registry.any_service("eigen-id")
    assert found is not None and found.declaration_version == 3  # the history continues


def _client_of(service_id: str, publisher_id: str) -> Service:
    return dataclasses.replace(_noord_client(service_id), publisher_id=publisher_id)


def test_a_publisher_id_given_out_again_is_not_the_same_publisher(site: PortalSite) -> None:
    """Organisation "acme" (one company) had a service; both removed; another company is then
    onboarded under the free id "acme". The removal record names "acme", but no longer says
    who that was: `--reuse-removed-id` alone does not give the newcomer those pseudonyms, only
    the operator's acknowledgement does (id_reuse.py)."""
    registry, accounts = site.registry, site.registry.accounts
    accounts.add_publisher(Publisher("acme", "Acme BV"))
    registry.add_service(_client_of("acme-app", "acme"), None)
    registry.remove_service("acme-app", apply=True, removed_by="cli:ops")
    registry.remove_publisher("acme", apply=True, removed_by="cli:ops")
    accounts.add_publisher(Publisher("acme", "Another company entirely"))
    before = registry.snapshot()
    with pytest.raises(ServiceIdUsedBefore) as refused:
        registry.add_service(_client_of("acme-app", "acme"), None, reuse=IdReuse.SAME_PUBLISHER)
    assert "acme (an organisation removed since" in refused.value.detail
    assert refused.value.flags == ("--reuse-removed-id", "--pseudonyms-carry-over")
    assert registry.snapshot() == before and registry.any_service("acme-app") is None
    registry.add_service(_client_of("acme-app", "acme"), None, reuse=IdReuse.CARRIED_OVER)
    assert registry.any_service("acme-app") is not None


def test_an_organisation_removed_before_its_service_was_still_the_same(site: PortalSite) -> None:
    """An id given out again before the service was registered and removed: the record names
    the organisation that holds it now, and the operator's flag takes it back for it."""
    registry, accounts = site.registry, site.registry.accounts
    accounts.add_publisher(Publisher("bouw", "Bouw BV"))
    registry.remove_publisher("bouw", apply=True, removed_by="cli:ops")
    accounts.add_publisher(Publisher("bouw", "Bouw Nieuw BV"))
    registry.add_service(_client_of("bouw-app", "bouw"), None)
    registry.remove_service("bouw-app", apply=True, removed_by="cli:ops")
    registry.add_service(_client_of("bouw-app", "bouw"), None, reuse=IdReuse.SAME_PUBLISHER)
    found = registry.any_service("bouw-app")
    assert found is not None and found.publisher_id == "bouw"
