"""A student of the demo's OpenID Connect school logs in through the broker in headless Chromium.

Publisher (localhost) -> broker discovery (127.0.0.1) -> the school's OpenID provider (localhost)
-> a cross-site top-level redirect back to the broker's callback -> auto-POST to the publisher.
What only a real browser shows: the discovery page's form-action allows the redirect to the
provider, and the broker's login state survives the cross-site return.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CHROMIUM, Demo

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing on CI; the browser tests must run there", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} not installed (Debian package 'chromium'); browser tests skipped",
        allow_module_level=True,
    )

pytestmark = pytest.mark.browser

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
HEX64 = re.compile(r"[0-9a-f]{64}")
OIDC_SCHOOL_NAME = "Demo OIDC-school"


def test_student_of_the_oidc_school_logs_in(demo: Demo, page: Page) -> None:
    page.goto(demo.leesplank + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + r"/discovery\?"))
    page.locator("#school-search").fill("oidc")
    page.get_by_role("button", name=OIDC_SCHOOL_NAME, exact=True).click()

    expect(page).to_have_url(re.compile(re.escape(demo.oidc_school) + r"/authorize\?"))
    expect(page.get_by_role("heading", name="Demo school: who are you?")).to_be_visible()
    page.get_by_role("button", name=re.compile("Sanne Jansen")).click()

    expect(page).to_have_url(demo.leesplank + "/acs")
    response = page.request.get(demo.leesplank + "/received.json")
    assert response.ok, response.text()
    received = response.json()
    assert received["name_id"]["format"] == PERSISTENT
    assert HEX64.fullmatch(received["name_id"]["value"])
    values = {a["friendly_name"] or a["name"]: a["values"] for a in received["attributes"]}
    assert values["givenName"] == ["Sanne"]
    assert values["eduPersonAffiliation"] == ["student"]
