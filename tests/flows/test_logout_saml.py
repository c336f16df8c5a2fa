"""Single Logout with a SAML school and SAML publishers, through real pysaml2 peers.

One browser logs in at two SAML publishers (one SSO session), then logs out from one of them
(Redirect and POST binding), from the school, or with the broker's own button. The other
publisher gets a signed LogoutRequest naming what it was given and answers; the school is told;
the initiator gets a signed LogoutResponse; and the SSO session answers nothing afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from html import unescape
from urllib.parse import urljoin

import pytest

from broker.web.browser import SSO_COOKIE
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo
from tests.support.logout import (
    answer_initiator,
    answer_of,
    carry_saml_posts,
    finish_logout,
    frame_urls,
    load_frames,
    peer_logouts,
    read_final,
    run_id_of,
    sends_on_by_itself,
    wait_out,
    warns,
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
    return demo.shows_discovery(page) or page.url.startswith(f"{demo.school_url}/sso")


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
    # Everything confirmed: nothing to read, so the page sends the answer on by itself (a tab
    # closed here would keep it from the publisher); its button stays for no JavaScript.
    assert sends_on_by_itself(outcome.page) and not warns(outcome.page)
    # The initiator's way back: a signed LogoutResponse, Success, that the publisher accepts.
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in back.text, back.text
    # The SSO session is gone: a new login goes to the school again.
    assert _login_goes_to_school(demo, browser, "rekenroute")


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_a_reload_of_the_final_page_shows_the_one_answer_and_signs_no_new_one(
    demo: LiveDemo, binding: str
) -> None:
    browser = _two_publishers(demo, "daan.devries")
    query = "?binding=post" if binding == "post" else ""
    started = carry_saml_posts(
        browser, browser.get(f"{demo.publishers['leesplank'].base_url}/logout{query}")
    )
    outcome = finish_logout(browser, started)
    answer = answer_of(outcome.page)
    # Reloads (and a second tab) show the very same signed LogoutResponse: one answer to one
    # request, not a fresh message with a new id each time.
    for _ in range(2):
        again = browser.get(outcome.page.url)
        assert again.status == 200, again.text
        assert answer_of(again) == answer
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in back.text, back.text


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_logout_started_by_the_school(demo: LiveDemo, binding: str) -> None:
    browser = _two_publishers(demo, "daan.devries")
    query = "&binding=post" if binding == "post" else ""
    started = carry_saml_posts(
        browser, browser.get(f"{demo.school_url}/logout?uid=daan.devries{query}")
    )
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    outcome = finish_logout(browser, started)
    assert outcome.services == {LEESPLANK: "confirmed", REKENROUTE: "confirmed"}
    assert outcome.school == "initiator"
    # Back to the school, by itself, and the button names the school (not "the platform").
    assert sends_on_by_itself(outcome.page)
    assert "Back to Demo Lyceum</" in outcome.page.text
    answer = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in answer.text, answer.text
    assert _login_goes_to_school(demo, browser, "leesplank")


def test_the_students_button_logs_out_everywhere_and_the_old_cookie_opens_nothing(
    demo: LiveDemo,
) -> None:
    browser = _two_publishers(demo, "marieke.bakker")
    sso_token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    assert my_data.status == 200 and "/my-data/view/" in my_data.url, my_data.url
    started = browser.submit(my_data, f"{demo.broker_url}/my-data/close")
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    outcome = finish_logout(browser, started)
    assert outcome.services == {LEESPLANK: "confirmed", REKENROUTE: "confirmed"}
    assert outcome.school == "confirmed"
    # Nobody to answer: the student started it on the broker's own page, which stays.
    assert not [f for f in outcome.page.forms if "SAMLResponse" in f.fields]
    assert "data-logout-answer" not in outcome.page.text
    assert not sends_on_by_itself(outcome.page) and not warns(outcome.page)
    # A copy of the old cookie (a shared computer, a stolen token) opens nothing any more.
    browser.jar.setdefault("127.0.0.1", {})[SSO_COOKIE] = sso_token
    assert _login_goes_to_school(demo, browser, "leesplank")


def _schools_answer(demo: LiveDemo, browser: Browser, run_id: str) -> tuple[str, dict[str, str]]:
    """Walk the run on to the school and take the school's LogoutResponse before it reaches
    the broker: (url, form fields; empty for the Redirect binding)."""
    sp_slo = f"{demo.broker_url}/saml/sp/slo"
    page = browser.get(
        f"{demo.broker_url}/logout/{run_id}/next", stop=lambda url: url.startswith(sp_slo)
    )
    for _ in range(4):
        if page.location and page.location.startswith(sp_slo):
            return page.location, {}
        forms = [f for f in page.forms if f.method == "post" and "SAMLResponse" in f.fields]
        if forms and forms[0].action.startswith(sp_slo):
            return forms[0].action, dict(forms[0].fields)
        forms = [f for f in page.forms if f.method == "post" and "SAMLRequest" in f.fields]
        assert forms, (page.url, page.status, page.text[:500])
        page = browser.post(
            forms[0].action, dict(forms[0].fields), stop=lambda url: url.startswith(sp_slo)
        )
    raise AssertionError("the school's LogoutResponse never came")


def _bring(browser: Browser, url: str, fields: dict[str, str]) -> Page:
    return browser.post(url, fields) if fields else browser.get(url)


def test_the_schools_answer_in_another_browser_does_not_use_it_up(demo: LiveDemo) -> None:
    browser = _two_publishers(demo, "marieke.bakker")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    started = browser.submit(my_data, f"{demo.broker_url}/my-data/close")
    load_frames(browser, started)
    url, fields = _schools_answer(demo, browser, run_id_of(started))
    # Another browser (no secret of this run) brings the school's answer: refused, and the
    # request it answers is still outstanding.
    elsewhere = _bring(Browser(), url, fields)
    assert 400 <= elsewhere.status < 500, (elsewhere.status, elsewhere.text[:300])
    # The browser that started the run brings it: the school's logout counts.
    outcome = read_final(_bring(browser, url, fields))
    assert outcome.school == "confirmed"
    # And once only: a second copy in the right browser is unsolicited.
    assert _bring(browser, url, fields).status == 400


def test_the_logout_form_needs_its_token(demo: LiveDemo) -> None:
    browser = _two_publishers(demo, "daan.devries")
    refused = browser.post(f"{demo.broker_url}/logout", {"csrf_token": "forged"})
    assert refused.status == 400
    # Nothing ended: the session still answers the next login without the school.
    login = demo.login(browser, "leesplank", "daan.devries")
    assert not login.went_to(f"{demo.school_url}/sso")


@pytest.fixture(scope="module")
def silent_and_unsupported(demo: LiveDemo) -> Iterator[tuple[str, str]]:
    demo.add_publisher("stille-uitgever", "leermiddelen", (), slo="silent")
    demo.add_publisher("zonder-slo", "leermiddelen", (), slo="none")
    yield "stille-uitgever (test publisher)", "zonder-slo (test publisher)"


def test_a_service_that_never_answers_is_reported_and_does_not_block(
    demo: LiveDemo, silent_and_unsupported: tuple[str, str]
) -> None:
    silent, unsupported = silent_and_unsupported
    browser = Browser()
    for publisher in ("leesplank", "stille-uitgever", "zonder-slo"):
        assert demo.login(browser, publisher, STUDENT).final.status == 200
    previous = wait_out(demo, 1)
    try:
        started = browser.get(f"{demo.publishers['leesplank'].base_url}/logout")
        frames = load_frames(browser, started)
        # The silent service took the request and answered nothing.
        assert any('data-logout-status="silent"' in f.text for f in frames)
        # The page waits for it until the wait is over (tests do not assert timings: they
        # only let the wait pass).
        time.sleep(1.2)
        outcome = finish_logout(browser, started)
    finally:
        wait_out(demo, previous)
    assert outcome.services == {silent: "timed_out", unsupported: "unsupported"}
    assert outcome.school == "confirmed"
    # The student must read this: the page stays, says what to do, and keeps the button.
    assert warns(outcome.page) and not sends_on_by_itself(outcome.page)
    assert "Close your browser completely" in outcome.page.text
    assert "Did not answer: you may still be logged in there." in outcome.page.text
    assert "Could not log you out by itself: you may still be logged in there." in outcome.page.text
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="partial"' in back.text, back.text
    assert _login_goes_to_school(demo, browser, "leesplank")


def test_the_demo_publisher_checks_the_logout_requests_query_signature(demo: LiveDemo) -> None:
    """The demo platforms play the publisher's side as a careful deployment would: a
    LogoutRequest by Redirect whose query signature does not verify with the broker's key is
    refused and ends nothing, and the broker's own one is heard."""
    browser = _two_publishers(demo)
    rekenroute = demo.publishers["rekenroute"].base_url
    name_id = demo.received(browser, "rekenroute")["name_id"]["value"]
    heard_before = len(_requests_for(browser, rekenroute, name_id))
    started = browser.submit(
        browser.get(f"{demo.broker_url}/my-data/sign-in"), f"{demo.broker_url}/my-data/close"
    )
    frames = frame_urls(started)
    assert frames, started.text
    to_rekenroute = ""
    for src in frames:
        hop = browser.get(
            urljoin(started.url, unescape(src)), stop=lambda u: u.startswith(rekenroute)
        )
        if (hop.location or "").startswith(f"{rekenroute}/slo"):
            to_rekenroute = hop.location or ""
    assert to_rekenroute, frames
    forged = to_rekenroute.replace("Signature=", "Signature=AAAA", 1)
    refused = Browser().get(forged)
    assert refused.status == 400, refused.status
    assert len(_requests_for(browser, rekenroute, name_id)) == heard_before
    heard = Browser().get(to_rekenroute)
    assert heard.status in (200, 302, 303), heard.status
    assert len(_requests_for(browser, rekenroute, name_id)) == heard_before + 1
