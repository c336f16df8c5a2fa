"""OpenID Connect logout in headless Chromium, with the demo's own peers.

A student of the demo OIDC school logs in at Woordwijs (OIDC) and at Leesplank (SAML): one SSO
session, both publisher protocols, an OIDC school. Woordwijs's "Log out" button goes to the
broker's end_session; the propagation page's iframe tells Leesplank, the browser is sent through
the school's end_session and back, and the final page sends it back to Woordwijs with its state
by itself (every platform and the school confirmed: nothing to read there).
Then the other way round: a logout started at Leesplank reaches Woordwijs by back channel,
and Leesplank gets its LogoutResponse (Success) without a click.
"""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Demo
from tests.browser.test_demo_login import broker_cookies
from tests.browser.test_logout import record_pages
from tests.browser.test_oidc_school_login import log_in_at_the_oidc_school
from tests.support.notice import continue_past_notice

DONE = r"/logout/[^/]+/done$"


def _two_platforms(demo: Demo, page: Page, student: str) -> None:
    log_in_at_the_oidc_school(demo, page, demo.oidc_publisher, student)
    continue_past_notice(page, demo.oidc_publisher + "/callback")
    expect(page.locator("#sub")).to_be_visible()
    page.goto(demo.leesplank + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    continue_past_notice(page, demo.leesplank + "/acs")
    expect(page).to_have_url(demo.leesplank + "/acs")


def test_logout_at_the_oidc_platform_reaches_saml_platform_and_oidc_school(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    _two_platforms(demo, page, "Sanne Jansen")
    school_before = len(page.request.get(demo.oidc_school + "/logouts.json").json())

    leesplank_before = len(page.request.get(demo.leesplank + "/logouts.json").json())
    shown = record_pages(page)

    page.goto(demo.oidc_publisher + "/logout")

    # No click anywhere: at Woordwijs's post_logout_redirect_uri, with the state it sent (the
    # demo platform shows #logged-out only when the state came back unchanged).
    expect(page).to_have_url(re.compile(re.escape(demo.oidc_publisher) + r"/logged-out\?state="))
    expect(page.locator("#logged-out")).to_be_visible()
    assert any(re.search(DONE, url) for url in shown), shown
    assert "__Host-kb_sso" not in broker_cookies(context, demo)
    # Leesplank was told in the iframe and answered; the school was told through its
    # end_session.
    heard = page.request.get(demo.leesplank + "/logouts.json").json()
    assert [e["kind"] for e in heard[leesplank_before:]] == ["request"]
    assert len(page.request.get(demo.oidc_school + "/logouts.json").json()) == school_before + 1


def test_logout_at_the_saml_platform_reaches_the_oidc_platform_by_back_channel(
    demo: Demo, page: Page
) -> None:
    _two_platforms(demo, page, "Daan de Vries")
    received = page.request.get(demo.oidc_publisher + "/received.json").json()
    assert received["ended_by_back_channel"] is False

    page.goto(demo.leesplank + "/logout")

    # Woordwijs confirmed by back channel, so Leesplank hears Success (not PartialLogout).
    expect(page.locator("[data-logout-status]")).to_have_attribute("data-logout-status", "success")
    after = page.request.get(demo.oidc_publisher + "/received.json").json()
    assert after["ended_by_back_channel"] is True
    calls = page.request.get(demo.oidc_publisher + "/backchannel.json").json()["calls"]
    assert calls[-1]["sid"] == received["session_index"]
