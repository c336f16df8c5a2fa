"""A school registered before metadata intake checked SSO and SLO URLs, with a plain-http one
stored as it was (straight into the registry, past every intake check): the broker does not
send students there. Its logins are refused before the student is sent to the school, with the
page of a school whose sign-in is not set up; its logouts are not sent to such an SLO URL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_provider_checks import store_calls
from tests.support.client import Browser
from tests.support.live import LiveDemo
from tests.support.logout import carry_saml_posts, finish_logout

PLAIN_HTTP = "http://idp.demoschool.example"
WRITES = {"put", "add_if_absent", "take", "delete"}


def _stored_with(demo: LiveDemo, path: str) -> Iterator[None]:
    """The demo school's registered metadata with its `path` endpoints (both bindings) on a
    plain-http public host, as a copy from before the rule holds it; put back afterwards."""
    original = demo.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    plain = original.replace(f"{demo.school_url}{path}", f"{PLAIN_HTTP}{path}")
    assert plain != original
    demo.registry.update_school_metadata(DEMO_SCHOOL_ID, plain)
    try:
        yield
    finally:
        demo.registry.update_school_metadata(DEMO_SCHOOL_ID, original)


@pytest.fixture
def sso_over_plain_http(demo: LiveDemo) -> Iterator[None]:
    yield from _stored_with(demo, "/sso")


@pytest.fixture
def slo_over_plain_http(demo: LiveDemo) -> Iterator[None]:
    yield from _stored_with(demo, "/slo")


def test_a_plain_http_sso_url_stored_in_the_registry_lets_nobody_in(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture, sso_over_plain_http: None
) -> None:
    browser = Browser()
    discovery = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert demo.shows_discovery(discovery), discovery.text[:500]
    with caplog.at_level(logging.INFO), store_calls(demo) as calls:
        page = demo.choose_school(browser, discovery)
    assert page.url.startswith(demo.broker_url), page.url
    assert page.status == 503 and "Error code:" in page.text, page.text[:500]
    assert "Signing in with your school is not set up" in page.text
    assert "Traceback" not in page.text
    assert f"saml login refused school={DEMO_SCHOOL_ID} code=school_sso_not_https" in caplog.text
    assert "upstream school=" not in caplog.text  # nobody sent to the school
    # Nothing written: no upstream request noted in the login record, no session.
    written = [c for c in calls if c[0] in WRITES or any(k.split()[0] in WRITES for k in c[1])]
    assert written == [], written
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    assert not any(url.startswith(PLAIN_HTTP) for url in browser.history)
    assert browser.get(f"{demo.publishers['leesplank'].base_url}/received.json").status == 404


def test_logout_is_not_sent_to_a_plain_http_slo_url(
    demo: LiveDemo, slo_over_plain_http: None
) -> None:
    # As if the school had no SLO endpoint: not told (the page says so), the NameID never sent
    # over plain http; the student is logged out at the broker all the same.
    browser = Browser()
    login = demo.login(browser, "leesplank", "sanne.jansen")
    assert login.final.status == 200 and SSO_COOKIE in browser.cookies(demo.broker_url)
    started = carry_saml_posts(
        browser, browser.get(f"{demo.publishers['leesplank'].base_url}/logout")
    )
    outcome = finish_logout(browser, started)
    assert outcome.school == "not_told"
    assert not any(url.startswith(PLAIN_HTTP) for url in browser.history)
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
