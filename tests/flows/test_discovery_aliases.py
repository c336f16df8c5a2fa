"""A school found by another name on the discovery page, without JavaScript: a search by an
alias lists the school under its real name and town with the alias that matched ("ook bekend
als Het Baken", in the page's language), a search by its name names no alias, the page without
a search carries the aliases for the script only on schools that have them, escaped, and the
worker's copy of the page follows a change of aliases."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.web.wiring import broker
from tests.flows.test_discovery_page_cache import _as_fresh, _page, _service_id
from tests.support.schools import demo_with, listed_school
from tests.unit.test_pages import Element, parse

PORT = 8712  # only in URLs: nothing listens
BAKEN = listed_school("30BL00", "Baken Lyceum", "Zwolle", ("Het Baken", "Locatie Zuid"))
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return demo_with(tmp_path_factory.mktemp("discovery-aliases"), PORT, (BAKEN,))


def _listed(text: str) -> dict[str, Element]:
    listing = parse(text).find_all("ul", id="school-list")
    return {li.attrs["data-code"]: li for li in listing[0].find_all("li")} if listing else {}


def _part(item: Element, part: str) -> str | None:
    found = item.find_all("span", **{"class": f"school__{part}"})
    return found[0].text if found else None


def _search(
    app: Flask, query: str, headers: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    _login, text, _body, response_headers = _page(
        app, _service_id(app), headers=headers or {}, query=query
    )
    return text, response_headers


def test_a_search_by_an_alias_shows_the_real_name_and_the_alias(app: Flask) -> None:
    text, headers = _search(app, "het baken")
    items = _listed(text)
    assert list(items) == [BAKEN.id]
    item = items[BAKEN.id]
    assert (_part(item, "name"), _part(item, "town")) == ("Baken Lyceum", "Zwolle")
    assert _part(item, "alias") == "ook bekend als Het Baken"
    # The button says all three, the alias last: a screen reader reads them apart.
    assert (
        '<span class="school__town">Zwolle</span> <span class="school__alias">'
        "ook bekend als Het Baken</span></button>"
    ) in text
    assert "login.30bl00.example" in headers["Content-Security-Policy"]
    # With the town, the code, in English.
    text, _headers = _search(app, "locatie zuid zwolle", ENGLISH)
    assert _part(_listed(text)[BAKEN.id], "alias") == "also known as Locatie Zuid"
    text, _headers = _search(app, "hetbaken 30bl00")
    assert _part(_listed(text)[BAKEN.id], "alias") == "ook bekend als Het Baken"


def test_a_search_the_name_or_town_answers_names_no_alias(app: Flask) -> None:
    for query in ("baken lyceum", "baken", "zwolle", "30bl00"):
        text, _headers = _search(app, query)
        item = _listed(text)[BAKEN.id]
        assert _part(item, "alias") is None, query
    # An alias and the name never mix in one search.
    text, _headers = _search(app, "lyceum zuid")
    assert BAKEN.id not in _listed(text)


def test_a_typo_in_an_alias_is_forgiven_when_nothing_matches(app: Flask) -> None:
    text, _headers = _search(app, "lokatie zuid")
    assert list(_listed(text)) == [BAKEN.id]
    assert _part(_listed(text)[BAKEN.id], "alias") == "ook bekend als Locatie Zuid"
    assert "hidden" not in parse(text).find("p", id="close-matches").attrs
    # Without script too, the count says the school comes close, not that it was found.
    assert parse(text).find("p", id="school-count").text == "1 school lijkt erop"


def test_the_page_without_a_search_carries_aliases_only_where_there_are_some(app: Flask) -> None:
    for headers, hint in (({}, "ook bekend als {alias}"), (ENGLISH, "also known as {alias}")):
        for _ in range(2):  # the second comes from the worker's copy
            _login, text = _as_fresh(app, _service_id(app), headers=headers)
            items = _listed(text)
            assert json.loads(items[BAKEN.id].attrs["data-aliases"]) == list(BAKEN.aliases)
            assert "data-aliases" not in items[DEMO_SCHOOL_ID].attrs
            assert [i for i in items.values() if "data-aliases" in i.attrs] == [items[BAKEN.id]]
            # No search, no alias shown; the script has the words for one.
            assert all(_part(i, "alias") is None for i in items.values())
            listing = parse(text).find("ul", id="school-list")
            assert listing.attrs["data-alias-hint"] == hint


def test_changed_aliases_reach_the_next_page_and_are_escaped(app: Flask) -> None:
    service_id = _service_id(app)
    hostile = "Het <b>\"Baken\"</b> & 'Co' $&"
    _as_fresh(app, service_id, headers={})  # the worker's copy, before the change
    with app.app_context():
        broker().registry.set_school_details(BAKEN.id, aliases=[hostile])
    try:
        _login, text = _as_fresh(app, service_id, headers={})
        assert json.loads(_listed(text)[BAKEN.id].attrs["data-aliases"]) == [hostile]
        assert "<b>" not in text and "'Co'" not in text
        text, _headers = _search(app, "baken co")
        assert _part(_listed(text)[BAKEN.id], "alias") == f"ook bekend als {hostile}"
        assert "<b>" not in text and "&lt;b&gt;" in text
        with app.app_context():
            broker().registry.set_school_details(BAKEN.id, aliases=[])
        _login, text = _as_fresh(app, service_id, headers={})
        assert "data-aliases" not in _listed(text)[BAKEN.id].attrs
        text, _headers = _search(app, "het baken")
        assert BAKEN.id not in _listed(text)
    finally:
        with app.app_context():
            broker().registry.set_school_details(BAKEN.id, aliases=BAKEN.aliases)
