"""Pages where a student used to be stuck, with real clients against a running demo of its own:
a school whose sign-in page cannot be reached (for now, or for good), a login that expired while
the student chose a school, the school answering a login that was answered already (Back into
the school's page), a platform the school switched off, the school's signed "no" seen again,
and the platform told that the login ended. Each page names the way on, in the student's
language, and once the platform is told, nothing answers it again.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.errors import StoreUnavailable
from broker.core.model import Declaration, OidcUpstream, School
from broker.login.sealed import store_key
from tests.flows.test_operations_endpoints import metrics_text
from tests.flows.test_remembered_link import assert_post_form_only, remembered_form, returning
from tests.security.test_saml_refusals import REQUEST_DENIED, PendingLogin, deliver, forged
from tests.support.client import Browser, Form, Page
from tests.support.forge import SchoolForger, authn_request_id, redirect_message
from tests.support.live import SSO_COOKIE, LiveDemo, OidcPublisher, running_demo
from tests.support.saml_workers import demo_school_forger
from tests.support.store_writes import note_store_writes

UID = "sanne.jansen"
LEESPLANK = "Leesplank (demo publisher)"
DOWN_SCHOOL_ID = "98DD00"
UNSET_SCHOOL_ID = "98HK00"
SWITCHED_OFF = "uitgezet"  # a platform of its own, which the demo school switches off
LOGINS, SETBACKS = "ketenbroker_logins_total", "ketenbroker_login_setbacks_total"


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
    # Or back to the platform, which hears that no school could serve the login.
    back = page.form(f"{demo.broker_url}/back-to-platform")
    assert back.fields == {"login": login_id, "why": "no_school"}

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
    # Its only way on: the main button.
    assert f'<a class="button button--primary" href="{site}/">{back}</a>' in page.text
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
    # The mark is written once the receipt committed, in a write of its own (with the notice's
    # mark), never in the batch that opens the session: see the test below.
    assert writes.batched_among("login-done:", "notice-done:"), writes

    again = browser.post(demo.acs_url, answer)
    assert again.status == 200, again.text[:300]
    assert heading(again) == f"Je bent al ingelogd bij {LEESPLANK}"
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in again.text
    assert not demo.answers_publisher(again) and SSO_COOKIE not in again.cookies_set
    assert "error-code" not in again.text


@pytest.mark.parametrize("undone", [True, False], ids=["receipt failed", "worker killed"])
def test_a_login_whose_receipt_failed_leaves_no_already_signed_in(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch, undone: bool
) -> None:
    """The receipt (the commit point) cannot be filed: a 503 and no answer. The school's same
    answer sent again (the 503 page's "try again", Back into the school's page) is a replay of
    a one-time answer whose login record is used up: refused, the attempt is over ("start
    again"), never "already signed in" of a login that was not answered (docs/security.md,
    "No half-logins"). The same when the worker died waiting for its receipt and undid
    nothing (`undone` False): the mark is written only after the receipt."""
    browser = Browser("en", read_notices=True)
    answer = demo.school_response(browser, "leesplank", UID)

    def unreachable(_content: object) -> None:
        raise StoreUnavailable("registry database: OperationalError")

    with monkeypatch.context() as patched:
        patched.setattr(demo.broker.receipting, "file", unreachable)
        if not undone:
            patched.setattr("broker.web.login_finish._undo_unanswered", lambda *_: None)
        failed = browser.post(demo.acs_url, answer)
    assert failed.status == 503, failed.text[:300]
    assert not demo.answers_publisher(failed) and SSO_COOKIE not in failed.cookies_set

    again = browser.post(demo.acs_url, answer)
    assert again.status == 400, again.text[:300]
    assert "already signed in" not in again.text and "al ingelogd" not in again.text
    assert "took too long or was already used" in again.text
    assert not demo.answers_publisher(again) and SSO_COOKIE not in again.cookies_set
    # A new login from the platform works at once.
    assert demo.answers_publisher(demo.login(browser, "leesplank", UID, deliver=False).final)


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


def test_a_remembered_school_gets_no_prepared_link_to_a_switched_off_platform(
    demo: LiveDemo, switched_off: str
) -> None:
    """The remembered school's prepared link would take the student to sign in at the school
    for a platform it switched off, only to be refused at the answer: no link is prepared, and
    the page's remembered-school button (a POST) is refused before the school."""
    browser = returning(demo, DEMO_SCHOOL_ID, "nl")
    page = browser.get(f"{demo.publishers[SWITCHED_OFF].base_url}/login")
    assert_post_form_only(demo, page, DEMO_SCHOOL_ID)
    form = remembered_form(demo, page)
    refused = browser.post(form.action, {**form.fields, "school": DEMO_SCHOOL_ID})
    assert not any(url.startswith(demo.school_url) for url in browser.history)
    _assert_switched_off_page(demo, refused, switched_off)


# -- 5: the school's sign-in page cannot be reached for now, or not for good ----------------------
def test_try_again_on_a_briefly_unavailable_school_choice_reaches_the_school(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The school choice answered "briefly unavailable" (503: the store out of reach): its
    "Try again" posts the same choice again, and the broker's answer to that is a redirect to
    the school's sign-in page, which the page's form-action must allow (Chromium holds it
    there: tests/browser/test_try_again.py); the page carries the login: not kept."""
    browser = Browser("nl")
    choice = school_choice(demo, browser)
    store = demo.broker.flow.store
    with monkeypatch.context() as down:
        down.setattr(store, "get", _store_down)
        page = browser.post(choice.action, {**choice.fields, "school": DEMO_SCHOOL_ID})
    assert page.status == 503, page.text[:300]
    retry = page.form(f"{demo.broker_url}/discovery")
    assert retry.fields == {**choice.fields, "school": DEMO_SCHOOL_ID}
    assert ">Opnieuw proberen</button>" in page.text
    assert f'href="/discovery?login={choice.fields["login"]}">Kies je school opnieuw.</a>' in (
        page.text
    )
    assert page.response.headers["Content-Security-Policy"].endswith(
        f"form-action 'self' {demo.school_url}"
    )
    assert page.response.headers["Cache-Control"] == "no-store"

    to_school = browser.submit(page, f"{demo.broker_url}/discovery", follow=False)
    assert to_school.status == 303 and (to_school.location or "").startswith(demo.school_url)


def _store_down(*args: object, **kwargs: object) -> None:
    raise StoreUnavailable("the store is out of reach (test)")


@pytest.fixture(scope="module")
def unset_school(demo: LiveDemo) -> str:
    """A SAML school whose metadata the broker does not hold (`school_metadata_missing`)."""
    demo.registry.add_school(
        School(UNSET_SCHOOL_ID, "Halfklaar Lyceum", "https://idp.halfklaar.example/metadata"), ""
    )
    return UNSET_SCHOOL_ID


def test_a_school_that_is_not_set_up_is_not_offered_try_again(
    demo: LiveDemo, unset_school: str
) -> None:
    """Trying again cannot help a school whose setup is missing something: its page says the
    sign-in did not work, without "Try again" (which only a school out of reach for now gets,
    as in the first test)."""
    browser = Browser("nl")
    choice = school_choice(demo, browser)
    page = browser.post(choice.action, {**choice.fields, "school": unset_school})
    assert page.status == 502, page.text[:300]
    assert "Opnieuw proberen" not in page.text
    assert "nu niet bereikbaar" not in page.text
    assert not any(form.action == f"{demo.broker_url}/discovery" for form in page.forms)
    # The ways on: another school for the same login, or back to the platform, which hears
    # that no school could serve it (test_authn_requests.py checks the SAML status).
    login_id = choice.fields["login"]
    assert heading(page) == "Inloggen via je school is nog niet ingesteld"
    # Choosing again once (in each language the page carries): the button, which the step
    # points at, not a link besides.
    assert "<li>Verkeerde school gekozen? Kies hieronder opnieuw.</li>" in page.text
    assert "Kies je school opnieuw.</a>" not in page.text
    assert page.text.count(f'href="/discovery?login={login_id}"') == 2
    assert f'href="/discovery?login={login_id}">Kies je school opnieuw</a>' in page.text
    back = page.form(f"{demo.broker_url}/back-to-platform")
    assert back.fields == {"login": login_id, "why": "no_school"}
    assert f">Terug naar {LEESPLANK}</button>" in page.text
    assert "broker" not in page.text.lower().replace("ketenbroker", "")


def _told(
    demo: LiveDemo, browser: Browser, page: Page, platform: OidcPublisher, mode: str
) -> dict[str, str]:
    """Press the page's "Back to <platform>": the OAuth error the OIDC client receives."""
    told = browser.submit(page, f"{demo.broker_url}/back-to-platform", follow=False)
    if mode == "query":
        assert told.status == 303, told.text[:300]
        sent = urlsplit(told.location or "")
        assert f"{sent.scheme}://{sent.netloc}{sent.path}" == platform.answer_url
        return {k: v[0] for k, v in parse_qs(sent.query).items()}
    assert told.status == 200 and demo.answers_publisher(told), told.text[:300]
    return told.form(platform.answer_url).fields


@pytest.mark.parametrize("mode", ["query", "form_post"])
def test_an_oidc_client_hears_access_denied_when_the_student_goes_back(
    demo: LiveDemo, oidc_platforms: dict[str, OidcPublisher], unset_school: str, mode: str
) -> None:
    """From the school choice (the student went back) and from a school not set up (no school
    could serve): access_denied with a description that says which (OIDC Core 3.1.2.6 and
    RFC 6749 4.1.2.1), in the client's response mode; the school choice's form-action allows
    the query mode's redirect. Once told, the login is over."""
    platform = oidc_platforms[mode]
    browser = Browser("en")
    page = browser.get(f"{platform.base_url}/login")
    assert demo.shows_discovery(page)
    assert f">Back to {platform.id} (test OIDC publisher)</button>" in page.text
    policy = page.response.headers["Content-Security-Policy"]
    assert urljoin(platform.answer_url, "/").rstrip("/") in policy.split()
    error = _told(demo, browser, page, platform, mode)
    assert error["error"] == "access_denied"
    assert "went back without choosing a school" in error["error_description"]
    assert error["state"]

    page = browser.get(f"{platform.base_url}/login")
    choice = next(f for f in page.forms if f.action == f"{demo.broker_url}/discovery")
    failed = browser.post(choice.action, {**choice.fields, "school": unset_school})
    assert failed.status == 502
    error = _told(demo, browser, failed, platform, mode)
    assert error["error"] == "access_denied"
    assert "(reason: no_available_school)" in error["error_description"]
    twice = browser.submit(failed, f"{demo.broker_url}/back-to-platform", follow=False)
    assert twice.status == 400 and twice.location is None


@pytest.mark.parametrize(("mode", "school_id"), [("query", "98RQ00"), ("form_post", "98RF00")])
def test_an_oidc_client_hears_access_denied_after_the_chosen_school_was_removed(
    demo: LiveDemo, oidc_platforms: dict[str, OidcPublisher], mode: str, school_id: str
) -> None:
    """The school left the registry between the school choice's page and the student's choice:
    the page a school not set up gets, "Back to <platform>" among its ways on, and the client
    hears access_denied (no school could serve), as from a school not set up."""
    demo.registry.add_school(
        School(school_id, "Opgeheven College", f"https://idp.{school_id.lower()}.example/md"), ""
    )
    platform = oidc_platforms[mode]
    browser = Browser("en")
    page = browser.get(f"{platform.base_url}/login")
    choice = next(f for f in page.forms if f.action == f"{demo.broker_url}/discovery")
    demo.registry.remove_school(school_id, apply=True)
    failed = browser.post(choice.action, {**choice.fields, "school": school_id})
    assert failed.status == 400, failed.text[:300]
    assert heading(failed) == "Signing in with your school is not set up"
    assert f">Back to {platform.id} (test OIDC publisher)</button>" in failed.text
    assert f'href="/discovery?login={choice.fields["login"]}"' in failed.text
    error = _told(demo, browser, failed, platform, mode)
    assert error["error"] == "access_denied"
    assert "(reason: no_available_school)" in error["error_description"]
    twice = browser.submit(failed, f"{demo.broker_url}/back-to-platform", follow=False)
    assert twice.status == 400 and twice.location is None


# -- 6: the school's signed "no", seen again; the platform told ----------------------------------
@pytest.fixture(scope="module")
def school(demo: LiveDemo) -> SchoolForger:
    return demo_school_forger(demo)


@pytest.fixture(scope="module")
def oidc_platforms(demo: LiveDemo) -> dict[str, OidcPublisher]:
    """OIDC platforms of the demo chain, one per response mode."""
    wants = (Declaration("given_name", "To greet the student."),)
    return {
        mode: demo.add_oidc_publisher(
            f"retry-{mode.replace('_', '-')}",
            "leermiddelen",
            wants,
            released=frozenset({"given_name"}),
            response_mode=mode,
        )
        for mode in ("query", "form_post")
    }


def at_the_school(demo: LiveDemo, browser: Browser, publisher: str = "leesplank") -> PendingLogin:
    """A login from `publisher`, sent to the demo school by the student's choice."""
    choice = school_choice(demo, browser, publisher)
    sent = browser.post(choice.action, {**choice.fields, "school": DEMO_SCHOOL_ID}, follow=False)
    return pending_at_school(demo, browser, sent)


def pending_at_school(demo: LiveDemo, browser: Browser, sent: Page) -> PendingLogin:
    location = sent.location or ""
    assert sent.status == 303 and location.startswith(f"{demo.school_url}/sso"), sent.text[:300]
    _, params = redirect_message(location)
    return PendingLogin(browser, authn_request_id(location), params["RelayState"])


def signed_no(demo: LiveDemo, school: SchoolForger, login: PendingLogin) -> str:
    return school.error_response(
        in_response_to=login.request_id,
        destination=demo.acs_url,
        status=REQUEST_DENIED,
        message="not this account",
        sign=True,
    )


def test_the_schools_signed_no_reloaded_or_answered_late_shows_the_ways_on_again(
    demo: LiveDemo, school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    """After the school's signed "no" the login stays open without that request: a reload of
    the "no" and the school's late answer to it are stale (not "this school is not known"),
    and their page offers the ways on again. "Try again" asks the school for a fresh sign-in
    (ForceAuthn): its own session would answer with the same wrong account."""
    login = at_the_school(demo, Browser("nl"))
    no = signed_no(demo, school, login)
    first = deliver(demo, login, no)
    assert heading(first) == "Je school heeft je niet ingelogd"
    for again in (no, forged(demo, school, login)):
        page = deliver(demo, login, again)
        assert page.status == 400, page.text[:300]
        assert heading(page) == "Deze inlogpoging is voorbij"
        assert "Je school antwoordde op een inlogpoging die al voorbij is." in page.text
        retry = page.form(f"{demo.broker_url}/discovery")
        assert retry.fields == first.form(f"{demo.broker_url}/discovery").fields
        assert f'href="/discovery?login={login.relay_state}">Kies je school opnieuw.</a>' in (
            page.text
        )
        assert page.form(f"{demo.broker_url}/back-to-platform").fields == {
            "login": login.relay_state
        }
        assert f">Terug naar {LEESPLANK}</button>" in page.text
        assert page.response.headers["Cache-Control"] == "no-store"
        assert demo.school_url in page.response.headers["Content-Security-Policy"]
        assert not demo.answers_publisher(page) and SSO_COOKIE not in page.cookies_set
    assert caplog.text.count("refused code=stale_answer ") == 2
    assert "code=unknown_school" not in caplog.text

    to_school = login.browser.submit(first, f"{demo.broker_url}/discovery", follow=False)
    retried = pending_at_school(demo, login.browser, to_school)
    xml, _ = redirect_message(to_school.location or "")
    assert etree.fromstring(xml).get("ForceAuthn") == "true"
    answer = deliver(demo, retried, forged(demo, school, retried))
    assert answer.status == 200 and demo.answers_publisher(answer), answer.text[:300]


@pytest.mark.parametrize("platform", ["saml", "query", "form_post"])
def test_back_to_the_platform_ends_the_login_before_the_platform_is_told(
    demo: LiveDemo,
    school: SchoolForger,
    oidc_platforms: dict[str, OidcPublisher],
    platform: str,
) -> None:
    """The refusal page's "Back to <platform>" goes through the broker, which takes the login
    before it tells the platform: afterwards "Try again" finds no login, and the school's
    answer to a request made before (the student pressed "Try again" first, then went back)
    completes nothing, so the platform never gets a second answer to its request. A SAML
    platform and an OIDC client in form_post mode get the auto-post page; one in the query
    mode a redirect, which the refusal page's form-action allows."""
    publisher = demo.publishers["leesplank"] if platform == "saml" else oidc_platforms[platform]
    browser = Browser("en")
    login = at_the_school(demo, browser, publisher.id)
    page = deliver(demo, login, signed_no(demo, school, login))
    assert page.status == 502, page.text[:300]
    back = page.form(f"{demo.broker_url}/back-to-platform")
    assert back.fields == {"login": login.relay_state}
    assert not demo.answers_publisher(page), "nothing goes to the platform straight from here"
    policy = page.response.headers["Content-Security-Policy"]
    assert urljoin(publisher.answer_url, "/").rstrip("/") in policy.split()
    # "Try again" first: a fresh request at the school, which the student leaves unanswered.
    retried = pending_at_school(
        demo, browser, browser.submit(page, f"{demo.broker_url}/discovery", follow=False)
    )

    told = browser.submit(page, f"{demo.broker_url}/back-to-platform", follow=False)
    if platform == "query":
        assert told.status == 303, told.text[:300]
        sent = urlsplit(told.location or "")
        assert f"{sent.scheme}://{sent.netloc}{sent.path}" == publisher.answer_url
        assert parse_qs(sent.query)["error"] == ["access_denied"]
    else:
        assert told.status == 200 and demo.answers_publisher(told), told.text[:300]
        carried = told.form(publisher.answer_url).fields
        if platform == "saml":
            assert b"status:AuthnFailed" in base64.b64decode(carried["SAMLResponse"])
        else:
            assert carried["error"] == "access_denied"

    # The login is over: "Try again" on the old page does not go to the school again,
    again = browser.submit(page, f"{demo.broker_url}/discovery", follow=False)
    assert again.status == 400 and again.location is None, again.text[:300]
    # the school's answer to the retried request completes nothing,
    late = deliver(demo, retried, forged(demo, school, retried))
    assert late.status == 400 and not demo.answers_publisher(late), late.text[:300]
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    # and "Back" once more (no JavaScript to stop a second click) tells the platform nothing.
    twice = browser.submit(page, f"{demo.broker_url}/back-to-platform", follow=False)
    assert twice.status == 400 and twice.location is None
    assert not demo.answers_publisher(twice)


# -- 7: each login counts once in ketenbroker_logins_total, when it ends -------------------------
def _counts(demo: LiveDemo) -> dict[tuple[str, str, str], float]:
    """Every series of the login counters now: (metric, pairing, outcome or reason)."""
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text(demo.broker_url)):
        for s in family.samples:
            if s.name in (LOGINS, SETBACKS):
                label = s.labels.get("outcome") or s.labels.get("reason", "")
                found[(s.name, s.labels["pairing"], label)] = float(s.value)
    return found


def _grown(
    before: dict[tuple[str, str, str], float], after: dict[tuple[str, str, str], float]
) -> dict[tuple[str, str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


@pytest.mark.parametrize("way_on", ["try_again", "back_to_platform"])
def test_a_login_the_school_refused_counts_once_when_it_ends(
    demo: LiveDemo, school: SchoolForger, way_on: str
) -> None:
    """The school's signed "no" keeps the login open (a setback, not an end), as does a reload
    of it (stale); the login counts once in ketenbroker_logins_total: answered (ok) after
    "Try again", or refused (upstream_status) when "Back" told the platform. A late answer
    after that finds the login over and counts no second end."""
    before = _counts(demo)
    login = at_the_school(demo, Browser("en"))
    no = signed_no(demo, school, login)
    page = deliver(demo, login, no)
    assert page.status == 502, page.text[:300]
    assert deliver(demo, login, no).status == 400  # the reload: stale
    if way_on == "try_again":
        to_school = login.browser.submit(page, f"{demo.broker_url}/discovery", follow=False)
        retried = pending_at_school(demo, login.browser, to_school)
        answer = deliver(demo, retried, forged(demo, school, retried))
        assert answer.status == 200 and demo.answers_publisher(answer), answer.text[:300]
        ended = "ok"
    else:
        told = login.browser.submit(page, f"{demo.broker_url}/back-to-platform", follow=False)
        assert told.status == 200 and demo.answers_publisher(told), told.text[:300]
        late = deliver(demo, login, forged(demo, school, login))
        assert late.status == 400 and not demo.answers_publisher(late), late.text[:300]
        ended = "upstream_status"
    grown = _grown(before, _counts(demo))
    ends = {k: v for k, v in grown.items() if k[0] == LOGINS}
    assert ends == {(LOGINS, "saml_saml", ended): 1}, grown
    assert grown[(SETBACKS, "saml_saml", "upstream_status")] == 1, grown
    assert grown[(SETBACKS, "unknown_saml", "stale_answer")] == 1, grown
