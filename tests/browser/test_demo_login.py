"""A student logs in through the running demo in headless Chromium, end to end.

Publisher (localhost) -> broker discovery (127.0.0.1) -> demo school IdP (localhost) -> auto-POST
to the broker ACS (cross-site) -> broker -> auto-POST to the publisher ACS. What only a real
browser can show: the broker's login state survives the cross-site POST from the school.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, expect

from broker.cli.demo import DEMO_SCHOOL_TOWN
from tests.browser.conftest import Demo
from tests.browser.conftest import expect_discovery as expect_discovery_page
from tests.support.notice import continue_past_notice

PAIRWISE_ID = "urn:oasis:names:tc:SAML:attribute:pairwise-id"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
HEX64 = re.compile(r"[0-9a-f]{64}")
SCHOOL_NAME = "Demo Lyceum"
SCHOOL_ID = "99XX00"
# A school's button says its name and, under it, its town: both are the button's name.
SCHOOL_BUTTON = f"{SCHOOL_NAME} {DEMO_SCHOOL_TOWN}"
# Attributes the school sends the broker but no demo policy releases to a publisher.
NEVER_RELEASED = ("mail", "sn", "displayName", "eckId", "nlEduPersonProfileId", "isMemberOf")
Screenshot = Callable[[Page, str], Path]


# -- steps ------------------------------------------------------------------------------------
def school_sso(demo: Demo) -> re.Pattern[str]:
    """The school IdP's login page (reached by the broker's Redirect-binding AuthnRequest)."""
    return re.compile(re.escape(demo.school + "/sso") + r"(\?.*)?$")


def start_login(page: Page, publisher: str) -> None:
    page.goto(publisher + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()


def expect_discovery(page: Page, demo: Demo) -> None:
    expect_discovery_page(page, demo.broker)


def choose_school_by_search(page: Page, demo: Demo, typed: str = "lyc") -> None:
    expect_discovery(page, demo)
    page.locator("#school-search").fill(typed)
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()


def pick_person(page: Page, demo: Demo, display_name: str = "Sanne Jansen") -> None:
    expect(page).to_have_url(school_sso(demo))
    expect(page.get_by_role("heading", name="Demo school: who are you?")).to_be_visible()
    page.get_by_role("button", name=re.compile(re.escape(display_name))).click()


def expect_received(page: Page, publisher: str) -> dict[str, Any]:
    """Waits for the publisher's result page (past the information notice, if it shows);
    returns its /received.json (same browser session)."""
    continue_past_notice(page, publisher + "/acs")
    expect(page).to_have_url(publisher + "/acs")
    expect(page.get_by_role("heading", name=re.compile(r"^What .* received$"))).to_be_visible()
    response = page.request.get(publisher + "/received.json")
    assert response.ok, response.text()
    received: dict[str, Any] = response.json()
    assert page.locator("#name-id-value").inner_text() == received["name_id"]["value"]
    return received


def attributes_by_friendly_name(received: dict[str, Any]) -> dict[str, list[str]]:
    return {a["friendly_name"] or a["name"]: a["values"] for a in received["attributes"]}


def full_login(page: Page, demo: Demo, publisher: str) -> dict[str, Any]:
    start_login(page, publisher)
    choose_school_by_search(page, demo)
    pick_person(page, demo)
    return expect_received(page, publisher)


def broker_cookies(context: BrowserContext, demo: Demo) -> dict[str, Any]:
    return {c["name"]: c for c in context.cookies(demo.broker)}


# -- tests ------------------------------------------------------------------------------------
def test_student_logs_in_through_demo(demo: Demo, page: Page, screenshot: Screenshot) -> None:
    start_login(page, demo.leesplank)

    expect_discovery(page, demo)
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("heading", level=1)).to_have_text("Kies je school")
    page.locator("#school-search").fill("lyc")
    school = page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)
    expect(school).to_be_visible()
    screenshot(page, "01-discovery")
    school.click()

    expect(page).to_have_url(school_sso(demo))
    expect(page.get_by_text(f"{SCHOOL_NAME} ({SCHOOL_ID})")).to_be_visible()
    screenshot(page, "02-school-pick")
    pick_person(page, demo, "Sanne Jansen")

    received = expect_received(page, demo.leesplank)
    screenshot(page, "03-publisher-received")
    name_id = received["name_id"]
    assert name_id["format"] == PERSISTENT
    assert HEX64.fullmatch(name_id["value"]), name_id
    assert name_id["sp_name_qualifier"] == demo.leesplank + "/metadata"
    assert received["issuer"].startswith(demo.broker), received["issuer"]

    attributes = attributes_by_friendly_name(received)
    assert attributes["pairwise-id"] == [f"{name_id['value']}@demo.ketenbroker.example"]
    assert attributes["givenName"] == ["Sanne"]
    assert attributes["eduPersonAffiliation"] == ["student"]
    for name in NEVER_RELEASED:
        assert name not in attributes, f"{name} was released: {attributes}"

    # What the page shows is what the JSON says.
    expect(page.locator("#name-id-value")).to_have_text(name_id["value"])
    table = page.locator("#attributes")
    expect(table).to_contain_text(PAIRWISE_ID)
    expect(table).to_contain_text(f"{name_id['value']}@demo.ketenbroker.example")
    expect(table).to_contain_text("Sanne")
    for hidden in ("Jansen", "sanne.jansen@", "klas-3a", "mail"):
        expect(table).not_to_contain_text(hidden)


def test_remembered_school_and_sso(
    demo: Demo, new_context: Callable[..., BrowserContext], context: BrowserContext
) -> None:
    page = context.new_page()
    leesplank = full_login(page, demo, demo.leesplank)["name_id"]["value"]

    # Same chain, within the SSO session: straight through, no discovery, no school IdP page
    # (every request is recorded, so also a redirect through them would show).
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    start_login(page, demo.rekenroute)
    rekenroute = expect_received(page, demo.rekenroute)
    assert not [u for u in visited if "/discovery" in u or u.startswith(demo.school)], visited
    assert rekenroute["name_id"]["value"] == leesplank
    attributes = attributes_by_friendly_name(rekenroute)
    assert set(attributes) == {"pairwise-id"}, attributes  # no policy: the pseudonym only

    # Another chain: also SSO, but a pseudonym that cannot be linked to the first.
    visited.clear()
    start_login(page, demo.toetsplein)
    toetsplein = expect_received(page, demo.toetsplein)["name_id"]["value"]
    assert not [u for u in visited if "/discovery" in u or u.startswith(demo.school)], visited
    assert HEX64.fullmatch(toetsplein)
    assert toetsplein != leesplank

    # A later visit without the SSO session (only the remembered school survives): discovery
    # offers the remembered school first (a link straight to the school: its request came with
    # the page), and the same student gets the same pseudonym.
    cookies = broker_cookies(context, demo)
    assert cookies["kb_school"]["value"] == SCHOOL_ID
    later = new_context()
    later.add_cookies([cookies["kb_school"]])
    page = later.new_page()
    start_login(page, demo.leesplank)
    expect_discovery(page, demo)
    remembered = page.locator("form.remembered a")
    expect(remembered).to_have_text(f"Verder met {SCHOOL_BUTTON}")
    first_choice = page.locator("main :is(a, button)").first
    expect(first_choice).to_have_text(f"Verder met {SCHOOL_BUTTON}")
    remembered.click()
    pick_person(page, demo)
    assert expect_received(page, demo.leesplank)["name_id"]["value"] == leesplank


def test_cross_site_post_carries_state(demo: Demo, context: BrowserContext) -> None:
    broker_host = urlsplit(demo.broker).hostname
    school_host = urlsplit(demo.school).hostname
    # Different hosts are different sites (ports never are): the school's POST is cross-site.
    assert broker_host == "127.0.0.1"
    assert school_host == "localhost"

    page = context.new_page()
    start_login(page, demo.leesplank)
    choose_school_by_search(page, demo)
    with page.expect_response(demo.broker + "/saml/sp/acs") as acs:
        pick_person(page, demo)  # the school's page auto-POSTs the Response to the broker

    # The POST came from the other site and still carried the broker's login-state cookie, so
    # the broker could open the login record and answer.
    post = acs.value.request
    headers = post.all_headers()
    assert post.method == "POST"
    assert headers["origin"] == demo.school, headers
    assert headers["sec-fetch-site"] == "cross-site", headers  # the browser's own verdict
    assert "__Host-kb_browser=" in headers.get("cookie", ""), (
        f"cookie not sent cross-site: {headers}"
    )
    # 200: the auto-POST page to the publisher; 303: first visit, to the information notice.
    assert acs.value.status in (200, 303), page.locator("main").inner_text()
    received = expect_received(page, demo.leesplank)
    assert HEX64.fullmatch(received["name_id"]["value"])

    cookies = broker_cookies(context, demo)
    for name in ("__Host-kb_browser", "__Host-kb_sso"):
        cookie = cookies[name]
        assert cookie["secure"], cookie
        assert cookie["httpOnly"], cookie
        assert cookie["sameSite"] == "None", cookie
        assert cookie["domain"] == "127.0.0.1", cookie
    # The remembered school is only read on the broker's own pages: Lax is enough there.
    assert cookies["kb_school"]["sameSite"] == "Lax"
    assert cookies["kb_school"]["httpOnly"]
    # Broker cookies never leak to the peers' site.
    assert not [c for c in context.cookies(demo.school) if c["name"].startswith("kb_")]


def test_english_and_keyboard(demo: Demo, page: Page) -> None:
    start_login(page, demo.leesplank)
    expect_discovery(page, demo)
    page.goto(page.url + "&lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose your school")
    expect(page.get_by_label("Search for your school")).to_be_visible()

    # Keyboard only from here: Tab to the search field, type to filter, Enter to choose.
    search = page.locator("#school-search")
    for _ in range(10):
        if search.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(search).to_be_focused()

    school = page.get_by_role("button", name=SCHOOL_BUTTON, exact=True)
    page.keyboard.type("xyz")
    expect(school).to_be_hidden()
    expect(page.locator("#no-schools")).to_be_visible()
    expect(page.locator("#school-count")).to_have_text("No schools found")

    for _ in range(3):
        page.keyboard.press("Backspace")
    page.keyboard.type("demo lyc")
    expect(school).to_be_visible()
    expect(page.locator("#no-schools")).to_be_hidden()
    expect(page.locator("#school-count")).to_have_text("1 school found")

    page.keyboard.press("Enter")  # the search field's Enter moves to the first match
    expect(school).to_be_focused()
    page.keyboard.press("Enter")

    expect(page).to_have_url(school_sso(demo))
    first_person = page.get_by_role("button", name=re.compile("Sanne Jansen"))
    for _ in range(10):
        if first_person.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(first_person).to_be_focused()
    page.keyboard.press("Enter")

    received = expect_received(page, demo.leesplank)
    assert attributes_by_friendly_name(received)["givenName"] == ["Sanne"]
