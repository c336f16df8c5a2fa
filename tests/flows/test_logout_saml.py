"""Single Logout with a SAML school and SAML publishers, through real pysaml2 peers.

One browser logs in at two SAML publishers (one SSO session), then logs out from one of them
(Redirect and POST binding), from the school, or with the broker's own button. The other
publisher gets a signed LogoutRequest naming what it was given and answers; the school is told;
the initiator gets a signed LogoutResponse; and the SSO session answers nothing afterwards.
"""

from __future__ import annotations

import pytest

from tests.support.client import Browser
from tests.support.live import LiveDemo
from tests.support.logout import (
    answer_initiator,
    carry_saml_posts,
    finish_logout,
    peer_logouts,
)

STUDENT = "sanne.jansen"
LEESPLANK = "Leesplank (demo publisher)"
REKENROUTE = "Rekenroute (demo distributor)"


def _two_publishers(demo: LiveDemo, uid: str = STUDENT) -> Browser:
    browser = Browser()
    for publisher in ("leesplank", "rekenroute"):
        login = demo.login(browser, publisher, uid)
        assert login.final.status == 200, login.final.text
    return browser


def _requests_for(browser: Browser, base_url: str, name_id: str) -> list[dict[str, object]]:
    return [
        e
        for e in peer_logouts(browser, base_url)
        if e["kind"] == "request" and e["name_id"] == name_id
    ]


def _login_goes_to_school(demo: LiveDemo, browser: Browser, publisher: str) -> bool:
    page = browser.get(f"{demo.publishers[publisher].base_url}/login")
    return page.url.startswith(f"{demo.broker_url}/discovery") or page.url.startswith(
        f"{demo.school_url}/sso"
    )


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_logout_from_a_publisher_reaches_the_other_publisher_and_the_school(
    demo: LiveDemo, binding: str
) -> None:
    browser = _two_publishers(demo)
    rekenroute_name_id = demo.received(browser, "rekenroute")["name_id"]["value"]
    school_name_id = demo.school_subject(STUDENT)
    told_before = len(_requests_for(browser, demo.school_url, school_name_id))
    heard_before = len(
        _requests_for(browser, demo.publishers["rekenroute"].base_url, rekenroute_name_id)
    )

    query = "?binding=post" if binding == "post" else ""
    started = carry_saml_posts(
        browser, browser.get(f"{demo.publishers['leesplank'].base_url}/logout{query}")
    )
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    outcome = finish_logout(browser, started)

    # The other publisher received a LogoutRequest naming what it was given, and answered.
    heard = _requests_for(browser, demo.publishers["rekenroute"].base_url, rekenroute_name_id)
    assert len(heard) == heard_before + 1
    assert outcome.services == {REKENROUTE: "confirmed"}
    # The school was told (its NameID), and confirmed.
    assert len(_requests_for(browser, demo.school_url, school_name_id)) == told_before + 1
    assert outcome.school == "confirmed"
    # The initiator's way back: a signed LogoutResponse, Success, that the publisher accepts.
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in back.text, back.text
    # The SSO session is gone: a new login goes to the school again.
    assert _login_goes_to_school(demo, browser, "rekenroute")


def test_logout_started_by_the_school(demo: LiveDemo) -> None:
    browser = _two_publishers(demo, "daan.devries")
    started = carry_saml_posts(browser, browser.get(f"{demo.school_url}/logout?uid=daan.devries"))
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    outcome = finish_logout(browser, started)
    assert outcome.services == {LEESPLANK: "confirmed", REKENROUTE: "confirmed"}
    assert outcome.school == "initiator"
    answer = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in answer.text, answer.text
    assert _login_goes_to_school(demo, browser, "leesplank")
