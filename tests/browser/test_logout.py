"""Logout in headless Chromium: the propagation page's iframes, its script and the cookies.

A student logged in at two publishers (one SSO session) logs out at one of them. What only a
real browser shows: the iframe carries the broker's LogoutRequest to the other publisher (on
another site, within the page's CSP) and its answer back, the page's script notices the answer
and moves on without a click, the school's round trip keeps the broker's cookie, and the way
back to the first publisher is a signed LogoutResponse it accepts.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Demo, expect_discovery
from tests.browser.test_demo_login import (
    Screenshot,
    broker_cookies,
    expect_received,
    full_login,
    start_login,
)

pytestmark = pytest.mark.browser


def test_logout_from_a_publisher_reaches_the_other_one_through_an_iframe(
    demo: Demo, context: BrowserContext, page: Page, screenshot: Screenshot
) -> None:
    full_login(page, demo, demo.leesplank)
    start_login(page, demo.rekenroute)  # the SSO session answers: no school this time
    rekenroute = expect_received(page, demo.rekenroute)
    assert "__Host-kb_sso" in broker_cookies(context, demo)

    page.goto(demo.leesplank + "/logout")

    # Propagation page, then (by its script, no click) the school, then the final page.
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + r"/logout/[^/]+/done$"))
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("heading", level=1)).to_have_text("Je bent uitgelogd")
    other = page.locator("[data-logout-service]")
    expect(other).to_have_count(1)
    expect(other).to_have_attribute("data-status", "confirmed")
    expect(page.locator("[data-school-status]")).to_have_attribute(
        "data-school-status", "confirmed"
    )
    assert "__Host-kb_sso" not in broker_cookies(context, demo)
    screenshot(page, "logout-done")

    # The other publisher heard it (by the NameID it was given) and answered from the iframe.
    heard = page.request.get(demo.rekenroute + "/logouts.json").json()
    assert [e for e in heard if e["kind"] == "request"][-1]["name_id"] == rekenroute["name_id"][
        "value"
    ]

    # Back to the publisher that started it: a signed LogoutResponse, Success.
    # (a link for the Redirect binding, a form button for POST)
    page.get_by_text(re.compile(r"^Terug naar Leesplank")).click()
    expect(page.locator("[data-logout-status]")).to_have_attribute("data-logout-status", "success")

    # A new login goes to the school again.
    start_login(page, demo.rekenroute)
    expect_discovery(page, demo.broker)
