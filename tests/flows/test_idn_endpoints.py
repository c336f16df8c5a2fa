"""A service stored with an endpoint on a Unicode host (`https://例え.jp/acs`), past every intake
check (as a copy from before the rule): the broker sends it nothing and writes no such host
into a response header. Before the rule the SAML answer's CSP carried it (a source browsers
ignore, so the auto-POST was blocked; beyond latin-1 the server failed the response) and the
OIDC login went on to the redirect URI."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from broker.core.model import ClientAuthMethod, OidcClient, Protocol, Service
from tests.flows.test_service_endpoint_schemes import acs_stored_as
from tests.support.client import Browser, Page
from tests.support.forge import PublisherForger
from tests.support.live import LiveDemo

HOSTS = ["https://bücher.example/acs", "https://例え.jp/acs"]


def headers_are_ascii(page: Page) -> bool:
    """Every response on the way (redirects too) wrote its headers in ASCII."""
    responses = [*page.response.history, page.response]
    return all(f"{k}: {v}".isascii() for r in responses for k, v in r.headers.items())


@pytest.fixture(params=HOSTS)
def unicode_acs(demo: LiveDemo, request: pytest.FixtureRequest) -> Iterator[PublisherForger]:
    with acs_stored_as(demo, request.param) as forger:
        yield forger


def test_a_saml_service_with_a_unicode_acs_host_is_sent_nothing(
    demo: LiveDemo, unicode_acs: PublisherForger, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    with caplog.at_level(logging.INFO):
        page = browser.get(unicode_acs.request_url(f"{demo.broker_url}/saml/idp/sso"))
    assert "code=acs_not_https: URL 'https://" in caplog.text
    assert "must write its host in ASCII (its xn-- form): use 'https://xn--" in caplog.text
    assert page.status == 400 and page.location is None, page.text[:300]
    assert "This learning platform is not set up safely" in page.text
    assert "SAMLResponse" not in page.text
    assert headers_are_ascii(page)


@pytest.mark.parametrize("uri", HOSTS)
def test_an_oidc_client_with_a_unicode_redirect_host_is_not_redirected(
    demo: LiveDemo, uri: str
) -> None:
    service_id = f"idn-{HOSTS.index(uri)}"
    # As stored before the rule: built directly, past new_client's checks.
    client = OidcClient(redirect_uris=(uri,), auth_method=ClientAuthMethod.NONE)
    service = Service(
        service_id, service_id, service_id, "leermiddelen", protocol=Protocol.OIDC, oidc=client
    )
    demo.registry.add_service(service, None)
    query = {
        "client_id": service_id,
        "redirect_uri": uri,
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "nonce": "n",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    browser = Browser()
    page = browser.get(f"{demo.broker_url}/oidc/authorize?{urlencode(query)}")
    assert page.status == 400 and page.location is None, page.text[:300]
    assert len(page.visited) == 1
    assert headers_are_ascii(page)
