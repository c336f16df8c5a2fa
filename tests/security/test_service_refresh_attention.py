"""A service's SP metadata that needs the operator (revision 0029): one whose signing or
encryption certificates in the copy in force all end within 30 days, and one given by URL whose
copy `metadata refresh` has not accepted for 3 days. The operator's "Needs attention" page and
`registry problems` list each (with the date or why), and the
`ketenbroker_service_sp_certificates_ending` and `ketenbroker_service_metadata_not_refreshed`
gauges count them (one number each, no service label); a refresh that succeeds again clears
the second."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from broker.cli.main import main
from broker.core.model import Protocol, Service
from broker.registry import SqlRegistry
from broker.saml.metadata_changes import signing_valid_until
from broker.web.metadata_metrics import SERVICE_CERTIFICATES_ENDING, SERVICE_NOT_REFRESHED
from tests.security.test_portal_attention import _section
from tests.security.test_school_certificate_ending import ENDING_CERT, _with_certificates
from tests.support.feed import Feed
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, portal_site

OWN_SP = "https://platform.noord.example/saml"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PortalSite]:
    with portal_site(tmp_path, 8841) as built:
        yield built


def _saml_service(registry: SqlRegistry) -> str:
    return next(s.id for s in registry.all_services() if s.protocol is Protocol.SAML)


def _gauge(site: PortalSite, name: str) -> float:
    scraped = site.client().get("/metrics").get_data(as_text=True)
    (value,) = re.findall(rf"^{name} (\S+)$", scraped, re.M)
    return float(value)


def _cli(site: PortalSite, *args: str) -> Result:
    config = str(site.directory / "ketenbroker.toml")
    return CliRunner().invoke(main, [*args[:2], "--config", config, *args[2:]])


def test_an_ending_service_certificate_is_listed_and_counted(site: PortalSite) -> None:
    service_id = _saml_service(site.registry)
    assert _gauge(site, SERVICE_CERTIFICATES_ENDING) == 0.0
    registered = site.registry.registered_metadata("sp", service_id)
    ending = _with_certificates(registered, ENDING_CERT)
    site.registry.update_service_metadata(service_id, ending, registered)
    until = signing_valid_until(ending, "sp")
    assert until is not None
    detail = f"signing or encryption certificate valid until {until.date().isoformat()}"

    page = site.sign_in("operator").get("/portal/operator/attention?lang=en", base_url=HTTPS)
    section = _section(page.get_data(as_text=True), "services_certificate_ending")
    assert service_id in section and detail in section
    assert "Platforms roll their keys about yearly" in section
    assert _gauge(site, SERVICE_CERTIFICATES_ENDING) == 1.0
    problems = _cli(site, "registry", "problems")
    assert detail in problems.output, problems.output

    # The publisher's own administrators see it on every page of their portal (Dutch, formal).
    publisher = site.sign_in("publisher")
    services = f"/portal/publisher/{PUBLISHER_ID}/services?lang=nl"
    assert 'id="certificate-ending"' not in publisher.get(services, base_url=HTTPS).get_data(
        as_text=True
    )  # not its service
    own = Service("noord-platform", "Noord Platform", OWN_SP, None, publisher_id=PUBLISHER_ID)
    site.registry.add_service(own, ending.replace(_entity_id(site, service_id), OWN_SP))
    shown = publisher.get(services, base_url=HTTPS).get_data(as_text=True)
    assert 'id="certificate-ending"' in shown
    assert "Noord Platform" in shown and "Het ondertekenings- of versleutelingscertificaat" in shown
    assert "anders stuurt u de nieuwe metadata naar de operator van de federatie" in shown


def _entity_id(site: PortalSite, service_id: str) -> str:
    (entity_id,) = [s.entity_id for s in site.registry.all_services() if s.id == service_id]
    return entity_id


def test_a_service_not_refreshed_for_days_is_listed_counted_and_clears(site: PortalSite) -> None:
    registry = site.registry
    service_id = _saml_service(registry)
    registered = registry.registered_metadata("sp", service_id)
    feed = Feed()
    try:
        feed.body = registered.encode()
        given = _cli(site, "publisher", "update", "--id", service_id, "--saml-metadata", feed.url)
        assert given.exit_code == 0, given.output
        assert _gauge(site, SERVICE_NOT_REFRESHED) == 0.0  # given by URL just now: a refresh

        # The last copy accepted four days ago; since then the publisher's server fails.
        four_days_ago = datetime.now(UTC) - timedelta(days=4)
        earlier = SqlRegistry(site.settings.registry_url, clock=lambda: four_days_ago)
        earlier.record_refresh("sp", [service_id], None)
        earlier.close()
        feed.mode = "error"
        failed = _cli(site, "metadata", "refresh")
        assert failed.exit_code == 1, failed.output
        assert f"service {service_id} (SP " in failed.output

        day, today = four_days_ago.date().isoformat(), datetime.now(UTC).date().isoformat()
        detail = f"not refreshed since {day}; last refused {today} (metadata_invalid)"
        operator = site.sign_in("operator")
        page = operator.get("/portal/operator/attention?lang=en", base_url=HTTPS)
        section = _section(page.get_data(as_text=True), "services_metadata_not_refreshed")
        assert service_id in section and detail in section
        assert "Run ketenbroker metadata refresh and read the service" in section
        problems = _cli(site, "registry", "problems")
        assert detail in problems.output, problems.output
        assert _gauge(site, SERVICE_NOT_REFRESHED) == 1.0

        # The server mends: the next run accepts the copy and the service leaves the list.
        feed.mode = "ok"
        again = _cli(site, "metadata", "refresh")
        assert again.exit_code == 0, again.output
        assert _gauge(site, SERVICE_NOT_REFRESHED) == 0.0
        page = operator.get("/portal/operator/attention?lang=en", base_url=HTTPS)
        assert "attention-services_metadata_not_refreshed" not in page.get_data(as_text=True)
    finally:
        feed.stop()
