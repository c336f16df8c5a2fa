"""The chain pseudonym as publishers see it (pseudonyms.md): one number per student per chain,
another in another chain, another for another student, the same on every login."""

from __future__ import annotations

import pytest

from tests.support.client import Browser
from tests.support.live import PAIRWISE_ID, LiveDemo, OidcPublisher, attributes_by_name


@pytest.fixture(scope="module")
def toetsweb(demo: LiveDemo) -> OidcPublisher:
    """An OIDC platform in the chain toetsen (the demo's OIDC publishers are in leermiddelen)."""
    return demo.add_oidc_publisher("toetsweb", "toetsen", scope="openid")


@pytest.fixture(scope="module")
def leesweb(demo: LiveDemo) -> OidcPublisher:
    """An OIDC platform in the chain leermiddelen."""
    return demo.add_oidc_publisher("leesweb", "leermiddelen", scope="openid")


def _pseudonym(demo: LiveDemo, publisher: str, uid: str, browser: Browser | None = None) -> str:
    """Log in with a fresh browser (or the given one) and return the NameID the SP accepted,
    after checking that the pairwise-id carries the same number."""
    browser = browser or Browser()
    login = demo.login(browser, publisher, uid)
    assert login.final.status == 200, login.final.text
    received = demo.received(browser, publisher)
    value: str = received["name_id"]["value"]
    pairwise = attributes_by_name(received)[PAIRWISE_ID]["values"]
    assert pairwise == [f"{value}@{demo.settings.scope}"]
    return value


def test_one_chain_sees_one_number_for_a_student(demo: LiveDemo) -> None:
    at_leesplank = _pseudonym(demo, "leesplank", "sanne.jansen")
    at_rekenroute = _pseudonym(demo, "rekenroute", "sanne.jansen")
    assert at_leesplank == at_rekenroute == demo.expected_pseudonym("sanne.jansen", "leermiddelen")


def test_another_chain_sees_another_number(demo: LiveDemo) -> None:
    at_leesplank = _pseudonym(demo, "leesplank", "sanne.jansen")
    at_toetsplein = _pseudonym(demo, "toetsplein", "sanne.jansen")
    assert at_toetsplein != at_leesplank
    assert at_toetsplein == demo.expected_pseudonym("sanne.jansen", "toetsen")


def test_another_chain_cannot_join_the_numbers_by_the_session(
    demo: LiveDemo, toetsweb: OidcPublisher, leesweb: OidcPublisher
) -> None:
    """One SSO session, services in two chains: no session identifier they could compare to
    join their pseudonyms (SAML SessionIndex, OIDC sid), as the privacy review proved before."""
    browser = Browser()
    demo.login(browser, "leesplank", "sanne.jansen")
    assert not demo.login(browser, "toetsplein", "sanne.jansen").went_to(demo.school_url)
    demo.login(browser, "toetsweb", "sanne.jansen")
    demo.login(browser, "leesweb", "sanne.jansen")
    saml_lees = demo.received(browser, "leesplank")
    saml_toets = demo.received(browser, "toetsplein")
    oidc_toets = demo.received(browser, "toetsweb")
    oidc_lees = demo.received(browser, "leesweb")
    assert saml_lees["name_id"]["value"] != saml_toets["name_id"]["value"]
    assert oidc_toets["sub"] == saml_toets["name_id"]["value"] != oidc_lees["sub"]
    indexes = [
        saml_lees["session_index"],
        saml_toets["session_index"],
        oidc_toets["session_index"],
        oidc_lees["session_index"],
    ]
    assert all(indexes) and len(set(indexes)) == 4


def test_other_students_get_other_numbers(demo: LiveDemo) -> None:
    uids = ("sanne.jansen", "daan.devries", "fatima.elamrani", "marieke.bakker")
    seen = {uid: _pseudonym(demo, "leesplank", uid) for uid in uids}
    assert len(set(seen.values())) == len(uids)
    for uid, value in seen.items():
        assert value == demo.expected_pseudonym(uid, "leermiddelen")


def test_a_second_login_in_a_new_browser_gives_the_same_number(demo: LiveDemo) -> None:
    first_browser, second_browser = Browser(), Browser()
    first = _pseudonym(demo, "toetsplein", "fatima.elamrani", first_browser)
    second = _pseudonym(demo, "toetsplein", "fatima.elamrani", second_browser)
    assert first == second
    # Really two logins at the school, not one SSO session reused.
    assert any(url.startswith(f"{demo.school_url}/sso") for url in second_browser.history)
    assert first_browser.cookies(demo.broker_url) != second_browser.cookies(demo.broker_url)
