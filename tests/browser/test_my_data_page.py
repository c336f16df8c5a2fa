"""The my-data page as a child on a phone, a parent and the next student at a shared laptop see
it, in headless Chromium (Dutch, 360 px): "Close and log out" leaves nothing to open without
the school's sign-in; a long history shows every platform with its true count, the platforms of
long ago folded under "Eerder", the close button at the top too and the student's code folded
under "Vragen?"; the empty page says so once.

Its own demo (tests/support/live.py) in its own folder: the receipts it files touch no other
test, and each test uses its own demo student.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import UpstreamIdentity
from tests.browser.conftest import expect_discovery
from tests.support.live import LiveDemo, running_demo
from tests.support.receipts import file_receipt

SCHOOL = "Demo Lyceum"
NewContext = Callable[..., BrowserContext]
DAY = 24 * 3600


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("my-data-demo")) as demo:
        yield demo


@pytest.fixture
def phone(new_context: NewContext) -> Page:
    """A Dutch phone: 360 px wide, its own cookies."""
    context = new_context(locale="nl-NL", viewport={"width": 360, "height": 740})
    return context.new_page()


def _pick(page: Page, live: LiveDemo, person: str) -> None:
    """The school's sign-in: the school chosen on the discovery page, then the demo person."""
    expect_discovery(page, live.broker_url)
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=re.compile(SCHOOL)).first.click()
    page.get_by_role("button", name=re.compile(re.escape(person))).click()


def _login_at_leesplank(page: Page, live: LiveDemo, person: str) -> None:
    page.goto(live.publishers["leesplank"].base_url + "/")
    page.get_by_role("button", name=re.compile("Log in|Inloggen")).first.click()
    _pick(page, live, person)
    notice = page.locator("[data-notice-continue]")
    expect(notice).to_be_visible()
    # The my-data link opens a new tab, and says so.
    expect(page.locator("[data-my-data-link]")).to_have_text(
        "Open mijn gegevenspagina (opent in een nieuw tabblad)"
    )
    notice.click()
    expect(page.locator("#name-id-value")).to_be_visible()


def _open_my_data(page: Page, live: LiveDemo) -> None:
    page.goto(live.broker_url + "/my-data")
    expect(page.locator("main")).to_contain_text(
        "Lukt inloggen niet? Je school kan dit overzicht ook voor je opzoeken."
    )
    page.get_by_role("link", name="Inloggen met je schoolaccount").click()


def _fits(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_close_and_log_out_leaves_nothing_to_open_without_the_school(
    live: LiveDemo, phone: Page
) -> None:
    _login_at_leesplank(phone, live, "Fatima El Amrani")
    _open_my_data(phone, live)  # the SSO session answers: no school sign-in
    expect(phone).to_have_url(re.compile(r"/my-data/view/[^/]+$"))
    view_url = phone.url
    # The main action, at the top of the page too (in the first screen of a phone).
    top = phone.locator('[data-close-my-data="top"] button')
    expect(top).to_have_text("Sluiten en uitloggen")
    expect(top).to_be_in_viewport()
    expect(phone.get_by_role("button", name="Overal uitloggen")).to_have_count(0)
    _fits(phone)
    top.click()
    expect(phone).to_have_url(re.compile(r"/logout/[^/]+/done$"))
    expect(phone.locator("main")).to_contain_text("Je bent uitgelogd")
    expect(phone.locator("body")).not_to_contain_text("uitgelogd bij Ketenbroker")
    # The next student at the laptop presses the main button: the school asks who it is.
    _open_my_data(phone, live)
    expect_discovery(phone, live.broker_url)
    # The first student's address from the history: calm words, no data, no error code.
    phone.goto(view_url)
    expect(phone.locator("[data-my-data-gone]")).to_have_text(
        "Deze gegevens zijn gesloten. Wil je ze weer zien? Log opnieuw in."
    )
    expect(phone.locator("main")).not_to_contain_text("Leesplank")
    expect(phone.locator(".error-code")).to_have_count(0)


def test_a_long_history_shows_every_platform_on_a_phone(live: LiveDemo, phone: Page) -> None:
    """Years of daily logins: more receipts than one read of 500 held. Every platform shows,
    with its true count; those of long ago under "Eerder"."""
    school = live.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    daan = UpstreamIdentity(DEMO_SCHOOL_ID, live.school_subject("daan.devries"))
    now = int(time.time())
    file_receipt(live.broker, school, "toetsplein", daan, issued_at=now - 300 * DAY)
    file_receipt(live.broker, school, "toetsplein", daan, issued_at=now - 299 * DAY)
    for i in range(520):
        file_receipt(live.broker, school, "leesplank", daan, issued_at=now - 60 * DAY + i * 600)
    _open_my_data(phone, live)
    _pick(phone, live, "Daan de Vries")  # a fresh school login: no session to log out of
    expect(phone).to_have_url(re.compile(r"/my-data/view/[^/]+$"))
    top = phone.locator('[data-close-my-data="top"] button')
    expect(top).to_have_text("Mijn gegevens sluiten")
    expect(top).to_be_in_viewport()
    # A first tap near the top is not meant to close: the main button is the one at the end.
    expect(top).not_to_have_class(re.compile(r"button--primary"))
    expect(phone.locator('[data-close-my-data="end"] button')).to_have_class(
        re.compile(r"\bbutton--primary\b")
    )
    recent = phone.locator("[data-receipts] [data-platform]")
    expect(recent).to_have_count(1)
    lees = recent.first
    expect(lees.locator("[data-service]")).to_have_text("Leesplank (demo publisher)")
    expect(lees.locator("[data-when]")).to_contain_text(
        re.compile(r"^520 keer, het laatst op \d{1,2} \w+ om \d{2}:\d{2}")
    )
    # The counts are of the receipts kept (`receipts prune`): "since", never "the first time".
    expect(lees.locator("[data-when]")).to_contain_text("Geteld sinds")
    expect(lees.locator("[data-when]")).not_to_contain_text("eerste keer")
    expect(phone.locator("[data-counted-since]")).to_contain_text(
        re.compile(r"^Je inlogs worden geteld sinds \d{1,2} \w+( \d{4})? om \d{2}:\d{2}\.$")
    )
    # Why: the publisher's declared purpose under what the platform got.
    expect(lees.locator(".purpose").first).to_contain_text(re.compile(r"^Waarom: "))
    # Toetsplein, used once ten months ago, is there, folded under "Eerder".
    earlier = phone.locator("details[data-earlier]")
    expect(earlier.locator("summary")).to_have_text("Eerder")
    toets = earlier.locator("[data-platform]")
    expect(toets).to_have_count(1)
    expect(toets).to_be_hidden()
    earlier.locator("summary").click()
    expect(toets.locator("[data-service]")).to_have_text("Toetsplein (demo exam platform)")
    expect(toets.locator("[data-when]")).to_have_text(re.compile(r"^2 keer, het laatst op "))
    # Counted since the page's own date: said once, above, not again on the card.
    expect(toets.locator("[data-when]")).not_to_contain_text("Geteld sinds")
    expect(toets.locator("[data-attributes]").first).to_be_visible()
    # The student's code: at the end, folded, under "Vragen?".
    codes = phone.locator("details[data-student-codes]")
    expect(codes.locator("[data-student-code]").first).to_be_hidden()
    codes.locator("summary").click()
    expect(codes).to_contain_text(
        "Vraagt je school om een code om je gegevens op te zoeken? Geef deze:"
    )
    expect(codes.locator("[data-student-code]").first).to_have_text(re.compile(r"^[0-9a-f]{16}$"))
    questions = phone.get_by_role("heading", name="Vragen?")
    assert questions.bounding_box()["y"] < codes.bounding_box()["y"]  # type: ignore[index]
    # A parent who disagrees reads the school's address, and what to do.
    expect(phone.locator("main")).to_contain_text(
        "Vind je dat een platform iets niet hoort te krijgen? Je school beslist dat. "
        "Mail privacy@demo-school.example en noem het platform."
    )
    text = phone.locator("main").inner_text()
    for word in ("pseudoniem", "attribuut", "broker", "SAML", "\u00d7"):
        assert word.lower() not in text.lower(), word
    _fits(phone)


def test_the_empty_page_says_once_that_nothing_was_shared(live: LiveDemo, phone: Page) -> None:
    _open_my_data(phone, live)
    _pick(phone, live, "Marieke Bakker")
    expect(phone).to_have_url(re.compile(r"/my-data/view/[^/]+$"))
    expect(phone.locator(".lead")).to_have_text(
        "Je hebt nog bij geen enkel leerplatform ingelogd via je school."
    )
    expect(phone.locator("[data-platform]")).to_have_count(0)
    expect(phone.locator("main")).not_to_contain_text("geheim nummer dat bij jou hoort")
    expect(
        phone.get_by_role("heading", name="Wat je school deelt als je deze platforms gebruikt")
    ).to_be_visible()
    _fits(phone)
