"""The language a student chose holds when the school answers, in headless Chromium.

In a Dutch browser the student picks "English" on the school-choice page. The school's answer is
a cross-site POST to the broker's ACS, which leaves the language cookie behind (SameSite=Lax):
the login record carries the choice instead (i18n.py), so the notice and an error at the ACS
come in English. An error page answering that POST has no address to fetch again; it carries
its Dutch copy, and the language switch shows it in place, without a request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from broker.cli.demo import DEMO_SCHOOL_TOWN
from broker.core.model import Declaration
from broker.saml.entities import ACS_PATH
from tests.browser.conftest import expect_discovery
from tests.support.live import LiveDemo, Publisher, running_demo

LOGIN_BUTTON = "Log in via your school (Ketenbroker)"
SCHOOL_BUTTON = f"Demo Lyceum {DEMO_SCHOOL_TOWN}"
MISSING_EN = "Your school has not released what this platform requires."
MISSING_NL = "Je school deelt niet wat dit platform nodig heeft."


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("language-demo")) as demo:
        yield demo


def _publisher(live: LiveDemo, service_id: str, *, released: bool = True) -> Publisher:
    """A publisher that needs the first name; the school releases it, or (not `released`) does
    not, which the broker finds only in the school's answer (RequiredAttributeMissing)."""
    return live.add_publisher(
        service_id,
        "leermiddelen",
        (Declaration("given_name", "Om je bij je voornaam te groeten.", required=True),),
        released=frozenset({"given_name"}) if released else frozenset(),
    )


def _english_at_discovery_then_school(page: Page, live: LiveDemo, publisher: Publisher) -> None:
    """A Dutch browser: the login's discovery page, "English", the school, a student."""
    page.goto(publisher.base_url + "/")
    page.get_by_role("button", name=LOGIN_BUTTON).click()
    expect_discovery(page, live.broker_url)
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose your school")
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(live.school_url) + r"/sso(\?.*)?$"))
    page.get_by_role("button", name=re.compile("Sanne Jansen")).click()


def test_the_notice_after_the_schools_answer_speaks_the_chosen_language(
    live: LiveDemo, page: Page
) -> None:
    publisher = _publisher(live, "taalkeuze")
    _english_at_discovery_then_school(page, live, publisher)
    button = page.locator("[data-notice-continue]")
    expect(button).to_have_text("Continue to taalkeuze (test publisher)")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_an_error_answering_the_schools_post_speaks_it_and_switches_in_place(
    live: LiveDemo, page: Page
) -> None:
    publisher = _publisher(live, "voornaamnodig", released=False)
    _english_at_discovery_then_school(page, live, publisher)
    main = page.locator("main")
    expect(main.get_by_text(MISSING_EN)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    address = page.url
    assert address.startswith(live.broker_url + ACS_PATH), address
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    # The switch works on this page that answered a POST: the Dutch copy, in place.
    page.get_by_role("link", name="Nederlands").click()
    expect(main.get_by_text(MISSING_NL)).to_be_visible()
    expect(main.get_by_text(MISSING_EN)).to_be_hidden()
    expect(page.locator("#in-nl")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("link", name="Nederlands")).to_have_css("font-weight", "600")
    expect(main.get_by_text("Voornaam", exact=True)).to_be_visible()  # what is missing
    # The header's site name and the footer switch with it.
    brand = page.locator("header .brand")
    expect(brand.get_by_text("Inloggen met je school")).to_be_visible()
    expect(brand.get_by_text("Sign in with your school")).to_be_hidden()
    footer = page.locator("footer")
    expect(footer.get_by_text("Je logt hier in met je schoolaccount.", exact=False)).to_be_visible()
    expect(footer.get_by_text("You sign in here", exact=False)).to_be_hidden()
    # The focus moves to the copy shown, a block of text: no frame around it all.
    shown = page.locator("#in-nl")
    expect(shown).to_be_focused()
    expect(shown).to_have_css("box-shadow", "none")
    expect(shown).to_have_css("outline-style", "none")
    # Its button still carries the refusal back to the platform, in Dutch now.
    expect(main.get_by_role("button", name=re.compile("^Terug naar"))).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(main.get_by_text(MISSING_EN)).to_be_visible()
    expect(main.get_by_text(MISSING_NL)).to_be_hidden()
    assert page.url.split("#")[0] == address
    assert requests == [], requests
