"""What only a real browser shows around a login (headless Chromium, the demo on two sites): the
live school search by code and with a typo, what Enter does, the Back button from the platform
to the notice, a browser that lost its cookies mid-login, and a mis-tapped school."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import CHROMIUM, Demo, expect_discovery
from tests.browser.test_demo_login import (
    SCHOOL_BUTTON,
    SCHOOL_ID,
    broker_cookies,
    pick_person,
    school_sso,
    start_login,
)
from tests.support.notice import NOTICE_BUTTON

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing on CI; the browser tests must run there", pytrace=False)
    pytest.skip(f"{CHROMIUM} not installed; browser tests skipped", allow_module_level=True)

pytestmark = pytest.mark.browser

SERVICE = "Leesplank (demo publisher)"


def school_button(page: Page) -> object:
    return page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)


@pytest.mark.parametrize("typed", [SCHOOL_ID, SCHOOL_ID.lower(), "lyceym", "demo-lyceum"])
def test_the_live_filter_finds_by_code_hyphen_and_typo_and_enter_goes_to_the_first(
    demo: Demo, page: Page, typed: str
) -> None:
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    search = page.locator("#school-search")
    search.fill(typed)
    expect(page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)).to_be_visible()
    expect(page.locator("#no-schools")).to_be_hidden()
    expect(page.locator("#school-count")).to_have_text("1 school gevonden")
    assert not script_errors
    close = page.locator("#close-matches")
    if typed == "lyceym":
        expect(close).to_be_visible()
    else:
        expect(close).to_be_hidden()
    address = page.url
    search.press("Enter")
    # Enter goes to the first match (a second Enter would choose it), and stays on the page.
    expect(page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)).to_be_focused()
    assert page.url == address


def test_enter_with_no_match_in_the_list_asks_the_server(demo: Demo, page: Page) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    search = page.locator("#school-search")
    search.fill("zzzzzz")
    expect(page.locator("#no-schools")).to_be_visible()
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/discovery\?login=[^&]+&q=zzzzzz$"))
    expect(page.locator("#no-schools")).to_be_visible()


@pytest.mark.parametrize(
    ("locale", "heading", "link"),
    [
        ("nl-NL", f"Je bent al ingelogd bij {SERVICE}", f"Naar {SERVICE}"),
        ("en-GB", f"You are already signed in to {SERVICE}", f"Go to {SERVICE}"),
    ],
)
def test_back_from_the_platform_to_the_notice_says_already_signed_in(
    demo: Demo,
    new_context: Callable[..., BrowserContext],
    locale: str,
    heading: str,
    link: str,
) -> None:
    page = new_context(locale).new_page()
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    pick_person(page, demo)
    page.locator(NOTICE_BUTTON).click()
    expect(page).to_have_url(demo.leesplank + "/acs")
    page.go_back()
    expect(page).to_have_url(re.compile("^" + re.escape(demo.broker) + "/notice/"))
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    expect(page.locator(".error-code")).to_have_count(0)
    back = page.get_by_role("link", name=link)
    expect(back).to_have_attribute("href", demo.leesplank + "/")
    back.click()
    expect(page).to_have_url(demo.leesplank + "/")


def test_cookies_lost_mid_login_say_to_allow_cookies(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    context.clear_cookies()  # what a browser that blocks the broker's cookies ends up with
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sta cookies toe om in te loggen")
    expect(page.locator("main")).to_contain_text("Sta cookies toe voor deze website (127.0.0.1")


def test_a_mis_tapped_school_is_not_offered_after_back(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    expect(page).to_have_url(school_sso(demo))
    assert "kb_school" not in broker_cookies(context, demo)
    page.go_back()
    expect_discovery(page, demo.broker)
    expect(page.locator("form.remembered")).to_have_count(0)
    # Once the school's login succeeds, the cross-site answer sets it (SameSite=Lax is set on a
    # top-level navigation's response).
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    pick_person(page, demo)
    expect(page.locator(NOTICE_BUTTON)).to_be_visible()
    assert broker_cookies(context, demo)["kb_school"]["value"] == SCHOOL_ID
