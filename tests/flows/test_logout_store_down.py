"""The student's "log out everywhere" while the store is down (Redis gone for a moment).

The session cannot be ended in the store then. The page must not leave the student believing
they are logged out, and the browser must not keep the SSO cookie: once the store is back, the
next student at the shared laptop would be signed in as them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from broker.core.errors import StoreUnavailable
from broker.web.browser import SSO_COOKIE
from broker.web.metrics import CountingStore
from tests.support.client import Browser
from tests.support.live import LiveDemo

STUDENT = "sanne.jansen"


@contextmanager
def _store_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every store call fails, as with Redis gone."""

    def down(self: CountingStore, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis: ConnectionError")

    with monkeypatch.context() as patch:
        for name in ("put", "get", "take", "add_if_absent", "delete", "batch"):
            patch.setattr(CountingStore, name, down)
        yield


def test_log_out_everywhere_with_the_store_down_drops_the_cookie_and_says_so(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = Browser(language="nl")
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    form = my_data.form(f"{demo.broker_url}/my-data/close")
    assert SSO_COOKIE in browser.cookies(demo.broker_url)

    with _store_down(monkeypatch):
        page = browser.post(form.action, dict(form.fields))

    assert page.status == 503, page.text[:300]
    assert 'lang="nl"' in page.text and "Foutcode" in page.text
    # Said plainly: not logged out everywhere, close the browser.
    assert "Sluit je browser" in page.text, page.text
    # Its steps say so too, not "wait a moment, then try again".
    assert "Sluit nu alle vensters van je browser" in page.text
    assert "Wacht even" not in page.text
    # The browser forgets the session: back on a working store, nothing signs in from it.
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    again = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert demo.shows_discovery(again) or again.url.startswith(f"{demo.school_url}/sso")


def test_the_closed_data_page_with_the_store_down_still_says_to_log_out(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the SSO cookie's session stands cannot be read: the closed page says the
    cautious thing (log out too), with the button, instead of failing."""
    browser = Browser(language="nl")
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200

    with _store_down(monkeypatch):
        page = browser.get(f"{demo.broker_url}/my-data/closed")

    assert page.status == 200, page.text[:300]
    assert "maar je bent nog ingelogd" in page.text and "data-logout-everywhere" in page.text


def test_a_logout_step_with_the_store_down_says_logging_out_did_not_work(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step of a started logout (its page) with the store down: a 503 as it was, but worded
    for the logout: it did not work, the student may still be logged in,
    wait and try again, and on a shared computer close the browser. Never "signing in"."""
    browser = Browser(language="nl")
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    form = my_data.form(f"{demo.broker_url}/my-data/close")
    started = browser.post(form.action, dict(form.fields), follow=False)
    run_page = started.location or ""
    assert "/logout/" in run_page, started.text[:300]

    with _store_down(monkeypatch):
        page = browser.get(run_page)

    assert page.status == 503, page.text[:300]
    main = page.text.split("<main", 1)[-1]
    assert "Uitloggen is niet gelukt" in main, main[:600]
    assert "Je bent misschien nog ingelogd" in main
    assert "Wacht even en probeer het dan opnieuw." in main
    assert "Sluit dan alle vensters van je browser" in main
    assert "Inloggen" not in main and "inloggen" not in main
    for jargon in ("SAML", "broker", "pseudoniem", "sessie", " u ", " uw "):
        assert jargon not in main, jargon
    # Back on a working store, the same step goes on.
    assert browser.get(run_page).status == 200


def test_the_oidc_schools_logout_callback_with_the_store_down_is_worded_for_the_logout(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The school's provider sends the student back mid-logout while the store is down: the
    503 says logging out did not work, not that signing in is impossible."""
    browser = Browser()
    with _store_down(monkeypatch):
        page = browser.get(f"{demo.broker_url}/oidc/rp/logout/99XX00?state=run-1")
    assert page.status == 503, page.text[:300]
    assert "Logging out did not work" in page.text, page.text[:600]
    assert "You may still be logged in" in page.text
    assert "Signing in is not possible" not in page.text
