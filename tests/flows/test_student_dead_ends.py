"""Pages where a student used to be stuck, with real clients against a running demo of its own:
a school whose sign-in page cannot be reached, a login that expired while the student chose a
school, the school answering a login that was answered already (Back into the school's page),
and a platform the school switched off. Each page names the way on, in the student's language.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import OidcUpstream, School
from broker.login.sealed import store_key
from tests.support.client import Browser, Form, Page
from tests.support.live import SSO_COOKIE, LiveDemo, running_demo
from tests.support.store_writes import note_store_writes

UID = "sanne.jansen"
LEESPLANK = "Leesplank (demo publisher)"
DOWN_SCHOOL_ID = "98DD00"
SWITCHED_OFF = "uitgezet"  # a platform of its own, which the demo school switches off


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("dead-ends-demo")) as live:
        yield live


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def down_school(demo: LiveDemo) -> str:
    """A school whose OpenID provider does not answer (nothing listens at its issuer)."""
    issuer = f"http://localhost:{_closed_port()}"
    demo.registry.add_school(
        School(
            DOWN_SCHOOL_ID,
            "Onbereikbaar College",
            issuer,
            subject_attribute="sub",
            oidc=OidcUpstream(issuer, "ketenbroker", "secret-of-the-down-school"),
        ),
        "",
    )
    return issuer


def heading(page: Page) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page.text, re.S)
    assert found is not None, page.text[:300]
    return " ".join(found.group(1).split())


def school_choice(demo: LiveDemo, browser: Browser, publisher: str = "leesplank") -> Form:
    """The discovery page's form for a login started at `publisher`."""
    page = browser.get(f"{demo.publishers[publisher].base_url}/login")
    assert demo.shows_discovery(page), page.text[:300]
    return next(f for f in page.forms if f.method == "post" and "login" in f.fields)


# -- 1: the chosen school's sign-in page cannot be reached ----------------------------------------
def test_a_school_whose_sign_in_page_is_down_offers_try_again_and_another_school(
    demo: LiveDemo, down_school: str
) -> None:
    browser = Browser("nl")
    choice = school_choice(demo, browser)
    page = browser.post(choice.action, {**choice.fields, "school": DOWN_SCHOOL_ID})
    assert page.status == 502, page.text[:300]
    assert heading(page) == "De inlogpagina van je school is niet bereikbaar"
    assert "De inlogpagina van je school is nu niet bereikbaar." in page.text
    # Try again: the same login and school, posted to the school choice again.
    retry = page.form(f"{demo.broker_url}/discovery")
    login_id = choice.fields["login"]
    assert retry.fields == {"login": login_id, "school": DOWN_SCHOOL_ID, "service": "leesplank"}
    assert ">Opnieuw proberen</button>" in page.text
    assert f'href="/discovery?login={login_id}">Kies je school opnieuw.</a>' in page.text
    assert page.response.headers["Cache-Control"] == "no-store"
    assert down_school in page.response.headers["Content-Security-Policy"]
    assert "broker" not in page.text.lower().replace("ketenbroker", "")

    # The login stands: trying again finds it (and the school still down), and another school
    # chosen for it completes it.
    again = browser.submit(page, f"{demo.broker_url}/discovery")
    assert again.status == 502 and heading(again) == heading(page)
    listed = browser.get(f"{demo.broker_url}/discovery?login={login_id}")
    assert demo.shows_discovery(listed)
    picker = browser.post(retry.action, {**retry.fields, "school": DEMO_SCHOOL_ID})
    answer = demo.pick(browser, picker, UID)
    assert demo.answers_publisher(answer)


# -- 3: a login that expired while the student chose their school ---------------------------------
@pytest.mark.parametrize(
    ("language", "back", "step"),
    [
        (
            "nl",
            f"Terug naar {LEESPLANK}",
            f"Ga terug naar {LEESPLANK} en log vanaf daar opnieuw in.",
        ),
        ("en", f"Back to {LEESPLANK}", f"Go back to {LEESPLANK} and sign in again from there."),
    ],
)
def test_a_choice_after_the_login_expired_names_the_platform_and_links_to_it(
    demo: LiveDemo, language: str, back: str, step: str
) -> None:
    browser = Browser(language)
    choice = school_choice(demo, browser)
    # The login's lifetime passed while the page stayed open (its record is gone).
    demo.broker.flow.store.delete(store_key("login", choice.fields["login"]))
    page = browser.post(choice.action, {**choice.fields, "school": DEMO_SCHOOL_ID})
    assert page.status == 400, page.text[:300]
    assert step in page.text
    site = demo.publishers["leesplank"].base_url
    assert f'<a class="button" href="{site}/">{back}</a>' in page.text
    assert page.response.headers["Cache-Control"] == "no-store"


def test_an_expired_choice_names_only_a_registered_platform(demo: LiveDemo) -> None:
    browser = Browser("en")
    choice = school_choice(demo, browser)
    demo.broker.flow.store.delete(store_key("login", choice.fields["login"]))
    made_up = {**choice.fields, "school": DEMO_SCHOOL_ID, "service": "no-such-platform"}
    page = browser.post(choice.action, made_up)
    assert page.status == 400
    assert "Go back to the learning platform and sign in again from there." in page.text
    assert "no-such-platform" not in page.text


# -- 3: the school answers a login that was answered already (Back into the school's page) --------
@pytest.mark.parametrize("notice", [False, True], ids=["answered at once", "after the notice"])
def test_the_schools_second_answer_to_an_answered_login_says_already_signed_in(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch, notice: bool
) -> None:
    browser = Browser("nl", read_notices=not notice)
    answer = demo.school_response(browser, "leesplank", UID)
    writes = note_store_writes(demo.broker.flow.store, monkeypatch)
    first = browser.post(demo.acs_url, answer)
    if notice:
        assert "/notice/" in first.text, first.text[:300]
        first = browser.submit(first, f"{demo.broker_url}/notice/", {"continue": "1"})
    assert demo.answers_publisher(first)
    # The mark rides in the batch that answers the login: no round trip of its own.
    assert writes.batched_with_others("login-done:"), writes

    again = browser.post(demo.acs_url, answer)
    assert again.status == 200, again.text[:300]
    assert heading(again) == f"Je bent al ingelogd bij {LEESPLANK}"
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in again.text
    assert not demo.answers_publisher(again) and SSO_COOKIE not in again.cookies_set
    assert "error-code" not in again.text


# -- 4: a platform the school switched off ------------------------------------------------------
@pytest.fixture(scope="module")
def switched_off(demo: LiveDemo) -> str:
    publisher = demo.add_publisher(SWITCHED_OFF, "leermiddelen", ())
    demo.registry.set_policy(DEMO_SCHOOL_ID, SWITCHED_OFF, frozenset(), "test", active=False)
    service = demo.registry.service(SWITCHED_OFF)
    assert service is not None
    return publisher.acs_url


def _assert_switched_off_page(demo: LiveDemo, page: Page, acs_url: str) -> None:
    assert page.status == 403, page.text[:300]
    service = demo.registry.service(SWITCHED_OFF)
    assert service is not None
    assert heading(page) == f"Je school heeft {service.name} uitgezet"
    assert "Opnieuw inloggen helpt niet: alleen je school kan het weer aanzetten." in page.text
    # No "if it keeps happening": asking the school is the one step.
    assert "Blijft het misgaan" not in page.text
    # The platform is told, by the page's button: a signed RequestDenied.
    told = base64.b64decode(page.form(acs_url).fields["SAMLResponse"])
    assert b"status:Responder" in told and b"status:RequestDenied" in told
    assert f">Terug naar {service.name}</button>" in page.text


def test_a_switched_off_platform_is_refused_before_the_school_and_told(
    demo: LiveDemo, switched_off: str
) -> None:
    browser = Browser("nl")
    choice = school_choice(demo, browser, SWITCHED_OFF)
    page = browser.post(choice.action, {**choice.fields, "school": DEMO_SCHOOL_ID})
    # Refused before the student signs in at the school for nothing.
    assert not any(url.startswith(demo.school_url) for url in browser.history)
    _assert_switched_off_page(demo, page, switched_off)


def test_a_switched_off_platform_is_refused_from_an_sso_session_and_told(
    demo: LiveDemo, switched_off: str
) -> None:
    browser = Browser("nl")
    assert demo.answers_publisher(demo.login(browser, "leesplank", UID, deliver=False).final)
    page = browser.get(f"{demo.publishers[SWITCHED_OFF].base_url}/login")
    _assert_switched_off_page(demo, page, switched_off)
