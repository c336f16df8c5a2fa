"""Schools of one name told apart by their town on the discovery page: the town under each
name (and on the remembered school's button), a search on name + town that finds the school
in Leiden and not its namesake in Utrecht, a policy that names only what is shown, escaping,
and the worker's copy of the page following a town's change."""

from __future__ import annotations

import pytest
from flask import Flask

from broker.cli.demo import DEMO_OIDC_SCHOOL_TOWN, DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.web.browser import SCHOOL_COOKIE
from broker.web.wiring import broker
from tests.flows.test_discovery_page_cache import _as_fresh, _page, _service_id
from tests.support.schools import demo_with, listed_school
from tests.unit.test_pages import Element, parse

PORT = 8710  # only in URLs: nothing listens


LEIDEN = listed_school("20LE00", "Stedelijk Gymnasium", "Leiden")
UTRECHT = listed_school("21UT00", "Stedelijk Gymnasium", "Utrecht")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return demo_with(tmp_path_factory.mktemp("discovery-towns"), PORT, (LEIDEN, UTRECHT))


def _listed(text: str) -> dict[str, Element]:
    """The listed schools' items by school id."""
    listing = parse(text).find_all("ul", id="school-list")
    return {li.attrs["data-code"]: li for li in listing[0].find_all("li")} if listing else {}


def _town_of(item: Element) -> str | None:
    towns = item.find_all("span", **{"class": "school__town"})
    return towns[0].text if towns else None


def test_every_school_shows_its_town_under_its_name(app: Flask) -> None:
    _login, text = _as_fresh(app, _service_id(app), headers={})
    items = _listed(text)
    assert _town_of(items[DEMO_SCHOOL_ID]) == DEMO_SCHOOL_TOWN
    assert DEMO_OIDC_SCHOOL_TOWN in {_town_of(i) for i in items.values()}
    # Namesakes side by side, in town order, each with its own town.
    gymnasia = [i for i in items.values() if "Stedelijk Gymnasium" in i.text]
    assert [_town_of(i) for i in gymnasia] == ["Leiden", "Utrecht"]
    name = items[LEIDEN.id].find("span", **{"class": "school__name"})
    assert name.text == "Stedelijk Gymnasium"


def test_a_search_on_name_and_town_finds_that_school_only(app: Flask) -> None:
    _login, text, _body, headers = _page(
        app, _service_id(app), headers={}, query="gymnasium leiden"
    )
    assert list(_listed(text)) == [LEIDEN.id]
    # The policy names the sign-in origin of the school shown, not of its namesake.
    assert "login.20le00.example" in headers["Content-Security-Policy"]
    assert "login.21ut00.example" not in headers["Content-Security-Policy"]
    _login, text, _body, _headers = _page(app, _service_id(app), headers={}, query="Utrecht")
    assert set(_listed(text)) == {DEMO_SCHOOL_ID, UTRECHT.id}
    _login, text, _body, _headers = _page(app, _service_id(app), headers={}, query="leidn gymn")
    assert list(_listed(text)) == [LEIDEN.id]  # one typo in the town, when nothing matches


def test_the_remembered_school_shows_its_town(app: Flask) -> None:
    cookie = {"Cookie": f"{SCHOOL_COOKIE}={LEIDEN.id}"}
    _login, text = _as_fresh(app, _service_id(app), headers=cookie)
    button = parse(text).find("form", **{"class": "remembered"}).find("button")
    assert button.attrs["value"] == LEIDEN.id
    assert button.text.endswith("Stedelijk Gymnasium Leiden")
    assert _town_of(button) == "Leiden"


def test_a_changed_town_reaches_the_next_page_and_is_escaped(app: Flask) -> None:
    service_id = _service_id(app)
    for _ in range(2):  # the second comes from the worker's copy
        _login, text = _as_fresh(app, service_id, headers={})
        assert _town_of(_listed(text)[UTRECHT.id]) == "Utrecht"
    with app.app_context():
        broker().registry.set_school_town(UTRECHT.id, 'Utrecht <b>"&"</b>')
    try:
        _login, text = _as_fresh(app, service_id, headers={})
        item = _listed(text)[UTRECHT.id]
        assert _town_of(item) == 'Utrecht <b>"&"</b>'
        assert "<b>" not in text and "&lt;b&gt;" in text
        with app.app_context():
            broker().registry.set_school_town(UTRECHT.id, "")
        _login, text = _as_fresh(app, service_id, headers={})
        item = _listed(text)[UTRECHT.id]
        assert _town_of(item) is None
    finally:
        with app.app_context():
            broker().registry.set_school_town(UTRECHT.id, UTRECHT.town)
