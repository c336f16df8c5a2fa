"""The discovery page of a large federation in headless Chromium: every search is the server's
(the page reloads), so the page's answer to a search puts the keyboard's focus on the count of
schools found, which a screen reader then reads, with the schools one Tab further."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from broker.core.school_search import LIST_ALL_UP_TO, SHOWN_AT_MOST
from tests.browser.conftest import Demo, demo_on_free_ports, expect_discovery
from tests.browser.test_demo_login import start_login
from tests.support.schools import listed_school, register

EXTRA = LIST_ALL_UP_TO + 50


def _register_many(app: Flask) -> None:
    register(app, (listed_school(f"X{n:05d}", f"Basisschool De Linde {n}") for n in range(EXTRA)))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with demo_on_free_ports(tmp_path_factory, _register_many) as running:
        yield running


def _search(page: Page, typed: str) -> None:
    """The search form sent with Enter: in a large federation the server answers (a new page)."""
    search = page.locator("#school-search")
    search.fill(typed)
    search.press("Enter")


def test_a_search_lands_the_focus_on_the_count_then_the_schools(demo: Demo, page: Page) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    _search(page, "linde 12")
    count = page.locator("#school-count")
    expect(count).to_have_text("13 scholen gevonden")  # 12, 112, 120 … 129, 212
    expect(count).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#school-list button").first).to_be_focused()

    # Cut short: the count says so, and has the focus too.
    _search(page, "linde")
    expect(count).to_contain_text(f"{SHOWN_AT_MOST} van de {EXTRA} scholen getoond")
    expect(count).to_be_focused()

    # Nothing found: the count says that, and the advice follows it.
    _search(page, "linde zzz")
    expect(count).to_have_text("Geen scholen gevonden")
    expect(count).to_be_focused()
    expect(page.locator("#no-schools")).to_be_visible()


def test_the_language_switch_keeps_the_focus_where_it_was(demo: Demo, page: Page) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    _search(page, "linde 12")
    expect(page.locator("#school-count")).to_be_focused()
    page.get_by_role("link", name="English").click()
    expect(page.locator("#school-count")).to_have_text("13 schools found")
    expect(page.locator("#school-count")).not_to_be_focused()
