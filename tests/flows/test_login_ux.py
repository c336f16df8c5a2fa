"""What a student meets around a login, with real clients against the running demo: the Back
button after the notice, a browser that sends no cookies, a mis-tapped school, the school search
and the error pages' titles, in Dutch and English."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlencode

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.core.errors import StoreUnavailable
from broker.core.ports import StoreOp, StoreReply
from broker.core.receipts import Receipt, ReceiptContent
from broker.registry.database import open_engine, writer
from broker.web import notice as notice_routes
from broker.web.browser import BROWSER_COOKIE, SCHOOL_COOKIE, SSO_COOKIE
from tests.support.client import Browser, Page, _host
from tests.support.live import LiveDemo, OidcPublisher, free_ports
from tests.support.store_writes import note_store_writes

UID = "sanne.jansen"
SERVICE = "Leesplank (demo publisher)"
ALREADY = {
    "nl": f"Je bent al ingelogd bij {SERVICE}",
    "en": f"You are already signed in to {SERVICE}",
}


def heading(page: Page) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page.text, re.S)
    assert found is not None, page.text[:300]
    return " ".join(found.group(1).split())


def notice_address(page: Page) -> str:
    found = re.search(r'data-page-address="(/notice/[^"]+)"', page.text)
    assert found is not None, page.text[:300]
    return found.group(1)


def held_at_notice(demo: LiveDemo, language: str) -> tuple[Browser, Page]:
    browser = Browser(language, read_notices=False)
    login = demo.login(browser, "leesplank", UID, deliver=False)
    assert "/notice/" in login.final.text, login.final.text[:300]
    return browser, login.final


# -- 1: Back from the platform to the notice ------------------------------------------------------
@pytest.mark.parametrize("language", ["nl", "en"])
def test_back_to_the_notice_after_continuing_says_already_signed_in(
    demo: LiveDemo, language: str
) -> None:
    browser, notice = held_at_notice(demo, language)
    address = notice_address(notice)
    answered = browser.post(f"{demo.broker_url}{address}", {"continue": "1"})
    assert demo.answers_publisher(answered)
    # The answer puts the notice's address in the history in its own place (autopost.js): a
    # phone that loaded it before posting on keeps it there, and Back must not re-send its POST.
    assert notice_address(answered) == address
    browser.submit(answered, demo.publishers["leesplank"].acs_url)

    back = browser.get(f"{demo.broker_url}{address}")
    assert back.status == 200, back.text[:300]
    assert heading(back) == ALREADY[language]
    # The link goes to the platform's own site (the origin of its ACS URL), not to an error.
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in back.text
    assert "error-code" not in back.text and not demo.answers_publisher(back)
    assert back.response.headers["Cache-Control"] == "no-store"


def test_back_after_an_answer_without_a_notice_says_signed_in_with_the_platforms_link(
    demo: LiveDemo,
) -> None:
    browser, notice = held_at_notice(demo, "en")
    demo.answers_publisher(
        browser.post(f"{demo.broker_url}{notice_address(notice)}", {"continue": "1"})
    )
    again = demo.login(browser, "leesplank", UID, deliver=False).final  # from the SSO session
    assert demo.answers_publisher(again)
    # Not the notice's (there was none): a page of its own, named by the service alone.
    found = re.search(r'data-page-address="([^"]+)"', again.text)
    acs = demo.publishers["leesplank"].acs_url
    assert found is not None and html.unescape(found.group(1)) == (
        f"/sent-on/leesplank?{urlencode({'to': acs}, safe=':/')}"
    )
    back = browser.get(f"{demo.broker_url}{html.unescape(found.group(1))}")
    assert back.status == 200 and heading(back) == ALREADY["en"]
    # The link is the origin of the ACS URL the login was answered at, in the service's
    # metadata: the URL chooses nothing else (an address elsewhere: the default ACS's site).
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in back.text
    assert "error-code" not in back.text and not demo.answers_publisher(back)
    # Any browser may see it (it holds nothing of the login); an unknown service is a 400.
    elsewhere = Browser("nl").get(f"{demo.broker_url}/sent-on/leesplank?to=https://x.example/")
    assert elsewhere.status == 200 and 'href="https://x.example' not in elsewhere.text
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in elsewhere.text
    unknown = Browser("en").get(f"{demo.broker_url}/sent-on/no-such-service")
    assert unknown.status == 400 and "already signed in" not in unknown.text


def test_the_mark_opens_only_in_the_browser_that_continued(demo: LiveDemo) -> None:
    browser, notice = held_at_notice(demo, "en")
    address = notice_address(notice)
    demo.answers_publisher(browser.post(f"{demo.broker_url}{address}", {"continue": "1"}))
    other = Browser("en")
    other.jar[_host(demo.broker_url)] = {BROWSER_COOKIE: "A" * 43}  # another browser's secret
    refused = other.get(f"{demo.broker_url}{address}")
    assert refused.status == 400 and "already signed in" not in refused.text


def test_the_mark_is_written_once_the_receipt_is_filed(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark tells of an answer: it is written after the receipt (the commit point), in a
    write of its own with the login's own mark, so a receipt that fails, or a worker that dies
    waiting for it, leaves no "already signed in" behind."""
    browser, notice = held_at_notice(demo, "en")
    filed = _counting_receipts(demo, monkeypatch)
    store = demo.broker.flow.store
    real_batch = store.batch
    filed_before_mark: list[int] = []

    def batch(operations: Sequence[StoreOp]) -> list[StoreReply]:
        if any(op.key.startswith("notice-done:") for op in operations):
            filed_before_mark.append(len(filed))
        return real_batch(operations)

    monkeypatch.setattr(store, "batch", batch)
    writes = note_store_writes(store, monkeypatch)
    answered = browser.post(f"{demo.broker_url}{notice_address(notice)}", {"continue": "1"})
    assert demo.answers_publisher(answered)
    assert filed_before_mark == [1]
    assert writes.batched_among("notice-done:", "login-done:"), writes


@pytest.mark.parametrize("publisher", ["leesplank", OIDC_PUBLISHER_ID])
@pytest.mark.parametrize("held_from", ["a school login", "an SSO session"])
def test_a_continue_that_met_a_503_is_tried_again_and_finishes(
    demo: LiveDemo,
    woordwijs: OidcPublisher,
    monkeypatch: pytest.MonkeyPatch,
    held_from: str,
    publisher: str,
) -> None:
    """The registry's database unreachable at "Continue": a 503 ("try again"), the platform
    gets no answer, and Back to the notice does not say "already signed in" (the mark follows
    the receipt). The held login is held again: the notice shows again, and the same POST (the
    503 page's "try again") finishes the login, with one receipt, at a SAML and an OIDC
    platform alike (with or without a session opened for it)."""
    browser = Browser("en", read_notices=held_from == "an SSO session")
    if held_from == "an SSO session":
        assert demo.answers_publisher(demo.login(browser, "rekenroute", UID, deliver=False).final)
        browser.read_notices = False
    login = demo.login(browser, publisher, UID, deliver=False)
    address = f"{demo.broker_url}{notice_address(login.final)}"
    # The receipt book's connection goes to a port where no database listens: the real
    # driver's error, as the worker meets it when the registry is down.
    unreachable = open_engine(f"postgresql+psycopg://kb@127.0.0.1:{free_ports(1)}/kb")
    try:
        with monkeypatch.context() as patched:
            patched.setattr(demo.broker.receipts, "_writer", writer(unreachable))
            failed = browser.post(address, {"continue": "1"})
    finally:
        unreachable.dispose()
    assert failed.status == 503, failed.text[:300]
    assert not demo.answers_publisher(failed)
    assert not failed.url.startswith(demo.publishers[publisher].base_url)

    back = browser.get(address)
    assert back.status == 200, back.text[:300]
    assert "already signed in" not in back.text and notice_address(back) in address

    filed = _counting_receipts(demo, monkeypatch)
    again = browser.post(address, {"continue": "1"})
    if publisher == "leesplank":
        assert demo.answers_publisher(again), again.text[:300]
        again = browser.submit(again, demo.publishers[publisher].acs_url)
    assert again.status == 200 and again.url.startswith(demo.publishers[publisher].base_url)
    assert demo.received(browser, publisher)
    assert filed == [publisher]


def test_a_continue_whose_session_read_met_the_store_down_is_tried_again(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notice held from an SSO session reads the session first: the store failing there is
    a 503 "try again" too, and the login is held again (it was lost: "start again")."""
    browser = Browser("en", read_notices=True)
    assert demo.answers_publisher(demo.login(browser, "rekenroute", UID, deliver=False).final)
    browser.read_notices = False
    login = demo.login(browser, "leesplank", UID, deliver=False)
    address = f"{demo.broker_url}{notice_address(login.final)}"

    def store_down(token: str | None) -> object:
        raise StoreUnavailable("store down at the session read")

    with monkeypatch.context() as patched:
        patched.setattr(notice_routes, "session_and_services", store_down)
        failed = browser.post(address, {"continue": "1"})
    assert failed.status == 503, failed.text[:300]
    assert not demo.answers_publisher(failed)
    filed = _counting_receipts(demo, monkeypatch)
    again = browser.post(address, {"continue": "1"})
    assert demo.answers_publisher(again), again.text[:300]
    assert filed == ["leesplank"]


# -- 1b: two "Continue"s, as a double click without JavaScript sends them ------------------------
def _counting_receipts(demo: LiveDemo, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    filed: list[str] = []
    real_file = demo.broker.receipting.file

    def file(content: ReceiptContent) -> Receipt:
        filed.append(content.service_id)
        return real_file(content)

    monkeypatch.setattr(demo.broker.receipting, "file", file)
    return filed


def test_a_second_continue_after_the_answer_says_already_signed_in(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double click (the second POST after the first one's answer left): one answer, one
    receipt; the second says "already signed in" with the way to the platform."""
    browser, notice = held_at_notice(demo, "en")
    address = f"{demo.broker_url}{notice_address(notice)}"
    filed = _counting_receipts(demo, monkeypatch)
    first = browser.post(address, {"continue": "1"})
    second = browser.post(address, {"continue": "1"})
    assert demo.answers_publisher(first)
    assert second.status == 200 and heading(second) == ALREADY["en"]
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in second.text
    assert not demo.answers_publisher(second)
    assert filed == ["leesplank"]


def test_a_second_continue_while_the_first_is_answering_is_refused_at_once(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second POST arrives between the first one's take and its answer's batch: no mark
    yet. It is refused at once as used (notice.proceed says why it does not wait), never
    answered a second time; the first still answers, with one receipt."""
    browser, notice = held_at_notice(demo, "en")
    address = f"{demo.broker_url}{notice_address(notice)}"
    filed = _counting_receipts(demo, monkeypatch)
    store = demo.broker.flow.store
    real_batch = store.batch
    answering, second_done = threading.Event(), threading.Event()

    def batch(operations: Sequence[StoreOp]) -> list[StoreReply]:
        if any(op.key.startswith("notice-done:") for op in operations):
            answering.set()
            assert second_done.wait(10), "the second Continue never finished"
        return real_batch(operations)

    monkeypatch.setattr(store, "batch", batch)
    answers: list[Page] = []
    first = threading.Thread(
        target=lambda: answers.append(browser.post(address, {"continue": "1"}))
    )
    first.start()
    try:
        assert answering.wait(10), "the first Continue never reached its answer"
        started = time.monotonic()
        second = browser.post(address, {"continue": "1"})
        waited = time.monotonic() - started
    finally:
        second_done.set()
        first.join(10)
    assert second.status == 400 and "took too long or was already used" in second.text
    assert not demo.answers_publisher(second)
    assert waited < 1.0, waited  # not held up by the first
    assert len(answers) == 1 and demo.answers_publisher(answers[0])
    assert filed == ["leesplank"]


# -- 4: no cookies at all ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("language", "title", "advice"),
    [
        ("nl", "Sta cookies toe om in te loggen", "Sta cookies toe voor deze website"),
        ("en", "Allow cookies to sign in", "Allow cookies for this website"),
    ],
)
def test_a_browser_that_sends_no_cookies_is_told_to_allow_them(
    demo: LiveDemo, language: str, title: str, advice: str, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser(language)
    discovery = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert demo.shows_discovery(discovery)
    browser.jar.pop(_host(demo.broker_url))  # the browser kept none of the broker's cookies
    chosen = demo.choose_school(browser, discovery)
    assert chosen.status == 400
    assert heading(chosen) == title
    assert advice in chosen.text and _host(demo.broker_url) in chosen.text
    assert "code=cookies_blocked" in caplog.text


def test_a_lost_login_with_other_broker_cookies_still_says_it_expired(demo: LiveDemo) -> None:
    # A restarted browser keeps the persistent cookies (SSO session, remembered school) and
    # loses the session cookie with the login's secret: cookies work, the login is gone.
    browser = Browser("en")
    demo.login(browser, "leesplank", UID)
    jar = browser.jar[_host(demo.broker_url)]
    jar.pop(BROWSER_COOKIE)
    assert SSO_COOKIE in jar and SCHOOL_COOKIE in jar
    refused = browser.get(f"{demo.broker_url}/discovery?login=gone")
    assert refused.status == 400
    assert "took too long or was already used" in refused.text


# -- 5: the remembered school -------------------------------------------------------------------
def test_a_school_is_remembered_only_once_its_login_succeeded(demo: LiveDemo) -> None:
    browser = Browser("nl")
    discovery = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    to_school = browser.post(
        discovery.form(f"{demo.broker_url}/discovery").action,
        {**discovery.form(f"{demo.broker_url}/discovery").fields, "school": DEMO_SCHOOL_ID},
        follow=False,
    )
    assert to_school.status == 303 and SCHOOL_COOKIE not in to_school.cookies_set
    # Back to the list (a mis-tap): the school is not offered as "Verder met …".
    again = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert demo.shows_discovery(again) and "Verder met" not in again.text
    # The school's answer (the ACS) sets it, once the school's login went through.
    answered = demo.choose_school(browser, again)
    assert SCHOOL_COOKIE not in browser.cookies(demo.broker_url)
    at_acs = demo.pick(browser, answered, UID)
    assert SCHOOL_COOKIE in at_acs.cookies_set
    assert browser.cookies(demo.broker_url)[SCHOOL_COOKIE] == DEMO_SCHOOL_ID


# -- 2, 3: the school search on the server -------------------------------------------------------
@pytest.mark.parametrize("typed", ["99XX00", "99xx00", "lyceym", "demo-lyceum", "demolyceum"])
def test_the_server_search_finds_by_code_with_hyphens_joins_and_one_typo(
    demo: LiveDemo, typed: str
) -> None:
    browser = Browser("en")
    start = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    login = start.form(f"{demo.broker_url}/discovery").fields["login"]
    found = browser.get(f"{demo.broker_url}/discovery?login={login}&q={typed}")
    assert f'value="{DEMO_SCHOOL_ID}"' in found.text, found.text[:500]
    close = re.search(r'<p id="close-matches"[^>]*>', found.text)
    assert close is not None and ("hidden" not in close.group(0)) == (typed == "lyceym")


# -- 6: the error pages' titles -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("language", "title", "platform", "portal_start"),
    [
        ("nl", "Pagina niet gevonden", "leerplatform", "startpagina van het portaal"),
        ("en", "Page not found", "learning platform", "portal's start page"),
    ],
)
def test_a_404_is_titled_as_one_and_a_portal_404_does_not_mention_the_platform(
    demo: LiveDemo, language: str, title: str, platform: str, portal_start: str
) -> None:
    browser = Browser(language)
    outside = browser.get(f"{demo.broker_url}/no-such-page")
    assert outside.status == 404 and heading(outside) == title
    assert platform in outside.text
    portal = browser.get(f"{demo.broker_url}/portal/no-such-page")
    assert portal.status == 404 and heading(portal) == title
    assert platform not in portal.text
    assert portal_start.replace("'", "&#39;") in portal.text
    assert 'href="/portal/"' in portal.text
