"""The live school filter on name + town in headless Chromium: schools of one name told apart by
the town under each name, "gymnasium leiden" showing the school in Leiden and not its namesake
in Utrecht, a typo in a town forgiven, "y" for "ij", the browser's filter finding what the server
finds, and the search still there after Back from a choice that failed."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from tests.browser.conftest import Demo, demo_on_free_ports, expect_discovery
from tests.browser.test_demo_login import start_login
from tests.support.schools import listed_school, register

GYMNASIUM = "Stedelijk Gymnasium"
NAMESAKES = {"20LE00": "Leiden", "21UT00": "Utrecht", "22ZW00": "Zwolle"}
# The filter must show what the server shows for each of these (school_search.py's rule).
QUERIES = [
    "gymnasium leiden",
    "leiden",
    "utrecht",
    "UTRECHT lyceum",
    "st gymnasium",
    "gymnasium leidn",
    "utrcht",
    "20le00",
    "gymnasium amsterdam",
    "stedelyk",
    "stedelyk utrecht",
    "stedelijk",
]


def _register_namesakes(app: Flask) -> None:
    register(app, (listed_school(i, GYMNASIUM, town) for i, town in NAMESAKES.items()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with demo_on_free_ports(tmp_path_factory, _register_namesakes) as running:
        yield running


def _visible_schools(page: Page) -> list[str]:
    names: list[str] = page.locator("#school-list li:not([hidden]) button").evaluate_all(
        "buttons => buttons.map(b => b.value)"
    )
    return names


def _discovery(page: Page, demo: Demo) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)


def test_namesakes_show_their_towns_under_the_name(demo: Demo, page: Page) -> None:
    _discovery(page, demo)
    leiden = page.get_by_role("button", name=f"{GYMNASIUM} Leiden", exact=True)
    expect(leiden).to_be_visible()
    name, town = leiden.locator(".school__name"), leiden.locator(".school__town")
    expect(town).to_have_text("Leiden")
    name_box, town_box = name.bounding_box(), town.bounding_box()
    assert name_box is not None and town_box is not None
    # Under the name, in smaller type.
    assert town_box["y"] >= name_box["y"] + name_box["height"] - 1
    size = town.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size < name.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    expect(
        page.get_by_role("button", name=f"Demo Lyceum {DEMO_SCHOOL_TOWN}", exact=True)
    ).to_be_visible()


def test_gymnasium_leiden_shows_the_one_in_leiden(demo: Demo, page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _discovery(page, demo)
    page.locator("#school-search").fill("gymnasium leiden")
    expect(page.get_by_role("button", name=f"{GYMNASIUM} Leiden", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name=f"{GYMNASIUM} Utrecht", exact=True)).to_be_hidden()
    expect(page.locator("#school-count")).to_have_text("1 school gevonden")
    expect(page.locator("#close-matches")).to_be_hidden()
    assert _visible_schools(page) == ["20LE00"]
    # A typo in the town, when nothing matches as typed: the close-match note says so.
    page.locator("#school-search").fill("gymnasium leidn")
    expect(page.locator("#close-matches")).to_be_visible()
    assert _visible_schools(page) == ["20LE00"]
    page.locator("#school-search").fill("utrecht")
    expect(page.locator("#school-count")).to_have_text("2 scholen gevonden")
    assert sorted(_visible_schools(page)) == sorted([DEMO_SCHOOL_ID, "21UT00"])
    assert not errors


def test_the_filter_shows_what_the_server_finds(demo: Demo, page: Page) -> None:
    _discovery(page, demo)
    login = page.locator("form.search input[name=login]").get_attribute("value")
    server = page.context.new_page()
    for query in QUERIES:
        page.locator("#school-search").fill(query)
        in_browser = _visible_schools(page)
        server.goto(f"{demo.broker}/discovery?{urlencode({'login': login, 'q': query})}")
        from_server = server.locator("#school-list button").evaluate_all(
            "buttons => buttons.map(b => b.value)"
        )
        assert in_browser == from_server, query


def test_y_finds_ij_in_the_browser_as_on_the_server(demo: Demo, page: Page) -> None:
    _discovery(page, demo)
    page.locator("#school-search").fill("stedelyk leiden")
    expect(page.get_by_role("button", name=f"{GYMNASIUM} Leiden", exact=True)).to_be_visible()
    expect(page.locator("#close-matches")).to_be_hidden()
    assert _visible_schools(page) == ["20LE00"]


def test_back_after_a_failed_choice_keeps_the_search(demo: Demo, page: Page) -> None:
    _discovery(page, demo)
    page.locator("#school-search").fill("gymnasium leiden")
    expect(page.locator("#school-count")).to_have_text("1 school gevonden")
    # Its sign-in service does not exist: the broker says so, answering the choice's POST.
    page.get_by_role("button", name=f"{GYMNASIUM} Leiden", exact=True).click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.go_back()
    # The page at the sign-in address, fetched again (no-store): the search is back, applied.
    expect(page.locator("#school-search")).to_have_value("gymnasium leiden")
    expect(page.get_by_role("button", name=f"{GYMNASIUM} Leiden", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name=f"{GYMNASIUM} Utrecht", exact=True)).to_be_hidden()
    expect(page.locator("#school-count")).to_have_text("1 school gevonden")
    assert _visible_schools(page) == ["20LE00"]
