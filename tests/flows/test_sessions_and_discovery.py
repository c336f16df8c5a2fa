"""The broker's SSO session, and a publisher that names the school (Scoping/IDPList)."""

from __future__ import annotations

from tests.support.client import Browser
from tests.support.live import SSO_COOKIE, LiveDemo


def test_second_service_in_one_browser_is_answered_from_the_sso_session(demo: LiveDemo) -> None:
    browser = Browser()
    first = demo.login(browser, "leesplank", "daan.devries")
    assert first.final.status == 200, first.final.text
    assert SSO_COOKIE in browser.cookies(demo.broker_url)
    at_leesplank = demo.received(browser, "leesplank")

    second = demo.login(browser, "rekenroute", "daan.devries")
    rekenroute = demo.publishers["rekenroute"]
    assert second.final.status == 200, second.final.text
    assert second.final.url == rekenroute.acs_url
    # Straight from the broker's SSO endpoint back to the service: no discovery, no school.
    assert not second.went_to(f"{demo.broker_url}/discovery")
    assert not second.went_to(demo.school_url)
    assert not second.went_to(demo.acs_url)
    at_rekenroute = demo.received(browser, "rekenroute")
    assert at_rekenroute["name_id"]["value"] == at_leesplank["name_id"]["value"]
    assert at_rekenroute["name_id"]["sp_name_qualifier"] == rekenroute.entity_id
    # One SSO session, a SessionIndex of its own at each service, even in one chain (nothing
    # for two services to compare), and not the cookie's token.
    session_index = at_leesplank["session_index"]
    assert session_index and at_rekenroute["session_index"] != session_index
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    assert session_index.lstrip("_") not in token
    assert at_rekenroute["session_index"].lstrip("_") not in token
    # The same service answered again within the session: the same SessionIndex (what its
    # logout will name).
    again = demo.login(browser, "leesplank", "daan.devries")
    assert not again.went_to(demo.school_url)
    assert demo.received(browser, "leesplank")["session_index"] == session_index

    other = Browser()
    demo.login(other, "leesplank", "daan.devries")
    assert demo.received(other, "leesplank")["session_index"] != session_index


def test_a_new_browser_has_no_session(demo: LiveDemo) -> None:
    demo.login(Browser(), "leesplank", "daan.devries")
    fresh = Browser()
    page = fresh.get(f"{demo.publishers['rekenroute'].base_url}/login")
    assert demo.shows_discovery(page)
    assert not demo.answers_publisher(page)


def test_idp_list_in_the_request_skips_discovery(demo: LiveDemo) -> None:
    browser = Browser()
    login = demo.login(browser, "toetsplein", "marieke.bakker", f"?school={demo.school_entity_id}")
    assert login.final.status == 200, login.final.text
    assert not login.went_to(f"{demo.broker_url}/discovery")
    # Publisher → broker SSO → the school's SSO directly.
    sso = login.visited.index(next(u for u in login.visited if u.startswith(demo.school_url)))
    assert login.visited[sso - 1].startswith(f"{demo.broker_url}/saml/idp/sso")
    assert demo.received(browser, "toetsplein")["name_id"]["value"] == demo.expected_pseudonym(
        "marieke.bakker", "toetsen"
    )


def test_idp_list_naming_an_unknown_idp_falls_back_to_discovery(demo: LiveDemo) -> None:
    browser = Browser()
    page = browser.get(
        f"{demo.publishers['toetsplein'].base_url}/login?school=https://idp.elsewhere.example/md"
    )
    assert page.status == 200
    assert demo.shows_discovery(page)
