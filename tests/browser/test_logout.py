"""Logout in headless Chromium: the propagation page's iframes, its script and the cookies.

A student logged in at two publishers (one SSO session) logs out at one of them. What only a
real browser shows: the iframe carries the broker's LogoutRequest to the other publisher (on
another site, within the page's CSP) and its answer back, the page's script notices the answer
and moves on without a click, the school's round trip keeps the broker's cookie, and the final
page carries the signed LogoutResponse back to the first publisher by itself (a link for the
Redirect binding, a form for POST), where it is accepted. When a platform does not answer (its
logout page refuses to be framed) the final page stays, says what to do, and keeps its button.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Frame, Page, Request, expect

from broker.core.model import Service
from broker.demo.publisher_sp import create_publisher_sp_app, publisher_sp_metadata
from broker.web import logout_routes
from tests.browser.conftest import TIMEOUT_MS, Demo, demo_on_free_ports, expect_discovery
from tests.browser.test_demo_login import (
    Screenshot,
    broker_cookies,
    expect_received,
    full_login,
    start_login,
)
from tests.support.live import free_ports, publisher_settings, served

DONE = r"/logout/[^/]+/done$"
# The broker's wait for answers (login.logout_wait_seconds, 5 s in the demo) and the school's
# round trip after it: how long a run with a platform that never answers takes to end.
RUN_WITH_A_SILENT_PLATFORM_MS = 15_000
# Between a hand's two clicks.
BETWEEN_CLICKS_MS = 150


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, Flask]]:
    """The demo, with its broker's app at hand (a test registers one more platform)."""
    apps: list[Flask] = []
    with demo_on_free_ports(tmp_path_factory, apps.append) as demo:
        yield demo, apps[0]


@pytest.fixture(scope="module")
def demo(running: tuple[Demo, Flask]) -> Demo:
    return running[0]


def _extra_publisher(
    running: tuple[Demo, Flask], keys: Path, service_id: str, slo: str
) -> Iterator[str]:
    """One more demo SAML platform, `slo` its way of taking a logout (demo/publisher_slo.py),
    registered in the running broker and served on localhost (another site, as the others)."""
    broker = running[1].extensions["ketenbroker"]
    base_url = f"http://localhost:{free_ports(1)}"
    settings = publisher_settings(
        base_url, keys, service_id, broker.saml_entities.idp_metadata(), slo
    )
    broker.registry.add_service(
        Service(service_id, settings.name, settings.entity_id, "leermiddelen"),
        publisher_sp_metadata(settings),
    )
    with served(base_url, create_publisher_sp_app(settings)):
        yield base_url


@pytest.fixture(scope="module")
def post_only(
    running: tuple[Demo, Flask], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A platform whose metadata names only an HTTP-POST SingleLogoutService: the broker's
    LogoutResponse to it is a form, which the final page must submit by itself."""
    yield from _extra_publisher(running, tmp_path_factory.mktemp("keys"), "postbus", "post")


@pytest.fixture(scope="module")
def unframeable(
    running: tuple[Demo, Flask], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A platform like one behind Spring Security's defaults: it takes the LogoutRequest, but
    its answer page says X-Frame-Options: DENY, so in the broker's iframe the browser refuses
    it and the answer never comes back (docs/publishers.md)."""
    yield from _extra_publisher(running, tmp_path_factory.mktemp("keys"), "lentelab", "unframeable")


def record_pages(page: Page) -> list[str]:
    """The addresses the page's main frame shows, in order (to see the pages passed through)."""
    shown: list[str] = []

    def note(frame: Frame) -> None:
        if frame == page.main_frame:
            shown.append(frame.url)

    page.on("framenavigated", note)
    return shown


def test_logout_from_a_publisher_reaches_the_other_one_and_returns_without_a_click(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    full_login(page, demo, demo.leesplank)
    start_login(page, demo.rekenroute)  # the SSO session answers: no school this time
    rekenroute = expect_received(page, demo.rekenroute)
    assert "__Host-kb_sso" in broker_cookies(context, demo)
    school_told = len(page.request.get(demo.school + "/logouts.json").json())
    shown = record_pages(page)

    page.goto(demo.leesplank + "/logout")

    # Propagation page, the school, the final page, and back at Leesplank: all by script, no
    # click. Leesplank accepts the broker's signed LogoutResponse: Success, so every other
    # platform and the school confirmed (PartialLogout otherwise).
    expect(page.locator("[data-logout-status]")).to_have_attribute("data-logout-status", "success")
    expect(page).to_have_url(re.compile("^" + re.escape(demo.leesplank + "/slo?")))
    assert any(re.search(DONE, url) for url in shown), shown
    assert "__Host-kb_sso" not in broker_cookies(context, demo)

    # The other publisher heard it (by the NameID it was given) and answered from the iframe;
    # the school was told.
    heard = page.request.get(demo.rekenroute + "/logouts.json").json()
    assert [e for e in heard if e["kind"] == "request"][-1]["name_id"] == rekenroute["name_id"][
        "value"
    ]
    assert len(page.request.get(demo.school + "/logouts.json").json()) == school_told + 1

    # Back from Leesplank: the final page again, and it stays (the answer went already; sending
    # it again would only bounce the student forward).
    answers = len(page.request.get(demo.leesplank + "/logouts.json").json())
    page.go_back()
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + DONE))
    expect(page.locator("[data-logout-answer]")).to_be_visible()
    page.wait_for_timeout(1_000)
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + DONE))
    assert len(page.request.get(demo.leesplank + "/logouts.json").json()) == answers

    # A new login goes to the school again.
    start_login(page, demo.rekenroute)
    expect_discovery(page, demo.broker)


def test_a_post_binding_answer_is_submitted_without_a_click(
    demo: Demo, page: Page, post_only: str
) -> None:
    full_login(page, demo, post_only)
    posted: list[str] = []

    def note(request: Request) -> None:
        if request.is_navigation_request() and request.url.startswith(post_only + "/slo"):
            posted.append(request.method)

    page.on("request", note)

    page.goto(post_only + "/logout")

    expect(page.locator("[data-logout-status]")).to_have_attribute("data-logout-status", "success")
    expect(page).to_have_url(post_only + "/slo")
    assert posted == ["POST"]  # the final page's form, sent by its script, once


def test_without_javascript_the_final_page_keeps_its_button(
    demo: Demo, browser: Browser, context: BrowserContext, page: Page
) -> None:
    full_login(page, demo, demo.leesplank)  # the login's pages need their scripts
    # The same browser state, scripts off: the logout itself needs none (redirects, the
    # propagation page's meta refresh), and its final page waits for the button.
    quiet = browser.new_context(
        locale="nl-NL", java_script_enabled=False, storage_state=context.storage_state()
    )
    try:
        quiet.set_default_timeout(TIMEOUT_MS)
        still = quiet.new_page()
        still.goto(demo.leesplank + "/logout")
        expect(still).to_have_url(re.compile(re.escape(demo.broker) + DONE))
        expect(still.get_by_role("heading", level=1)).to_have_text("Je bent uitgelogd")
        still.wait_for_timeout(500)
        expect(still).to_have_url(re.compile(re.escape(demo.broker) + DONE))
        still.get_by_text(re.compile(r"^Terug naar Leesplank")).click()
        expect(still.locator("[data-logout-status]")).to_have_attribute(
            "data-logout-status", "success"
        )
    finally:
        quiet.close()


def test_a_platform_that_does_not_answer_keeps_the_final_page_with_its_button(
    demo: Demo, page: Page, unframeable: str, screenshot: Screenshot
) -> None:
    full_login(page, demo, demo.leesplank)
    start_login(page, unframeable)
    expect_received(page, unframeable)

    page.goto(demo.leesplank + "/logout")

    expect(page).to_have_url(
        re.compile(re.escape(demo.broker) + DONE), timeout=RUN_WITH_A_SILENT_PLATFORM_MS
    )
    # The platform got the LogoutRequest; its answer was refused in the frame.
    heard = page.request.get(unframeable + "/logouts.json").json()
    assert [e["kind"] for e in heard] == ["request"]
    other = page.locator("[data-logout-service]")
    expect(other).to_have_attribute("data-status", "timed_out")
    expect(other).to_contain_text("misschien ben je daar nog ingelogd")
    warning = page.locator("[data-logout-warning]")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Sluit je browser helemaal af")
    # The page stays: the student reads it, and the button is theirs to press.
    page.wait_for_timeout(1_000)
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + DONE))
    screenshot(page, "logout-not-everywhere")

    page.get_by_text(re.compile(r"^Terug naar Leesplank")).click()
    expect(page.locator("[data-logout-status]")).to_have_attribute("data-logout-status", "partial")


def test_the_students_own_button_ends_on_the_final_page(demo: Demo, page: Page) -> None:
    """Nobody to answer (the student started it on the my-data page): the page stays, as
    before, and only says how it went."""
    full_login(page, demo, demo.leesplank)
    page.goto(demo.broker + "/my-data/sign-in")
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + "/my-data/view/"))

    # The data page's main button while the SSO session stands: it closes the data and logs out.
    page.get_by_role("button", name="Sluiten en uitloggen").first.click()

    expect(page).to_have_url(re.compile(re.escape(demo.broker) + DONE))
    expect(page.locator("[data-logout-service]")).to_have_attribute("data-status", "confirmed")
    expect(page.locator("[data-school-status]")).to_have_attribute(
        "data-school-status", "confirmed"
    )
    page.wait_for_timeout(1_000)
    expect(page).to_have_url(re.compile(re.escape(demo.broker) + DONE))
    expect(page.locator("[data-logout-answer]")).to_have_count(0)
    expect(page.locator("[data-logout-warning]")).to_have_count(0)


class FirstCallWaits:
    """A broker step whose first call waits until released, as a slow school network (the
    answer to the first press) or a slow back-channel platform (the run's first page) would
    hold it; the later calls do not. Held in the broker, not with Playwright's routing: a
    routed request's answer fetched by Playwright sets its cookies in the browser at once, and
    a request that follows a redirect is not routed at all."""

    def __init__(self, step: Callable[..., Any]) -> None:
        self.step = step
        self.entered = threading.Event()
        self.go_on = threading.Event()

    def __call__(self, *args: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            self.go_on.wait(TIMEOUT_MS / 1000)
        return self.step(*args)


def wait_until(page: Page, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not done():
        assert time.monotonic() < deadline, what
        page.wait_for_timeout(20)


@pytest.mark.parametrize("slow", ["the first answer", "the run's first page"])
def test_without_javascript_a_double_click_on_log_out_everywhere_tells_the_platforms(
    running: tuple[Demo, Flask],
    browser: Browser,
    context: BrowserContext,
    page: Page,
    monkeypatch: pytest.MonkeyPatch,
    slow: str,
) -> None:
    """No submit-once.js: the second click sends the form again, while the first answer is on
    its way (the SSO cookie still set) or the run's first page is (the first answer cleared
    the cookie). The second request finds the session ended by the first and goes on to the
    first run, whose page tells the platforms; the browser ends on a final page listing them."""
    demo = running[0]
    full_login(page, demo, demo.leesplank)  # the login's pages need their scripts
    start_login(page, demo.rekenroute)
    expect_received(page, demo.rekenroute)
    peers = (demo.leesplank, demo.rekenroute, demo.school)
    heard = {url: len(page.request.get(url + "/logouts.json").json()) for url in peers}
    quiet = browser.new_context(
        locale="nl-NL", java_script_enabled=False, storage_state=context.storage_state()
    )
    logout = running[1].extensions["ketenbroker"].logout
    if slow == "the first answer":
        # Held after the run was filed and the session ended, before the answer leaves.
        held = FirstCallWaits(logout_routes.to_run)
        monkeypatch.setattr(logout_routes, "to_run", held)
    else:
        held = FirstCallWaits(logout.run_back_channels)
        monkeypatch.setattr(logout, "run_back_channels", held)
    try:
        quiet.set_default_timeout(TIMEOUT_MS)
        still = quiet.new_page()
        still.goto(demo.broker + "/my-data/sign-in")
        expect(still).to_have_url(re.compile(re.escape(demo.broker) + "/my-data/view/"))
        posts: list[Request] = []
        still.on("request", lambda r: posts.append(r) if r.method == "POST" else None)

        # A hand's two clicks at the button's place (the mouse: a locator's click would wait
        # for the first navigation, which is on its way).
        button = still.get_by_role("button", name="Sluiten en uitloggen").first
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        still.mouse.click(x, y)
        wait_until(still, held.entered.is_set, "the first request never came")
        still.wait_for_timeout(BETWEEN_CLICKS_MS)
        still.mouse.click(x, y)
        wait_until(still, lambda: len(posts) == 2, "the second click sent nothing")
        held.go_on.set()

        expect(still).to_have_url(
            re.compile(re.escape(demo.broker) + DONE), timeout=RUN_WITH_A_SILENT_PLATFORM_MS
        )
        # The form was sent twice; the second time with the SSO cookie still, or without it.
        assert [p.url for p in posts] == [demo.broker + "/my-data/close"] * 2
        cookies_sent = posts[1].all_headers().get("cookie", "")
        assert ("__Host-kb_sso=" in cookies_sent) is (slow == "the first answer")
        told = still.locator("[data-logout-service]")
        expect(told).to_have_count(2)
        for platform in ("Leesplank", "Rekenroute"):
            expect(told.filter(has_text=platform)).to_have_attribute("data-status", "confirmed")
        expect(still.locator("[data-school-status]")).to_have_attribute(
            "data-school-status", "confirmed"
        )
        # Each platform and the school heard of it once.
        for url, before in heard.items():
            assert len(still.request.get(url + "/logouts.json").json()) == before + 1, url
        assert "__Host-kb_sso" not in {c["name"] for c in quiet.cookies(demo.broker)}
    finally:
        held.go_on.set()
        quiet.close()
