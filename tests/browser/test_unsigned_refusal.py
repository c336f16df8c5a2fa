"""A school says no without signing it, and the student tries again (headless Chromium, the demo
on two sites).

ADFS and Entra ID sign only the assertion by default, so their "no" (a cancel, a denying access
policy) reaches the broker as an unsigned error Response: the broker ends nothing and shows the
student a page with "Try again" (web/unsigned_refusal.py). That button posts to /discovery,
which answers with a redirect to the school's sign-in page; Chromium holds such a redirect to
the page's CSP form-action, so only a real browser shows that the page lets the student through.

The demo school signs everything, so the test plays the school's "no": the school's own answer
page (its auto-POST to the broker) is let through with an unsigned AuthnFailed Response in
place of the signed one. The demo IdP itself is left as it is.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from playwright.sync_api import ConsoleMessage, Page, Response, Route, expect

from broker.certificates import write_pair
from broker.saml.entities import ACS_PATH
from tests.browser.conftest import Demo
from tests.browser.test_demo_login import (
    HEX64,
    attributes_by_friendly_name,
    choose_school_by_search,
    expect_received,
    pick_person,
    school_sso,
    start_login,
)
from tests.browser.test_double_submit import wait_until
from tests.support.forge import SchoolForger, authn_request_id, redirect_message

AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
SAML_RESPONSE_FIELD = re.compile(r'name="SAMLResponse" value="([^"]+)"')


@dataclass
class SchoolSaysNo:
    """Routes the demo school's answer page (POST /sso/pick) while `refusing`: the school's
    page and its auto-POST stay, its signed Response is swapped for an unsigned AuthnFailed to
    the same request. The school's StatusMessage never reaches the student's page."""

    forger: SchoolForger
    acs_url: str
    refusing: bool = True
    answered: list[str] = field(default_factory=list)  # InResponseTo of each "no"

    def handle(self, route: Route) -> None:
        if not self.refusing or route.request.method != "POST":
            route.continue_()
            return
        real = route.fetch()
        page = real.text()
        found = SAML_RESPONSE_FIELD.search(page)
        assert found, page[:500]
        signed = html.unescape(found.group(1))
        in_response_to = etree.fromstring(base64.b64decode(signed)).get("InResponseTo")
        assert in_response_to, "the school's answer names no request"
        unsigned = self.forger.error_response(
            in_response_to=in_response_to,
            destination=self.acs_url,
            status=AUTHN_FAILED,
            message="the student cancelled",
            sign=False,
        )
        self.answered.append(in_response_to)
        route.fulfill(response=real, body=page.replace(found.group(1), unsigned))


def unsigned_school(broker: str, school: str, page: Page, folder: Path) -> SchoolForger:
    """The demo school's entity (at `school`, the broker at `broker`), as far as an unsigned
    message goes: the key is a stranger's and never used (the demo's own key stays with the
    demo)."""
    key, cert = folder / "unused.key", folder / "unused.crt"
    write_pair(key, cert, "unused")
    sp_metadata = page.request.get(broker + "/saml/sp/metadata")
    assert sp_metadata.ok, sp_metadata.status
    return SchoolForger(school + "/metadata", key, cert, sp_metadata.text())


def request_at_school(page: Page) -> tuple[str, str]:
    """(AuthnRequest ID, RelayState) of the broker's request on the school's sign-in page."""
    _, params = redirect_message(page.url)
    return authn_request_id(page.url), params["RelayState"]


def school_says_no_to(page: Page, demo: Demo, school: SchoolSaysNo, request_id: str) -> None:
    """On the school's sign-in page: the student picks Sanne, the school answers `request_id`
    with an unsigned "no", and the broker shows the student's page for it (502)."""
    with page.expect_response(demo.broker + ACS_PATH) as acs:
        pick_person(page, demo)
    assert school.answered[-1] == request_id
    refusal = acs.value
    assert refusal.status == 502, refusal.status
    assert refusal.request.headers["origin"] == demo.school  # the school's own auto-POST
    assert "form-action 'self' " + demo.school in refusal.headers["content-security-policy"]
    # The page carries its content in both languages, the other hidden by the stylesheet: until
    # that has loaded (a busy machine) both headings are there.
    page.wait_for_load_state()
    expect(page.get_by_role("heading", level=1)).to_have_text("Je school heeft je niet ingelogd")


def csp_violations_of(page: Page) -> list[str]:
    """The Content-Security-Policy violations Chromium reports on `page` from now on."""
    violations: list[str] = []

    def note_csp(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", note_csp)
    return violations


def try_again_reaches_the_school(page: Page, demo: Demo, csp_violations: list[str]) -> None:
    """ "Try again": the broker sends the same login to the school with a fresh request, by a
    redirect that the page's form-action must allow. A blocked redirect does not navigate,
    so wait for either outcome."""
    retries: list[Response] = []
    page.on(
        "response", lambda r: retries.append(r) if r.url == demo.broker + "/discovery" else None
    )
    page.get_by_role("button", name="Opnieuw proberen").click()
    at_school = school_sso(demo)
    wait_until(page, lambda: bool(csp_violations or at_school.match(page.url)))
    assert csp_violations == []
    expect(page).to_have_url(at_school)
    assert [r.status for r in retries] == [303]


def test_try_again_after_the_schools_unsigned_no_signs_the_student_in(
    demo: Demo, page: Page, tmp_path: Path
) -> None:
    csp_violations = csp_violations_of(page)
    school = SchoolSaysNo(
        unsigned_school(demo.broker, demo.school, page, tmp_path), demo.broker + ACS_PATH
    )
    page.route(demo.school + "/sso/pick", school.handle)

    # A login from Leesplank; the school answers "no" without signing it.
    start_login(page, demo.leesplank)
    choose_school_by_search(page, demo)
    first_request, login_id = request_at_school(page)
    school_says_no_to(page, demo, school, first_request)

    # The student's page, in Dutch (the browser's language): the school did not sign them in.
    main = page.locator("main")
    expect(main).to_contain_text(
        "De inlogdienst van je school antwoordde dat het inloggen niet is gelukt."
    )
    expect(main).not_to_contain_text("the student cancelled")  # the school's own words
    expect(page.get_by_role("link", name="Kies je school opnieuw.")).to_have_attribute(
        "href", f"/discovery?login={login_id}"
    )

    # Back leads to the school's sign-in page by GET: no "resend the form?" on the way (the
    # school's auto-POST page left no entry of its own). The school says no once more.
    back = page.go_back()
    assert back is not None and back.request.method == "GET" and back.status == 200
    expect(page).to_have_url(school_sso(demo))
    assert request_at_school(page) == (first_request, login_id)
    school_says_no_to(page, demo, school, first_request)

    # "Try again", past the page's form-action to the school with a fresh request.
    school.refusing = False
    try_again_reaches_the_school(page, demo, csp_violations)
    second_request, same_login = request_at_school(page)
    assert same_login == login_id
    assert second_request != first_request

    # This time the school signs the student in, and Leesplank gets the login it started.
    pick_person(page, demo)
    received = expect_received(page, demo.leesplank)
    assert HEX64.fullmatch(received["name_id"]["value"]), received["name_id"]
    assert attributes_by_friendly_name(received)["givenName"] == ["Sanne"]
    assert school.answered == [first_request, first_request], "the last answer was the school's"
    assert csp_violations == []
