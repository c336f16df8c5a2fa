"""What only a real browser shows around a login (headless Chromium, the demo on two sites): the
live school search by code and with a typo, what Enter does, the Back button from the platform
to the notice, a browser that lost its cookies mid-login, a mis-tapped school, and a returning
student's remembered school (a link straight to the school, and its fallback to the form)."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, Request, expect

from broker.web.discovery import PREPARED_FOR_SECONDS
from tests.browser.conftest import Demo, expect_discovery
from tests.browser.test_demo_login import (
    HEX64,
    SCHOOL_BUTTON,
    SCHOOL_ID,
    broker_cookies,
    expect_received,
    full_login,
    pick_person,
    school_sso,
    start_login,
)
from tests.support.forge import authn_request_id
from tests.support.notice import NOTICE_BUTTON

SERVICE = "Leesplank (demo publisher)"


def school_button(page: Page) -> object:
    return page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)


@pytest.mark.parametrize("typed", [SCHOOL_ID, SCHOOL_ID.lower(), "lyceym", "demo-lyceum"])
def test_the_live_filter_finds_by_code_hyphen_and_typo_and_enter_goes_to_the_first(
    demo: Demo, page: Page, typed: str
) -> None:
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    search = page.locator("#school-search")
    search.fill(typed)
    expect(page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)).to_be_visible()
    expect(page.locator("#no-schools")).to_be_hidden()
    assert not script_errors
    close = page.locator("#close-matches")
    if typed == "lyceym":
        expect(close).to_be_visible()
        # A near match is not "found": the count agrees with the hint above the list.
        expect(page.locator("#school-count")).to_have_text("1 school lijkt erop")
    else:
        expect(close).to_be_hidden()
        expect(page.locator("#school-count")).to_have_text("1 school gevonden")
    address = page.url
    search.press("Enter")
    # Enter goes to the first match (a second Enter would choose it), and stays on the page.
    expect(page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)).to_be_focused()
    assert page.url == address


def test_enter_with_no_match_in_the_list_asks_the_server(demo: Demo, page: Page) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    search = page.locator("#school-search")
    search.fill("zzzzzz")
    expect(page.locator("#no-schools")).to_be_visible()
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/discovery\?login=[^&]+&q=zzzzzz$"))
    expect(page.locator("#no-schools")).to_be_visible()


@pytest.mark.parametrize(
    ("locale", "heading", "link"),
    [
        ("nl-NL", f"Je bent al ingelogd bij {SERVICE}", f"Naar {SERVICE}"),
        ("en-GB", f"You are already signed in to {SERVICE}", f"Go to {SERVICE}"),
    ],
)
def test_back_from_the_platform_to_the_notice_says_already_signed_in(
    demo: Demo,
    new_context: Callable[..., BrowserContext],
    locale: str,
    heading: str,
    link: str,
) -> None:
    page = new_context(locale).new_page()
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    pick_person(page, demo)
    # notice.js has put the notice's own address in the history (what a student's Back finds);
    # a click before that script ran would leave the school's POST there instead.
    expect(page).to_have_url(re.compile("^" + re.escape(demo.broker) + "/notice/"))
    page.locator(NOTICE_BUTTON).click()
    expect(page).to_have_url(demo.leesplank + "/acs")
    page.go_back()
    expect(page).to_have_url(re.compile("^" + re.escape(demo.broker) + "/notice/"))
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    expect(page.locator(".error-code")).to_have_count(0)
    back = page.get_by_role("link", name=link)
    expect(back).to_have_attribute("href", demo.leesplank + "/")
    back.click()
    expect(page).to_have_url(demo.leesplank + "/")


def test_back_from_a_platform_answered_by_the_sso_session_never_asks_to_resend(
    demo: Demo, page: Page
) -> None:
    full_login(page, demo, demo.leesplank)
    # Again: the SSO session answers, and its notice was seen: no page of the broker's at all.
    start_login(page, demo.leesplank)
    expect_received(page, demo.leesplank)
    # The auto-post page either left the history (the browser replaced it) or stayed under the
    # address it put there: never the answer to a request Back would have to send again.
    page.go_back()
    if page.url.startswith(demo.broker):
        # `to`: the ACS URL this login was answered at (its site is the link's).
        expect(page).to_have_url(re.compile(re.escape(demo.broker + "/sent-on/leesplank?to=")))
        expect(page.get_by_role("heading", level=1)).to_have_text(
            f"Je bent al ingelogd bij {SERVICE}"
        )
        expect(page.get_by_role("link", name=f"Naar {SERVICE}")).to_have_attribute(
            "href", demo.leesplank + "/"
        )
    else:
        expect(page).to_have_url(demo.leesplank + "/")


def test_cookies_lost_mid_login_say_to_allow_cookies(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    context.clear_cookies()  # what a browser that blocks the broker's cookies ends up with
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    page.wait_for_load_state()  # a POST's page: both language copies show until its stylesheet
    expect(page.get_by_role("heading", level=1)).to_have_text("Sta cookies toe om in te loggen")
    expect(page.locator("main")).to_contain_text("Sta cookies toe voor deze website (127.0.0.1")


def test_a_mis_tapped_school_is_not_offered_after_back(
    demo: Demo, context: BrowserContext, page: Page
) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    expect(page).to_have_url(school_sso(demo))
    assert "kb_school" not in broker_cookies(context, demo)
    page.go_back()
    expect_discovery(page, demo.broker)
    expect(page.locator("form.remembered")).to_have_count(0)
    # Once the school's login succeeds, the cross-site answer sets it (SameSite=Lax is set on a
    # top-level navigation's response).
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    pick_person(page, demo)
    expect(page.locator(NOTICE_BUTTON)).to_be_visible()
    assert broker_cookies(context, demo)["kb_school"]["value"] == SCHOOL_ID


# -- the remembered school's link -----------------------------------------------------------------
def returning_student(demo: Demo, context: BrowserContext) -> Page:
    """A browser that remembers the demo school from an earlier day (no SSO session left)."""
    context.add_cookies(
        [
            {
                "name": "kb_school",
                "value": SCHOOL_ID,
                "url": demo.broker,
                "httpOnly": True,
                "secure": True,
                "sameSite": "Lax",
            }
        ]
    )
    return context.new_page()


def remembered_link(page: Page) -> Locator:
    return page.get_by_role("link", name=f"Verder met {SCHOOL_BUTTON}", exact=True)


def request_id_of(request: Request) -> str:
    """The ID of the AuthnRequest the school was sent."""
    return authn_request_id(request.url)


def test_a_returning_students_remembered_school_goes_straight_to_the_school(
    demo: Demo, context: BrowserContext
) -> None:
    page = returning_student(demo, context)
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    to_broker: list[str] = []
    page.on(
        "request",
        lambda r: (
            to_broker.append(f"{r.method} {urlsplit(r.url).path}")
            if r.url.startswith(demo.broker)
            else None
        ),
    )
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    link = remembered_link(page)
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", re.compile("^" + re.escape(demo.school + "/sso?")))
    with page.expect_request(lambda r: r.url.startswith(demo.school + "/sso")) as at_school:
        link.click()
    # Nothing of the service's request (the broker page's own address) reaches the school.
    sent = at_school.value.all_headers()
    assert "referer" not in sent, sent
    relay = parse_qs(urlsplit(at_school.value.url).query)["RelayState"][0]
    assert relay and "SAMLRequest" not in relay
    pick_person(page, demo)
    received = expect_received(page, demo.leesplank)
    assert HEX64.fullmatch(received["name_id"]["value"])
    # The broker saw the service's request, the school's answer and the notice: no choice.
    assert not [r for r in to_broker if r.endswith("/discovery")], to_broker
    assert to_broker[0] == "GET /saml/idp/sso" and "POST /saml/sp/acs" in to_broker, to_broker
    assert not script_errors


def test_a_second_tap_after_back_or_an_old_link_never_sends_the_school_a_request_again(
    demo: Demo, context: BrowserContext
) -> None:
    """A school may refuse a request it has seen before or one issued long ago. Back from the
    school to the page, the tap brings a new request (discovery.js posts the form around a
    followed link; a page fetched again has a new one); an old link posts the form too."""
    context.clock.install()
    page = returning_student(demo, context)
    start_login(page, demo.leesplank)
    expect_discovery(page, demo.broker)
    link = remembered_link(page)
    prepared = link.get_attribute("href")
    sent: list[str] = []
    page.on(
        "request",
        lambda r: (
            sent.append(request_id_of(r)) if r.url.startswith(demo.school + "/sso?") else None
        ),
    )
    link.click()
    expect(page).to_have_url(school_sso(demo))
    assert prepared is not None and sent == [authn_request_id(prepared)]

    page.go_back()
    expect_discovery(page, demo.broker)
    remembered_link(page).click()
    expect(page).to_have_url(school_sso(demo))
    assert len(sent) == 2 and sent[1] != sent[0], sent

    page.go_back()
    expect_discovery(page, demo.broker)
    # The student looks away for longer than the link is followed as it is.
    page.clock.fast_forward((PREPARED_FOR_SECONDS + 5) * 1000)
    with page.expect_request(lambda r: r.method == "POST" and r.url == demo.broker + "/discovery"):
        remembered_link(page).click()
    expect(page).to_have_url(school_sso(demo))
    assert len(sent) == 3 and len(set(sent)) == 3, sent
    pick_person(page, demo)
    assert HEX64.fullmatch(expect_received(page, demo.leesplank)["name_id"]["value"])
