"""What every drill expects to see: the localised "please try again" page, healthy workers, and
logins that work again; and an OIDC client of a drill's own, with the code of a login."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import ClientAuthMethod, Protocol, Service
from broker.oidc.registration import new_client
from tests.support.client import Browser, Page
from tests.support.federation import CHAIN, SAML_PUBLISHER, SCHOOLS, Federation

NOWHERE = "http://localhost:9/cb"  # never requested: the browser stops at the redirect

# The 503 page in each language: its title and its message (broker/web/errors.py).
TRY_AGAIN = {
    "nl": ("Probeer het zo opnieuw", "Inloggen lukt even niet"),
    "en": ("Please try again in a moment", "Signing in is not possible right now"),
}


def assert_try_again_page(fed: Federation, page: Page, language: str) -> None:
    """A 503 from the broker in `language`, nothing carried on to the service, no internals."""
    assert page.status == 503, (page.url, page.text[:300])
    assert page.url.startswith(fed.broker_url)
    assert f'lang="{language}"' in page.text
    assert all(part in page.text for part in TRY_AGAIN[language])
    assert "Traceback" not in page.text
    assert "SAMLResponse" not in page.text and page.location is None


def assert_healthy(fed: Federation) -> None:
    """Every broker process answers /healthz: the failure is not the worker's own."""
    for broker in fed.brokers:
        assert requests.get(f"{broker.url}/healthz", timeout=5).status_code == 200


def assert_logins_work(fed: Federation, publisher: str, school: str, uid: str) -> None:
    """A whole login in a fresh browser, with the pseudonym the publisher should get."""
    browser = fed.browser()
    page = fed.login(browser, publisher, school, uid)
    assert page.status == 200, page.text[:500]
    assert fed.received_subject(browser, publisher) == fed.expected_pseudonym(school, uid)


def refusals(fed: Federation, code: str) -> int:
    return fed.brokers[0].log_path.read_text(encoding="utf-8").count(f"refused code={code} ")


def delivered_is_refused_then_a_new_login_works(
    fed: Federation, browser: Browser, answer: Page, code: str
) -> None:
    """Deliver the school's old answer: refused with `code`, nothing reaches the publisher;
    then a new login of the same student works straight away."""
    before = refusals(fed, code)
    refused = browser.submit(answer, fed.acs_url)
    assert refused.status == 400, refused.text[:300]
    assert "SAMLResponse" not in refused.text
    assert not any(url.startswith(fed.publisher_url(SAML_PUBLISHER)) for url in refused.visited)
    assert refusals(fed, code) == before + 1
    again = fed.login(browser, SAML_PUBLISHER, DEMO_SCHOOL_ID, "sanne.jansen")
    assert again.status == 200, again.text[:300]
    assert fed.received_subject(browser, SAML_PUBLISHER) == fed.expected_pseudonym(
        DEMO_SCHOOL_ID, "sanne.jansen"
    )


def registered_client(fed: Federation, prefix: str, **options: Any) -> tuple[str, str]:
    """A client of the drill's own, redirecting `NOWHERE`: (client id, secret)."""
    client, secret = new_client((NOWHERE,), ClientAuthMethod.SECRET_BASIC, **options)
    client_id = f"{prefix}-{secrets.token_hex(4)}"
    registry = fed.registry()
    try:
        registry.add_service(
            Service(
                client_id, "Drill client", client_id, CHAIN, protocol=Protocol.OIDC, oidc=client
            ),
            None,
        )
    finally:
        registry.close()
    return client_id, secret or ""


def issued_code(fed: Federation, client_id: str, uid: str, *, via: int = 0) -> tuple[str, str]:
    """A student's login at the demo SAML school for `client_id`, stopped at the redirect that
    carries the code: (code, PKCE verifier)."""
    verifier = secrets.token_urlsafe(48)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": NOWHERE,
            "scope": "openid",
            "state": "s",
            "nonce": "n",
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "login_hint": SCHOOLS[0],
        }
    )
    browser = fed.browser(via=via)
    stop = lambda url: url.startswith(NOWHERE)  # noqa: E731
    page = browser.get(f"{fed.broker_url}/oidc/authorize?{query}", stop=stop)
    answer = browser.submit(page, f"{fed.school_url}/sso/pick", {"uid": uid})
    form = answer.form(fed.acs_url)
    issued = browser.post(form.action, form.fields, stop=stop)
    assert issued.location and issued.location.startswith(NOWHERE), issued.text[:300]
    return parse_qs(urlsplit(issued.location).query)["code"][0], verifier
