"""A student of the demo's OpenID Connect school logs in through the broker in headless Chromium.

Publisher (localhost) -> broker discovery (127.0.0.1) -> the school's OpenID provider (localhost)
-> a cross-site top-level redirect back to the broker's callback -> auto-POST to the publisher.
What only a real browser shows: the discovery page's form-action allows the redirect to the
provider, and the broker's login state survives the cross-site return.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from broker.cli.demo import DEMO_OIDC_SCHOOL_TOWN
from tests.browser.conftest import Demo, expect_discovery
from tests.support.notice import continue_past_notice

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
HEX64 = re.compile(r"[0-9a-f]{64}")
OIDC_SCHOOL_NAME = "Demo OIDC-school"


def log_in_at_the_oidc_school(demo: Demo, page: Page, platform: str, student: str) -> None:
    """From the platform's start page through discovery to the OIDC school's pick page."""
    page.goto(platform + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    expect_discovery(page, demo.broker)
    page.locator("#school-search").fill("oidc")
    page.get_by_role(
        "button", name=f"{OIDC_SCHOOL_NAME} {DEMO_OIDC_SCHOOL_TOWN}", exact=True
    ).click()
    expect(page).to_have_url(re.compile(re.escape(demo.oidc_school) + r"/authorize\?"))
    expect(page.get_by_role("heading", name="Demo school: who are you?")).to_be_visible()
    page.get_by_role("button", name=re.compile(student)).click()


def test_student_of_the_oidc_school_logs_in(demo: Demo, page: Page) -> None:
    log_in_at_the_oidc_school(demo, page, demo.leesplank, "Sanne Jansen")

    continue_past_notice(page, demo.leesplank + "/acs")
    expect(page).to_have_url(demo.leesplank + "/acs")
    response = page.request.get(demo.leesplank + "/received.json")
    assert response.ok, response.text()
    received = response.json()
    assert received["name_id"]["format"] == PERSISTENT
    assert HEX64.fullmatch(received["name_id"]["value"])
    values = {a["friendly_name"] or a["name"]: a["values"] for a in received["attributes"]}
    assert values["givenName"] == ["Sanne"]
    assert values["eduPersonAffiliation"] == ["student"]


def test_oidc_platform_and_oidc_school_in_one_browser_with_sso(demo: Demo, page: Page) -> None:
    """OpenID Connect on both sides in Chromium, then the SAML platform of the same chain from
    the SSO session: one pseudonym as OIDC `sub` and as SAML NameID."""
    log_in_at_the_oidc_school(demo, page, demo.oidc_publisher, "Daan de Vries")

    continue_past_notice(page, demo.oidc_publisher + "/callback")
    expect(page).to_have_url(re.compile(re.escape(demo.oidc_publisher) + r"/callback\?"))
    expect(page.locator("#sub")).to_be_visible()
    oidc = page.request.get(demo.oidc_publisher + "/received.json").json()
    assert HEX64.fullmatch(oidc["sub"])
    assert oidc["userinfo"] == {"sub": oidc["sub"], "given_name": "Daan"}

    # Leesplank (SAML, same chain): answered from the SSO session, no school page in between.
    page.goto(demo.leesplank + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    continue_past_notice(page, demo.leesplank + "/acs")
    expect(page).to_have_url(demo.leesplank + "/acs")
    saml = page.request.get(demo.leesplank + "/received.json").json()
    assert saml["name_id"]["value"] == oidc["sub"]
