"""The portals' identity-provider pages keep the address SAML metadata was fetched from: a
school's administrator who gives the address (and the operator onboarding a school by address)
has `metadata refresh` follow the IdP from then on; an uploaded file clears it (nothing fetches a
file again). The publisher portal's registration keeps the address of a service's SP metadata likewise.
The address is a metadata server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.security.test_portal_declarations import NEW, NOT_NEEDED, sp_metadata
from tests.security.test_portal_declarations import post as post_portal
from tests.security.test_portal_school_idp_problems import IDP, post
from tests.support.feed import Feed
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path, port=8839)
    yield built
    built.registry.close()


@pytest.fixture
def feed() -> Iterator[Feed]:
    served = Feed()
    yield served
    served.stop()


def test_the_address_a_school_gives_is_kept_and_an_upload_clears_it(
    site: PortalSite, feed: Feed
) -> None:
    registered = site.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    feed.body = registered.encode()
    school = site.sign_in("school")
    status, page = post(
        school, "/saml", {"metadata_url": feed.url, "saml_subject": "name_id"}, "nl"
    )
    assert status == 303, page
    assert site.registry.metadata_url("idp", DEMO_SCHOOL_ID) == feed.url
    shown = school.get(f"{IDP}?lang=nl", base_url=HTTPS).get_data(as_text=True)
    assert f"Bij elke verversing opnieuw opgehaald van {feed.url}" in shown
    upload = (BytesIO(registered.encode()), "idp.xml")
    status, page = post(school, "/saml", {"metadata_file": upload, "saml_subject": "name_id"}, "nl")
    assert status == 303, page
    assert site.registry.metadata_url("idp", DEMO_SCHOOL_ID) is None
    shown = school.get(f"{IDP}?lang=en", base_url=HTTPS).get_data(as_text=True)
    assert "Registered as a file, which is not fetched again" in shown


def test_the_operators_onboarding_by_address_keeps_it(site: PortalSite, feed: Feed) -> None:
    registered = site.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    other = "https://adfs.nieuw.example/adfs/services/trust"
    moved = registered.replace(f'entityID="{school.idp_entity_id}"', f'entityID="{other}"')
    feed.body = moved.encode()
    data = {"school_id": "77AB00", "name": "Nieuwe school", "metadata_url": feed.url}
    status, page = post(site.sign_in("operator"), "", data, "en", url="/portal/operator/schools")
    assert status == 303, page
    assert site.registry.metadata_urls("idp") == [("77AB00", other, feed.url)]


def _register(publisher: FlaskClient, service_id: str, **given: object) -> tuple[int, str]:
    fields = {**NOT_NEEDED, "service_id": service_id, "name": service_id, "naming": "oid"}
    return post_portal(publisher, NEW, {**fields, **given})


def test_the_address_a_publisher_registers_by_is_kept_and_an_upload_keeps_none(
    site: PortalSite, feed: Feed
) -> None:
    """The publisher portal's registration takes the SP metadata's address too (revision
    0029): fetched by the fetch's rules, kept for `metadata refresh`; one that cannot be fetched
    is refused beside the address field, nothing registered; an upload keeps no address."""
    xml = sp_metadata("https://platform.noord.example/sp", "https://platform.noord.example/acs")
    feed.body = xml.encode()
    publisher = site.sign_in("publisher")  # a code is accepted once: one sign-in
    status, page = _register(publisher, "noord-by-url", metadata_url=feed.url)
    assert status == 303, page
    assert site.registry.metadata_url("sp", "noord-by-url") == feed.url
    assert site.registry.registered_metadata("sp", "noord-by-url") == xml
    page_of = f"/portal/publisher/{PUBLISHER_ID}/services/noord-by-url?lang=nl"
    shown = publisher.get(page_of, base_url=HTTPS).get_data(as_text=True)
    assert f"Bij elke verversing opnieuw opgehaald van {feed.url}" in shown

    feed.mode = "error"
    status, page = _register(publisher, "noord-unfetched", metadata_url=feed.url)
    assert status == 400 and 'id="metadata_url-error"' in page, page[-3000:]
    assert site.registry.metadata_url("sp", "noord-unfetched") is None

    other = xml.replace("platform.noord.example", "upload.noord.example")
    upload = (BytesIO(other.encode()), "sp.xml")
    status, page = _register(
        publisher, "noord-by-file", metadata_file=upload, metadata_url=feed.url
    )
    assert status == 303, page
    assert site.registry.metadata_url("sp", "noord-by-file") is None
    page_of = f"/portal/publisher/{PUBLISHER_ID}/services/noord-by-file?lang=en"
    shown = publisher.get(page_of, base_url=HTTPS).get_data(as_text=True)
    assert "Registered as a file, which is not fetched again" in shown
