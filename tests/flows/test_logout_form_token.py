"""The student's "log out everywhere" after its page stood open a long time.

Its token was Flask-WTF's CSRF token, which lives an hour: a student who left the my-data page
open over a lesson and then pressed the button got a 400, and the SSO session stood on (at a
shared school laptop, the next student was signed in as them). Now the token is bound to the
browser's secret (broker/login/logout_form.py): good for a day; older, or missing, the student is
asked once more on a plain form (no JavaScript) in their language; a token not made for this
browser is still refused, and nothing ends.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from broker.login.logout_form import FORM_SECONDS, make_form_token
from broker.web.browser import BROWSER_COOKIE, SSO_COOKIE
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo
from tests.support.logout import finish_logout

STUDENT = "daan.devries"
ASKED = {
    "en": (
        "To be sure that you asked for it yourself, press the button once more.",
        "Log out everywhere",
        "Stay logged in",
    ),
    "nl": (
        "Om zeker te weten dat je het zelf vroeg, druk je nog een keer op de knop.",
        "Overal uitloggen",
        "Ingelogd blijven",
    ),
}


def _signed_in(demo: LiveDemo, language: str = "en") -> Browser:
    browser = Browser(language)
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200
    return browser


def _my_data(demo: LiveDemo, browser: Browser) -> Page:
    page = browser.get(f"{demo.broker_url}/my-data/sign-in")
    assert page.status == 200 and "/my-data/view/" in page.url, page.url
    return page


def _sso_stands(demo: LiveDemo, browser: Browser) -> bool:
    """Whether a login at a publisher is answered without the school."""
    return not demo.login(browser, "leesplank", STUDENT).went_to(f"{demo.school_url}/sso")


def _browser_secret(demo: LiveDemo, browser: Browser) -> bytes:
    raw = browser.cookies(demo.broker_url)[BROWSER_COOKIE]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


@contextmanager
def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """The broker's wall clock (the demo runs in this process) moved on by `seconds`."""
    real = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real() + seconds)
        yield


def _ended_for_good(demo: LiveDemo, browser: Browser, started: Page, sso_token: str) -> None:
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    finish_logout(browser, started)
    # A copy of the old cookie (the next student at the laptop) opens nothing.
    browser.jar.setdefault("127.0.0.1", {})[SSO_COOKIE] = sso_token
    assert not _sso_stands(demo, browser)


def test_a_page_left_open_two_hours_still_logs_out_at_once(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = _signed_in(demo)
    sso_token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    page = _my_data(demo, browser)
    with _later(monkeypatch, 2 * 3600):
        # "Close and log out", the data page's main button: the student's logout form.
        pressed = browser.submit(page, f"{demo.broker_url}/my-data/close", follow=False)
    assert pressed.status == 303, (pressed.status, pressed.text[:300])
    assert pressed.location
    _ended_for_good(demo, browser, browser.get(pressed.location), sso_token)


@pytest.mark.parametrize("language", ["en", "nl"])
def test_a_token_older_than_a_day_asks_once_more_and_then_logs_out(
    demo: LiveDemo, language: str
) -> None:
    browser = _signed_in(demo, language)
    sso_token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    _my_data(demo, browser)
    old = make_form_token(_browser_secret(demo, browser), time.time() - FORM_SECONDS - 60)
    asked = browser.post(f"{demo.broker_url}/logout", {"csrf_token": old})
    assert asked.status == 200, (asked.status, asked.text[:300])
    assert asked.response.headers["Cache-Control"] == "no-store"
    assert asked.url == f"{demo.broker_url}/logout"  # no run yet: asking ended nothing
    assert SSO_COOKIE in browser.cookies(demo.broker_url)
    lead, button, stay = ASKED[language]
    assert lead in asked.text and stay in asked.text
    # One plain form with a fresh token and one button: no JavaScript needed.
    [form] = asked.forms
    assert form.method == "post" and form.action == f"{demo.broker_url}/logout"
    assert form.fields["csrf_token"] and form.fields["csrf_token"] != old
    assert f">{button}</button>" in asked.text
    assert _sso_stands(demo, browser)
    started = browser.submit(asked, f"{demo.broker_url}/logout")
    _ended_for_good(demo, browser, started, sso_token)


def test_a_form_without_a_token_asks_and_ends_nothing(demo: LiveDemo) -> None:
    browser = _signed_in(demo, "nl")
    asked = browser.post(f"{demo.broker_url}/logout", {})
    assert asked.status == 200, (asked.status, asked.text[:300])
    assert ASKED["nl"][0] in asked.text
    assert _sso_stands(demo, browser)


def test_a_token_not_made_for_this_browser_is_refused_and_ends_nothing(demo: LiveDemo) -> None:
    browser = _signed_in(demo)
    other = Browser()
    mine = _my_data(demo, browser).form(f"{demo.broker_url}/my-data/close").fields["csrf_token"]
    made, _, mac = mine.partition(".")
    forgeries = {
        # What a third-party page can get: a token of its own browser's page.
        "another browser's": _my_data(demo, _signed_in(demo))
        .form(f"{demo.broker_url}/my-data/close")
        .fields["csrf_token"],
        "an empty browser's": make_form_token(b"\0" * 32, time.time()),
        "another time, same mac": f"{int(made) - 1}.{mac}",
        "garbage": "forged",
        "empty": "",
    }
    for name, token in forgeries.items():
        refused = other.post(f"{demo.broker_url}/logout", {"csrf_token": token})
        assert refused.status == 400, name
        refused = browser.post(f"{demo.broker_url}/logout", {"csrf_token": token})
        assert refused.status == 400, name
        assert SSO_COOKIE in browser.cookies(demo.broker_url), name
    assert _sso_stands(demo, browser)
