"""A service registered before metadata intake checked ACS URLs, with a plain-http one stored as
it was (straight into the registry, past every intake check): the broker sends it nothing. Its
AuthnRequest is refused with a page (`acs_not_https`, 400) before the student is sent to a
school; no assertion and no error Response go to that URL, and nothing is written."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from lxml import etree

from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_provider_checks import store_calls
from tests.flows.test_school_endpoint_schemes import WRITES
from tests.support.client import Browser
from tests.support.forge import PublisherForger, redirect_message
from tests.support.live import LiveDemo

PLAIN_HTTP_ACS = "http://sp.leesplank.example/acs"


@contextmanager
def acs_stored_as(demo: LiveDemo, acs_url: str) -> Iterator[PublisherForger]:
    """Leesplank's registered metadata with its ACS URL replaced by `acs_url`, as a copy from
    before a rule holds it (put back afterwards); a client speaking as Leesplank, with its key,
    that names that ACS URL as its own."""
    leesplank = demo.publishers["leesplank"]
    original = demo.registry.registered_metadata("sp", leesplank.id)
    changed = original.replace(f'Location="{leesplank.acs_url}"', f'Location="{acs_url}"')
    assert changed != original
    demo.registry.update_service_metadata(leesplank.id, changed)
    peers = demo.directory / "peers"
    try:
        yield PublisherForger(
            leesplank.entity_id,
            acs_url,
            peers / "leesplank.key",
            peers / "leesplank.crt",
            demo.broker.saml_entities.idp_metadata(),
        )
    finally:
        demo.registry.update_service_metadata(leesplank.id, original)


@pytest.fixture
def acs_over_plain_http(demo: LiveDemo) -> Iterator[PublisherForger]:
    """Leesplank's ACS URL on a plain-http public host (`acs_stored_as`)."""
    with acs_stored_as(demo, PLAIN_HTTP_ACS) as forger:
        yield forger


@pytest.mark.parametrize("named", [True, False], ids=["by-url", "by-index"])
def test_a_plain_http_acs_url_stored_in_the_registry_is_sent_nothing(
    demo: LiveDemo,
    caplog: pytest.LogCaptureFixture,
    acs_over_plain_http: PublisherForger,
    named: bool,
) -> None:
    sso = f"{demo.broker_url}/saml/idp/sso"
    # Named exactly as in the metadata, or by its index there.
    url = acs_over_plain_http.request_url(
        sso, **({"acs_url": PLAIN_HTTP_ACS} if named else {"assertion_consumer_service_index": "1"})
    )
    xml, _ = redirect_message(url)
    assert (etree.fromstring(xml).get("AssertionConsumerServiceURL") is not None) is named
    browser = Browser()
    with caplog.at_level(logging.INFO), store_calls(demo) as calls:
        page = browser.get(url)
    assert len(page.visited) == 1 and page.location is None  # not sent to a school
    assert page.status == 400 and "Error code:" in page.text, page.text[:500]
    assert "This learning platform is not set up safely" in page.text
    assert "SAMLResponse" not in page.text and PLAIN_HTTP_ACS not in page.text
    entity = demo.publishers["leesplank"].entity_id
    assert f"refused service={entity} code=acs_not_https: ACS URL '{PLAIN_HTTP_ACS}'" in caplog.text
    assert "refused code=acs_not_https status=400" in caplog.text
    written = [c for c in calls if c[0] in WRITES or any(k.split()[0] in WRITES for k in c[1])]
    assert written == [], written
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    assert browser.get(f"{demo.publishers['leesplank'].base_url}/received.json").status == 404


def test_in_dutch_the_student_is_told_to_tell_their_school(
    demo: LiveDemo, acs_over_plain_http: PublisherForger
) -> None:
    url = acs_over_plain_http.request_url(f"{demo.broker_url}/saml/idp/sso")
    page = Browser("nl").get(url)
    assert page.status == 400
    assert "Dit leerplatform is niet veilig ingesteld" in page.text
    assert "dus je kunt er hier niet bij inloggen. Laat het je school weten." in page.text
