"""A student clicks twice (headless Chromium, the demo on two sites): the broker's student forms
are sent once (static/submit-once.js), so the student lands where one click would have taken
them.

Two clicks only matter while the first answer is on its way: the browser then sends the form
again and shows the answer to the second request, which finds the login already taken. On
loopback that window is a few milliseconds, so these tests hold the first answer back (the
broker has answered; the browser has not received it yet), as a slow school network at 08:30
does, and click again meanwhile. Not with Playwright's `dblclick`: its two clicks come in one
go, and Chromium replaces the first planned submission before it leaves (one POST either way);
a hand's double click is two clicks with a pause between.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import APIResponse, BrowserContext, Page, Route, expect
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import PROJECT_ROOT, TIMEOUT_MS, Demo
from tests.browser.test_demo_login import (
    broker_cookies,
    choose_school_by_search,
    expect_received,
    full_login,
    pick_person,
    school_sso,
    start_login,
)
from tests.support.notice import NOTICE_BUTTON

SUBMIT_ONCE = PROJECT_ROOT / "broker" / "web" / "static" / "submit-once.js"
SCHOOL_BUTTON_NAME = re.compile(r"^Demo Lyceum")
# Between the two clicks: well within a double click, and long after the first request left.
BETWEEN_CLICKS_MS = 150


@dataclass
class HeldPosts:
    """POSTs to one address of the broker: each is sent on and answered by the broker at once,
    the first answer is kept from the browser until `release`; `sent` counts them all."""

    sent: list[str] = field(default_factory=list)
    held: list[tuple[Route, APIResponse]] = field(default_factory=list)

    def handle(self, route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        self.sent.append(route.request.url)
        if len(self.sent) > 1:
            route.continue_()
            return
        # Not followed: a redirect (the OIDC answer, the school's address) is the browser's.
        self.held.append((route, route.fetch(max_redirects=0)))

    def release(self) -> None:
        for route, answer in self.held:
            route.fulfill(response=answer)
        self.held.clear()


@pytest.fixture
def hold_posts(page: Page) -> Iterator[HeldPosts]:
    """Released at the end (before `page` closes: it depends on it) if a test failed first."""
    held = HeldPosts()
    yield held
    held.release()


def wait_until(page: Page, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not done():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(20)


def hold(page: Page, demo: Demo, path: str, held: HeldPosts) -> None:
    page.route(re.compile("^" + re.escape(demo.broker + path)), held.handle)


def click_twice(page: Page, selector: str, held: HeldPosts) -> None:
    """Two clicks at the button's place, like a student's hand: the second while the first
    request's answer is held back."""
    button = page.locator(selector).first
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    wait_until(page, lambda: len(held.sent) == 1)
    page.wait_for_timeout(BETWEEN_CLICKS_MS)
    page.mouse.click(x, y)
    page.wait_for_timeout(BETWEEN_CLICKS_MS)


def up_to_the_notice(page: Page, demo: Demo, publisher: str) -> None:
    start_login(page, publisher)
    choose_school_by_search(page, demo)
    pick_person(page, demo)
    expect(page.locator(NOTICE_BUTTON)).to_be_visible()
    expect(page.locator("form[data-submit-once]")).to_have_count(1)


# -- the notice's "Continue" ----------------------------------------------------------------------
def double_click_continue(page: Page, demo: Demo, publisher: str, held: HeldPosts) -> None:
    """At the notice for `publisher`, "Continue" clicked twice: one POST leaves."""
    up_to_the_notice(page, demo, publisher)
    hold(page, demo, "/notice/", held)
    click_twice(page, NOTICE_BUTTON, held)
    assert len(held.sent) == 1, held.sent
    held.release()


def test_a_double_click_on_continue_lands_signed_in_at_a_saml_platform(
    demo: Demo, page: Page, hold_posts: HeldPosts
) -> None:
    double_click_continue(page, demo, demo.leesplank, hold_posts)
    received = expect_received(page, demo.leesplank)
    assert received["attributes"], received
    assert len(hold_posts.sent) == 1, hold_posts.sent


def test_a_double_click_on_continue_lands_signed_in_at_an_oidc_platform(
    demo: Demo, page: Page, hold_posts: HeldPosts
) -> None:
    double_click_continue(page, demo, demo.oidc_publisher, hold_posts)
    expect(page).to_have_url(re.compile(re.escape(demo.oidc_publisher) + r"/callback\?"))
    expect(page.locator("#sub")).to_be_visible()
    received = page.request.get(demo.oidc_publisher + "/received.json").json()
    assert received["userinfo"]["given_name"] == "Sanne"
    assert len(hold_posts.sent) == 1, hold_posts.sent


def test_a_stopped_continue_can_be_pressed_again(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    """Stop (here the page's own `window.stop()`, as the browser's button does) leaves the
    notice on screen: its button works again, and that press signs the student in."""
    context.add_init_script(
        "document.addEventListener('submit', () => {"
        " if (document.querySelector('[data-notice-continue]') && !window.kbStopped) {"
        "  window.kbStopped = true; setTimeout(() => window.stop(), 200); } });"
    )
    up_to_the_notice(page, demo, demo.leesplank)
    posts: list[Route] = []

    def first_never_arrives(route: Route) -> None:
        posts.append(route)
        if len(posts) > 1:
            route.continue_()

    hold_route = re.compile("^" + re.escape(demo.broker + "/notice/"))
    page.route(hold_route, first_never_arrives)
    form = page.locator("form[data-submit-once]")
    page.locator(NOTICE_BUTTON).click()
    wait_until(page, lambda: len(posts) == 1)
    expect(form).not_to_have_attribute("aria-busy", "true")
    page.locator(NOTICE_BUTTON).click()
    expect_received(page, demo.leesplank)
    assert len(posts) == 2
    with suppress(PlaywrightError):  # the browser may have let go of it already
        posts[0].abort()


def test_a_press_of_the_button_while_the_answer_posts_itself_sends_nothing(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    """The broker's answer to the platform posts itself (autopost.js); the student presses its
    "Continue" button too, while that POST is on its way: the platform gets the answer once."""
    context.add_init_script(
        "document.addEventListener('DOMContentLoaded', () => {"
        " const form = document.querySelector('form[data-autosubmit]');"
        " if (form) setTimeout(() => form.querySelector('button').click(), 100); });"
    )
    to_platform = HeldPosts()
    page.route(demo.leesplank + "/acs", to_platform.handle)
    up_to_the_notice(page, demo, demo.leesplank)
    page.locator(NOTICE_BUTTON).click()
    wait_until(page, lambda: len(to_platform.sent) == 1)
    page.wait_for_timeout(3 * BETWEEN_CLICKS_MS)
    assert len(to_platform.sent) == 1, to_platform.sent
    to_platform.release()
    expect_received(page, demo.leesplank)
    assert len(to_platform.sent) == 1, to_platform.sent


# -- the other forms a student sends -------------------------------------------------------------
def test_a_double_click_on_a_school_sends_one_choice(
    demo: Demo, page: Page, hold_posts: HeldPosts
) -> None:
    start_login(page, demo.leesplank)
    page.locator("#school-search").fill("lyc")
    school = page.get_by_role("button", name=SCHOOL_BUTTON_NAME)
    expect(school).to_be_visible()
    hold(page, demo, "/discovery", hold_posts)
    click_twice(page, "#school-list button[name=school]", hold_posts)
    assert len(hold_posts.sent) == 1, hold_posts.sent
    hold_posts.release()
    expect(page).to_have_url(school_sso(demo))
    pick_person(page, demo)
    expect_received(page, demo.leesplank)


def test_a_double_click_on_log_out_everywhere_tells_the_platforms(
    demo: Demo, context: BrowserContext, page: Page, hold_posts: HeldPosts
) -> None:
    """The second request would find the session ended by the first and start a logout with no
    platform in it, and the browser would show that one: the platforms never hear of it."""
    full_login(page, demo, demo.leesplank)
    page.goto(demo.broker + "/my-data")
    page.get_by_role("link", name="Inloggen met je schoolaccount").click()
    # The data page's main button while the session stands: "Close and log out".
    button = page.locator('form[data-close-my-data="top"] button')
    expect(button).to_have_text("Sluiten en uitloggen")
    hold(page, demo, "/my-data/close", hold_posts)
    click_twice(page, 'form[data-close-my-data="top"] button', hold_posts)
    assert len(hold_posts.sent) == 1, hold_posts.sent
    hold_posts.release()
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + r"/logout/[^/]+/done$"))
    told = page.locator("[data-logout-service]")
    expect(told).to_have_count(1)
    expect(told).to_have_attribute("data-status", "confirmed")
    assert "__Host-kb_sso" not in broker_cookies(context, demo)


def test_the_guard_lets_go_when_the_page_returns_from_the_back_forward_cache(page: Page) -> None:
    """The script on its own: a form sent into a frame (the page stays) takes no second submit,
    until a `pageshow` of a page restored from the back-forward cache."""
    page.set_content(
        '<iframe name="out"></iframe>'
        '<form method="post" action="about:blank" target="out" data-submit-once>'
        '<button name="school" value="A">A</button></form>'
    )
    page.add_script_tag(path=str(SUBMIT_ONCE))
    page.evaluate(
        "window.sent = 0; document.addEventListener('submit', e => {"
        " if (!e.defaultPrevented) window.sent += 1; });"
    )
    page.locator("button").click()
    page.locator("button").click()
    assert page.evaluate("window.sent") == 1
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    assert page.locator("form").get_attribute("aria-busy") is None
    page.locator("button").click()
    assert page.evaluate("window.sent") == 2
