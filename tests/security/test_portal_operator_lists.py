"""The operator's lists of schools and services a page at a time, with a search
(web/portal/operator_lists.py): counts, next and previous links that keep the search, a page
past the end shows the last one, an address with a bad page number or an overlong search is
refused (400, the first page, a log line naming the field, never its value), in Dutch and in
English; a service's forms bring the operator back to the page they were on. Pages of two rows
here (PAGE_SIZE patched), against the demo's broker app with the Flask test client."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import School, Service
from broker.web.portal import operator_lists
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, csrf_token

SCHOOLS = "/portal/operator/schools"
SERVICES = "/portal/operator/services"
# Name order as the discovery page has it: the 7 schools, demo's two included.
ADDED = (
    ("10AA00", "Stedelijk Gymnasium", "Leiden", ()),
    ("10BB00", "Stedelijk Gymnasium", "Utrecht", ()),
    ("10CC00", "Baken Lyceum", "Zwolle", ("Het Baken",)),
    ("10DD00", "Christelijk Lyceum", "Delft", ()),
    ("10EE00", "Montessori College", "Nijmegen", ()),
)
# The counts' dash between the first and the last row shown.
TO = "\u2013"
IN_ORDER = ("10CC00", "10DD00", "99XX00", "99ZZ00", "10EE00", "10AA00", "10BB00")
# Waiting for approval, the publisher's: with the demo's four, six services.
NEW_SERVICES = ("atlasweb", "bosatlas")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-lists"), port=8746)
    registry = built.registry
    demo = registry.school(DEMO_SCHOOL_ID)
    assert demo is not None
    xml = registry.school_metadata()[demo.idp_entity_id]
    for school_id, name, town, aliases in ADDED:
        entity_id = f"https://idp.{school_id.lower()}.example/saml"
        school = School(school_id, name, entity_id, town=town, aliases=aliases)
        registry.add_school(school, xml.replace(demo.idp_entity_id, entity_id))
    leesplank = registry.any_service("leesplank")
    assert leesplank is not None
    sp_xml = registry.service_metadata()[leesplank.entity_id]
    for service_id in NEW_SERVICES:
        entity_id = f"https://{service_id}.example/saml"
        service = Service(
            service_id,
            service_id.title(),
            entity_id,
            None,
            approved=False,
            publisher_id=PUBLISHER_ID,
        )
        registry.add_service(service, sp_xml.replace(leesplank.entity_id, entity_id))
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    """Signed in once for the module: a TOTP code is accepted once only."""
    return site.sign_in("operator")


@pytest.fixture(autouse=True)
def two_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operator_lists, "PAGE_SIZE", 2)


def _get(client: FlaskClient, address: str) -> tuple[int, str]:
    response = client.get(address, base_url=HTTPS)
    return response.status_code, html.unescape(response.get_data(as_text=True))


def _listed(page: str, kind: str) -> list[str]:
    if kind == "schools":
        return re.findall(r"\((\w{6})\)(?: — [^—]+)? — https?://", page)
    return re.findall(r'<li class="card" id="service-([\w-]+)"', page)


def _count(page: str, kind: str) -> str:
    found = re.search(rf'<p class="count" id="{kind}-count">([^<]*)</p>', page)
    assert found, page
    return found.group(1)


def _links(page: str) -> dict[str, str]:
    return dict(re.findall(r'<a rel="(prev|next)" href="([^"]+)"', page))


def test_the_schools_come_a_page_at_a_time_in_name_order(operator: FlaskClient) -> None:
    seen: list[str] = []
    address = f"{SCHOOLS}?lang=en"
    for number in range(1, 5):
        status, page = _get(operator, address)
        assert status == 200
        first = 2 * number - 1
        last = min(first + 1, 7)
        assert _count(page, "school") == f"7 schools, showing {first}{TO}{last}."
        assert f"Page {number} of 4" in page
        links = _links(page)
        assert ("prev" in links) == (number > 1)
        seen += _listed(page, "schools")
        if number < 4:
            address = links["next"]
            assert address == f"{SCHOOLS}?page={number + 1}"
    assert seen == list(IN_ORDER)
    # Back again from the last page: the previous link.
    assert _links(page)["prev"] == f"{SCHOOLS}?page=3"
    # Each row shows what it showed before: name, town, id, other names, IdP, the change link.
    _status, page = _get(operator, f"{SCHOOLS}?lang=en")
    assert "Baken Lyceum, Zwolle (10CC00) — also known as Het Baken — https://idp.10cc00" in page
    assert 'href="/portal/operator/schools/10CC00">Change names or town' in page


@pytest.mark.parametrize(
    ("query", "found", "count"),
    [
        ("leiden", ["10AA00"], f"1 of 7 schools matches “leiden”, showing 1{TO}1."),
        ("10bb00", ["10BB00"], f"1 of 7 schools matches “10bb00”, showing 1{TO}1."),
        ("het baken", ["10CC00"], f"1 of 7 schools matches “het baken”, showing 1{TO}1."),
        ("lyceum", ["10CC00", "10DD00"], f"3 of 7 schools match “lyceum”, showing 1{TO}2."),
        (
            "gymnasyum",
            ["10AA00", "10BB00"],
            f"No school matches “gymnasyum” exactly; 2 of 7 come close, showing 1{TO}2.",
        ),
        ("atheneum", [], "No school of 7 matches “atheneum”."),
    ],
)
def test_a_search_finds_schools_as_the_discovery_page_does(
    operator: FlaskClient, query: str, found: list[str], count: str
) -> None:
    status, page = _get(operator, f"{SCHOOLS}?lang=en&q={query}")
    assert status == 200
    assert _listed(page, "schools") == found
    assert _count(page, "school") == count
    # The box shows the search; another page of it keeps it.
    assert f'name="q" value="{query}"' in page
    if query == "lyceum":
        assert _links(page)["next"] == f"{SCHOOLS}?page=2&q=lyceum"
        _status, second = _get(operator, f"{SCHOOLS}?page=2&q=lyceum&lang=en")
        assert _listed(second, "schools") == ["99XX00"]
        assert _count(second, "school") == f"3 of 7 schools match “lyceum”, showing 3{TO}3."


def test_a_page_past_the_end_shows_the_last_page(operator: FlaskClient) -> None:
    status, page = _get(operator, f"{SCHOOLS}?lang=en&page=99")
    assert status == 200
    assert _listed(page, "schools") == ["10BB00"]
    assert "Page 4 of 4" in page


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=0",
        "page=-1",
        "page=1.5",
        "page=%C2%B2",  # a superscript two: str.isdigit() says yes, int() says no
        "page=1234567890",
        "page=%00",
        f"q={'x' * 101}",
        "q=gym%00",
        "q=gym%E2%80%AEnasium",  # a right-to-left override
    ],
)
@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_bad_page_number_or_search_is_refused_with_the_first_page(
    operator: FlaskClient, caplog: pytest.LogCaptureFixture, query: str, lang: str
) -> None:
    for address, kind in ((SCHOOLS, "schools"), (SERVICES, "services")):
        with caplog.at_level(logging.WARNING, logger="broker.portal"):
            status, page = _get(operator, f"{address}?{query}&lang={lang}")
        assert status == 400
        listed = _listed(page, kind)
        assert len(listed) == 2 and (kind == "services" or listed == list(IN_ORDER[:2]))
        said = {
            "en": "This address asks for a page number or a search this list does not have",
            "nl": "Dit adres vraagt om een paginanummer of zoekopdracht",
        }[lang]
        assert said in page
        logged = [r.getMessage() for r in caplog.records if "bad_list_address" in r.getMessage()]
        field = query.split("=", maxsplit=1)[0]
        assert logged and f"list={kind} fields={field} " in logged[-1]
        assert "xxxx" not in logged[-1] and "abc" not in logged[-1] and "gym" not in logged[-1]
        caplog.clear()


@pytest.mark.parametrize(
    ("lang", "count", "page_of"),
    [
        ("en", f"7 schools, showing 1{TO}2.", "Page 1 of 4"),
        ("nl", f"7 scholen, 1{TO}2 getoond.", "Pagina 1 van 4"),
    ],
)
def test_the_counts_and_links_speak_the_pages_language(
    operator: FlaskClient, lang: str, count: str, page_of: str
) -> None:
    _status, page = _get(operator, f"{SCHOOLS}?lang={lang}")
    assert _count(page, "school") == count
    assert page_of in page
    assert {"en": "Next page", "nl": "Volgende pagina"}[lang] in page
    _status, page = _get(operator, f"{SCHOOLS}?lang={lang}&q=lyceum")
    assert (
        _count(page, "school")
        == {
            "en": f"3 of 7 schools match “lyceum”, showing 1{TO}2.",
            "nl": f"3 van 7 scholen passen bij „lyceum”, 1{TO}2 getoond.",
        }[lang]
    )


def test_the_services_come_a_page_at_a_time_and_are_found_by_publisher(
    operator: FlaskClient,
) -> None:
    status, page = _get(operator, f"{SERVICES}?lang=en")
    assert status == 200
    assert _count(page, "service") == f"6 services, showing 1{TO}2."
    assert "Page 1 of 3" in page
    seen = []
    for number in (1, 2, 3):
        _status, page = _get(operator, f"{SERVICES}?lang=en&page={number}")
        seen += _listed(page, "services")
    assert sorted(seen) == sorted(
        ["leesplank", "rekenroute", "toetsplein", "woordwijs", *NEW_SERVICES]
    )
    _status, page = _get(operator, f"{SERVICES}?lang=en&q={PUBLISHER_ID}")
    assert _listed(page, "services") == list(NEW_SERVICES)
    assert _count(page, "service") == f"2 of 6 services match “{PUBLISHER_ID}”, showing 1{TO}2."
    _status, page = _get(operator, f"{SERVICES}?lang=en&q=oidc publisher")
    assert _listed(page, "services") == ["woordwijs"]
    _status, page = _get(operator, f"{SERVICES}?lang=en&q=nergens")
    assert _count(page, "service") == "No service of 6 matches “nergens”."


def test_a_services_form_brings_the_operator_back_to_its_page(
    site: PortalSite, operator: FlaskClient
) -> None:
    address = f"{SERVICES}?q=atlas"
    _status, page = _get(operator, address)
    assert _listed(page, "services") == ["atlasweb", "bosatlas"]
    action = "/portal/operator/services/bosatlas/approve?q=atlas"
    assert f'action="{action}"' in page
    # An address no page makes: refused, nothing approved.
    token = csrf_token(page)
    refused = operator.post(
        "/portal/operator/services/bosatlas/approve?page=x",
        base_url=HTTPS,
        data={"csrf_token": token},
    )
    assert refused.status_code == 400
    assert not site.registry.any_service("bosatlas").approved  # type: ignore[union-attr]
    response = operator.post(action, base_url=HTTPS, data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{SERVICES}?q=atlas#service-bosatlas"
    assert site.registry.any_service("bosatlas").approved  # type: ignore[union-attr]
