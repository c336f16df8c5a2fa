"""The live school filter on other names (aliases) in headless Chromium: typing a school's
former or informal name shows the school under its real name and town with "ook bekend als …"
under them, a search by its name shows no such line, the line comes and goes as the student
types, and the browser's filter shows what the server shows, matches and lines alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Demo, demo_on_free_ports, expect_discovery
from tests.browser.test_demo_login import start_login
from tests.support.schools import listed_school, register

# id → (name, town, aliases)
SCHOOLS = {
    "40BL00": ("Baken Lyceum", "Zwolle", ("Het Baken", "Locatie Zuid")),
    "41HC00": ("Het College", "Zwolle", ()),
    "42CL00": ("Christelijke Scholengemeenschap Liudger", "Drachten", ("Liudger Raai",)),
    # The script writes an alias as text, whatever it holds ("$&" is no replacement pattern).
    "43NL00": ("Noorderlicht", "Leeuwarden", ('De <b>"Noord"</b> & $& school',)),
}
BAKEN = "40BL00"
# The filter must show what the server shows for each of these, the alias lines included.
QUERIES = [
    "het baken",
    "baken",
    "het",
    "zuid",
    "locatie zuid zwolle",
    "lokatie zuid",
    "raai",
    "liudger",
    "noord school",
    "b noord",
    "lyceum zuid",
    "40bl00 baken",
]


def _register(app: Flask) -> None:
    register(app, (listed_school(i, *fields) for i, fields in SCHOOLS.items()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with demo_on_free_ports(tmp_path_factory, _register) as running:
        yield running


def _visible(page: Page) -> list[tuple[str, str]]:
    """The schools shown, each with its alias line ("" for none)."""
    shown: list[list[str]] = page.locator("#school-list li:not([hidden]) button").evaluate_all(
        "buttons => buttons.map(b => [b.value,"
        " Array.from(b.querySelectorAll('.school__alias')).map(s => s.textContent).join('|')])"
    )
    return [(value, hint) for value, hint in shown]


def _discovery(page: Page, demo: Demo) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    return errors


def test_typing_a_former_name_finds_the_school_under_its_real_name(demo: Demo, page: Page) -> None:
    errors = _discovery(page, demo)
    expect(page.locator(".school__alias")).to_have_count(0)  # nothing typed, no line
    page.locator("#school-search").fill("het baken")
    expect(page.locator("#school-count")).to_have_text("1 school gevonden")
    button = page.get_by_role(
        "button", name="Baken Lyceum Zwolle ook bekend als Het Baken", exact=True
    )
    expect(button).to_be_visible()
    assert _visible(page) == [(BAKEN, "ook bekend als Het Baken")]
    # Under the town, in smaller type.
    town, alias = button.locator(".school__town"), button.locator(".school__alias")
    town_box, alias_box = town.bounding_box(), alias.bounding_box()
    assert town_box is not None and alias_box is not None
    assert alias_box["y"] >= town_box["y"] + town_box["height"] - 1
    size = alias.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    name_size = button.locator(".school__name").evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert size < name_size
    # Choosing it chooses the school itself.
    assert button.get_attribute("value") == BAKEN
    assert not errors


def test_the_line_comes_and_goes_as_the_student_types(demo: Demo, page: Page) -> None:
    errors = _discovery(page, demo)
    search = page.locator("#school-search")
    search.fill("locatie zuid")
    assert _visible(page) == [(BAKEN, "ook bekend als Locatie Zuid")]
    search.fill("baken")  # the name holds it: no line
    assert _visible(page) == [(BAKEN, "")]
    search.fill("het baken")
    assert _visible(page) == [(BAKEN, "ook bekend als Het Baken")]
    search.fill("lokatie zuid")  # a typo, forgiven when nothing matches
    expect(page.locator("#close-matches")).to_be_visible()
    assert _visible(page) == [(BAKEN, "ook bekend als Locatie Zuid")]
    search.fill("")
    expect(page.locator(".school__alias")).to_have_count(0)
    # Coming and going leaves the button as the server wrote it: no stray spaces or lines.
    search.fill("het baken")
    label = page.locator(f"#school-list button[value='{BAKEN}']").evaluate("b => b.innerHTML")
    assert label.endswith(
        '<span class="school__town">Zwolle</span> <span class="school__alias">'
        "ook bekend als Het Baken</span>"
    ), label
    assert not errors


def test_the_filter_shows_what_the_server_finds(demo: Demo, page: Page) -> None:
    errors = _discovery(page, demo)
    login = page.locator("form.search input[name=login]").get_attribute("value")
    server = page.context.new_page()
    found = {}
    for query in QUERIES:
        page.locator("#school-search").fill(query)
        found[query] = _visible(page)
        server.goto(f"{demo.broker}/discovery?{urlencode({'login': login, 'q': query})}")
        assert found[query] == _visible(server), query
    assert found["noord school"] == [("43NL00", 'ook bekend als De <b>"Noord"</b> & $& school')]
    assert found["lyceum zuid"] == []  # the name and an alias never mix
    assert not errors


def test_an_english_page_says_also_known_as(
    demo: Demo, new_context: Callable[..., BrowserContext]
) -> None:
    page = new_context("en-GB").new_page()
    errors = _discovery(page, demo)
    page.locator("#school-search").fill("raai")
    assert _visible(page) == [("42CL00", "also known as Liudger Raai")]
    assert not errors
