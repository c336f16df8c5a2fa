"""An OIDC platform asking for `response_mode=form_post` (as ASP.NET Core's handler does) in
headless Chromium: the broker's auto-post page carries the code from the broker (127.0.0.1) to
the platform (localhost), a cross-site POST. What only a real browser shows: the page's
Content-Security-Policy lets that form leave, the platform's own SameSite=None cookie (its
business) survives the POST, and without JavaScript the page's button does the same.

Without Chromium this module is skipped (failed on CI) by the folder's conftest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, expect
from werkzeug.serving import BaseWSGIServer

from broker.core.model import ClientAuthMethod
from broker.demo.publisher_rp import PublisherRpSettings, create_publisher_rp_app
from tests.browser.conftest import Demo, demo_on_free_ports, register_oidc_client
from tests.browser.test_demo_login import HEX64, choose_school_by_search, pick_person
from tests.support.live import free_ports, serve_app
from tests.support.notice import continue_past_notice

CLIENT_ID = "formpost-leesmap"
NAME = "Leesmap (form_post)"


@dataclass
class Setup:
    demo: Demo
    platform: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    platform = f"http://localhost:{free_ports(1)}"
    secrets: list[str] = []

    def register(app: Flask) -> None:
        method = ClientAuthMethod.SECRET_BASIC
        secret = register_oidc_client(app, CLIENT_ID, NAME, f"{platform}/callback", method)
        assert secret is not None
        secrets.append(secret)

    with demo_on_free_ports(tmp_path_factory, register) as demo:
        settings = PublisherRpSettings(
            platform,
            NAME,
            demo.broker,
            CLIENT_ID,
            secrets[0],
            scope="openid profile",
            response_mode="form_post",
        )
        server: BaseWSGIServer = serve_app(platform, create_publisher_rp_app(settings))
        try:
            yield Setup(demo, platform)
        finally:
            server.shutdown()
            server.server_close()


def test_the_code_is_posted_cross_site_and_the_platform_logs_in(setup: Setup, page: Page) -> None:
    demo = setup.demo
    page.goto(setup.platform + "/login")
    choose_school_by_search(page, demo)
    pick_person(page, demo)
    continue_past_notice(page, setup.platform + "/callback")
    # A POST: the code in no address, the platform's state cookie carried along.
    expect(page).to_have_url(setup.platform + "/callback")
    expect(page.locator("#sub")).to_be_visible()
    received = page.request.get(setup.platform + "/received.json").json()
    assert HEX64.fullmatch(received["sub"]) and received["userinfo"]["given_name"] == "Sanne"

    # From the SSO session: the auto-post page again, straight on to the platform.
    page.goto(setup.platform + "/login")
    expect(page).to_have_url(setup.platform + "/callback")
    expect(page.locator("#sub")).to_have_text(received["sub"])


def test_without_javascript_the_button_posts_the_answer(
    setup: Setup, new_context: Callable[..., BrowserContext]
) -> None:
    """prompt=none without a session: login_required, posted by the student's press of the
    button (in their language) when the page cannot send itself."""
    page = new_context(java_script_enabled=False).new_page()
    page.goto(setup.platform + "/login?prompt=none")
    expect(page).to_have_url(re.compile("^" + re.escape(setup.demo.broker) + "/oidc/authorize"))
    button = page.get_by_role("button", name=f"Verder naar {NAME}")
    expect(button).to_be_visible()
    button.click()
    expect(page).to_have_url(setup.platform + "/callback")
    expect(page.locator("#status-code")).to_have_text("login_required")
