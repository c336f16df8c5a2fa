"""What the interop tests (tests/interop) do in Chromium at a product that protects a page with
the broker: sign in there as a demo student, and note the requests the browser makes."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, Request, expect

from tests.support.notice import continue_past_notice

Seen = Callable[[], list[Request]]


def sign_in_as_sanne(page: Page, broker: str, protected: str) -> dict[str, str]:
    """From the product's `protected` page (a CGI script printing its environment) through the
    broker and the demo school, as Sanne Jansen; returns what the application received (its
    environment, one `NAME=value` a line)."""
    page.goto(protected)
    expect(page).to_have_url(re.compile("^" + re.escape(broker) + "/"))
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=re.compile("^Demo Lyceum")).click()
    page.get_by_role("button", name=re.compile("Sanne Jansen")).click()
    continue_past_notice(page, protected)
    expect(page).to_have_url(protected)
    lines = page.locator("body").inner_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def watch(page: Page) -> Seen:
    """The requests `page` makes from now on."""
    requests: list[Request] = []

    def note(request: Request) -> None:
        # A def, not `requests.append`: Playwright marks the handler it is given, and a
        # builtin method takes no attribute.
        requests.append(request)

    page.on("request", note)
    return lambda: requests


def sign_in_at_leesplank(page: Page, leesplank: str) -> None:
    """Signed in at a product already: at the demo's Leesplank too, in the same broker session
    (its notice passed), so that a logout there is a logout elsewhere for the product."""
    page.goto(leesplank + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    continue_past_notice(page, leesplank + "/acs")
    expect(page).to_have_url(leesplank + "/acs")
