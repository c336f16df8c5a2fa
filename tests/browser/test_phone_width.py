"""Every page a person may open fits a phone 320 CSS px wide (the width of WCAG 2.1's reflow,
1.4.10) without scrolling sideways; and the portal's pages fit a desktop, their tables whole.

Each page is opened at 320x740 with a phone's user agent (Chromium as on Android: touch, the
viewport meta honoured), in English and in Dutch (whose words are longer), with what makes a page
wide: tables of several rows (receipts, a service's history, a publisher's schools), and the long
values that do not break by themselves (entity IDs and redirect URIs, client ids and secrets,
an administrator's long e-mail address, a platform's one-word name). On every page:

- the page is no wider than the window (`scrollWidth <= innerWidth`) and no box in it scrolls
  sideways on its own (a table in an `overflow-x: auto` box is still a page to swipe);
- a table of three or more columns names each cell's column (`data-label`, shown above the value
  when the rows stack, style.css), so a stacked row still says what each value is.

At a desktop's width (1280 and 1024 px) the portal's pages are measured again (a desktop
browser, the same pages and values): the page no wider than the window, no box in it scrolling
sideways (a school's privacy officer reads the receipts and a service's history there), each
table laid out as a table (its header row shown, its cells table cells), as a screen reader
reads it; running text and forms no wider than 40rem, and the header and footer aligned with
the main column, which is wider than the student pages' 40rem. At 800 px (a tablet held
upright) the tables stack as on a phone, and nothing scrolls sideways either.
The student pages come from real logins through the demo; the portal pages from one
administrator per role and language, signed in through the real form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import BrowserContext, Page, ViewportSize, expect

from broker.accounts import totp
from broker.accounts.passwords import hash_password
from broker.certificates import write_pair
from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.core.admins import AdminRole, Publisher
from broker.core.model import ClientAuthMethod, Declaration, Protocol, Service
from broker.demo.publisher_sp import PublisherSpSettings, publisher_sp_metadata
from broker.oidc.registration import new_client
from tests.support.client import Browser as HttpBrowser
from tests.support.live import LiveDemo, running_demo

PHONE: ViewportSize = {"width": 320, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
# The desktop widths a portal page is measured at; from TABLE_WIDTH up its tables are tables.
DESKTOP_WIDTHS = (1280, 1024, 800)
TABLE_WIDTH = 1024
PHONE_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
LANGUAGES = {"en": "en-GB", "nl": "nl-NL"}
PASSWORD = "a long portal password for phones"
LOGIN_BUTTON = "Log in via your school (Ketenbroker)"
SCHOOL_NAME = "Demo Lyceum"
PUBLISHER_ID = "uitgeverij-leermiddelenontwikkeling"
# What makes a page wide: long values without a place to break.
LONG_EMAIL = "functioneelbeheerder.leerlingadministratie@scholengemeenschap-voorbeeld.example"
LONG_ENTITY_ID = (
    "https://leerplatform.uitgeverij-leermiddelenontwikkeling.example/"
    "saml2/serviceprovider/metadata/7f3c9a1e5b2d4c6e8a0b1c2d3e4f5a6b"
)
LONG_CLIENT_ID = "leerplatform-uitgeverij-leermiddelenontwikkeling-client-7f3c9a1e5b2d4c6e"
LONG_REDIRECT = (
    "https://leerplatform.uitgeverij-leermiddelenontwikkeling.example/oauth2/callback/"
    "openidconnect/7f3c9a1e5b2d4c6e8a0b1c2d3e4f5a6b"
)
LONG_SERVICE = "woordenschatoefenplatform"  # a student's platform with a long one-word name
REFUSING_SERVICE = "verplichtenaam"  # requires the given name, which the school does not release
SAML_SERVICE, OIDC_SERVICE = "lesmateriaalbibliotheek", "leerlingvolgsysteem"
DECLARATIONS = (
    Declaration("given_name", "Om de leerling bij de voornaam te begroeten op het startscherm."),
    Declaration("affiliation", "Om docenten de docentenomgeving te tonen en leerlingen de lessen."),
)
NewContext = Callable[..., BrowserContext]
Screenshot = Callable[[Page, str], Path]

# What sticks out, said per page: the page's own extra width, each box that scrolls sideways,
# and the outermost elements reaching past the window's right edge (where to look).
MEASURE = """(width) => {
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const scrolling = [];
  const beyond = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.matches('input, textarea, select, iframe, script, noscript')) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth) {
      scrolling.push(`${name(el)} scrolls ${el.scrollWidth - el.clientWidth}px`);
    }
    // The deepest boxes past the screen's edge: what to make narrower.
    const past = (box) => box.getBoundingClientRect().right + window.scrollX - width;
    if (el.getBoundingClientRect().width && past(el) > 0.5
        && ![...el.children].some((child) => past(child) > 0.5)) {
      const said = `${name(el)} +${Math.round(past(el))}px`;
      if (!beyond.includes(said)) beyond.push(said);
    }
    // Or text running out of its box (a long word in a heading).
    const spill = el.scrollWidth - el.clientWidth;
    if (style.overflowX === 'visible' && el.clientWidth && spill > 0
        && ![...el.children].some((child) => child.scrollWidth > child.clientWidth)) {
      const said = `${name(el)} text +${spill}px`;
      if (!beyond.includes(said)) beyond.push(said);
    }
  }
  return {
    inner: window.innerWidth,
    scroll: document.documentElement.scrollWidth,
    scrolling,
    beyond: beyond.slice(0, 4),
  };
}"""

# Each body cell of a table of three or more columns, and the column it should be labelled with.
LABELS = """() => {
  const unlabelled = [];
  for (const table of document.querySelectorAll('main table')) {
    const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim());
    if (heads.length < 3) continue;
    const cells = [...table.querySelectorAll('tbody tr')].flatMap((row) => [...row.cells]
      .map((cell, i) => [cell, heads[i]]).filter(([cell]) => cell.colSpan === 1));
    const wrong = cells.filter(([cell, head]) => cell.dataset.label !== head).length;
    if (wrong) unlabelled.push(`${wrong} cells of table#${table.id} not labelled by column`);
  }
  return unlabelled;
}"""

DESKTOP_TABLES = """() => [...document.querySelectorAll('main table')].flatMap((table) => {
  const head = table.querySelector('thead');
  const cells = [...table.querySelectorAll('td')];
  const shown = !head || head.getBoundingClientRect().height > 1;
  const laidOut = cells.every((cell) => getComputedStyle(cell).display === 'table-cell');
  return shown && laidOut ? [] : [`table#${table.id} is no table at a desktop's width`];
})"""

# A portal page at a desktop's width: running text and forms (outside the tables and the
# portal's navigation) at most 40rem wide, a readable line; the header's and the footer's
# content edges where the main column's are.
DESKTOP_LAYOUT = """() => {
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize);
  const wide = [...document.querySelectorAll('main :is(p, form, dl, ul, ol)')]
    .filter((el) => !el.closest('table, .portal-nav'))
    .filter((el) => el.getBoundingClientRect().width > 40 * rem + 0.5)
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} `
      + `${Math.round(el.getBoundingClientRect().width)}px wide`);
  const edges = (selector) => {
    const el = document.querySelector(selector);
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return [box.left + parseFloat(style.paddingLeft), box.right - parseFloat(style.paddingRight)];
  };
  const [left, right] = edges('main');
  const askew = ['.site-header .wrap', '.site-footer .wrap'].filter((selector) => {
    const [l, r] = edges(selector);
    return Math.abs(l - left) > 0.5 || Math.abs(r - right) > 0.5;
  }).map((selector) => `${selector} not aligned with main`);
  return [...wide.slice(0, 3), ...askew];
}"""


@dataclass
class Screen:
    """One language's pages measured on a phone (320 px, a phone's browser) or, `phone` false,
    on a desktop (each of DESKTOP_WIDTHS)."""

    live: LiveDemo
    new_context: NewContext
    overflowing: dict[str, str]
    language: str
    phone: bool

    def context(self) -> BrowserContext:
        if not self.phone:
            return self.new_context(LANGUAGES[self.language], viewport=DESKTOP)
        return self.new_context(
            LANGUAGES[self.language],
            viewport=PHONE,
            user_agent=PHONE_AGENT,
            is_mobile=True,
            has_touch=True,
        )

    def check(self, page: Page, name: str) -> None:
        """Measure `page` as it is now; what does not fit is kept under `name`, for one report
        of every page at the end (so a run says all that is wrong, not the first)."""
        page.wait_for_load_state()
        expect(page.locator("html")).to_have_attribute("lang", self.language)
        if self.phone:
            self._keep(name, _sideways(page, PHONE["width"]) + page.evaluate(LABELS))
            return
        for width in DESKTOP_WIDTHS:
            page.set_viewport_size({"width": width, "height": DESKTOP["height"]})
            problems = _sideways(page, width) + page.evaluate(DESKTOP_LAYOUT)
            if width >= TABLE_WIDTH:
                problems += page.evaluate(DESKTOP_TABLES)
            self._keep(f"{name} at {width}px", problems)

    def _keep(self, name: str, problems: list[str]) -> None:
        if problems:
            self.overflowing[f"{self.language} {name}"] = "; ".join(problems)


def _sideways(page: Page, width: int) -> list[str]:
    """What makes `page`, in a window `width` px wide, scroll sideways: the page itself, or a
    box in it."""
    measured: dict[str, Any] = page.evaluate(MEASURE, width)
    # A phone's browser zooms out a page wider than itself (innerWidth grows): measured
    # against the screen's own width too, so that is no way to fit.
    wider = max(measured["scroll"] - measured["inner"], measured["scroll"] - width)
    problems: list[str] = []
    if wider > 0:
        problems.append(f"page {wider}px wider ({', '.join(measured['beyond'])})")
    scrolling: list[str] = measured["scrolling"]
    return problems + scrolling


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("phone-demo")) as demo:
        _wide_registry(demo, tmp_path_factory.mktemp("phone-keys"))
        yield demo


def _wide_registry(live: LiveDemo, keys: Path) -> None:
    """What makes the portal's pages wide: a publisher's SAML service with a long entity ID and
    an OIDC client with a long id and redirect URI, each with a history of declarations and the
    school's choice; the demo school's choice for Leesplank changed three times by an
    administrator with a long address; a student platform with a long one-word name. And a
    platform that requires what the school does not release (a refusal's error page)."""
    registry = live.registry
    registry.accounts.add_publisher(Publisher(PUBLISHER_ID, "Uitgeverij Leermiddelenontwikkeling"))
    sp = PublisherSpSettings(
        base_url="https://leerplatform.uitgeverij-leermiddelenontwikkeling.example",
        entity_id=LONG_ENTITY_ID,
        name="Lesmateriaalbibliotheek",
        key_file=keys / "sp.key",
        cert_file=keys / "sp.crt",
        idp_metadata=(live.broker.saml_entities.idp_metadata(),),
    )
    write_pair(sp.key_file, sp.cert_file, SAML_SERVICE)
    saml = Service(
        SAML_SERVICE,
        "Lesmateriaalbibliotheek",
        LONG_ENTITY_ID,
        "leermiddelen",
        declarations=DECLARATIONS[:1],
        publisher_id=PUBLISHER_ID,
    )
    registry.add_service(saml, publisher_sp_metadata(sp))
    client, _ = new_client((LONG_REDIRECT,), ClientAuthMethod.SECRET_BASIC)
    oidc = Service(
        OIDC_SERVICE,
        "Leerlingvolgsysteem",
        LONG_CLIENT_ID,
        "leermiddelen",
        declarations=DECLARATIONS,
        protocol=Protocol.OIDC,
        oidc=client,
        publisher_id=PUBLISHER_ID,
    )
    registry.add_service(oidc, None)
    beheer = registry.accounts.add_admin(
        LONG_EMAIL, hash_password(PASSWORD), totp.new_secret(), AdminRole.SCHOOL, DEMO_SCHOOL_ID
    )
    author = f"admin:{beheer.id}"
    for service in (SAML_SERVICE, OIDC_SERVICE):
        registry.set_declarations(service, DECLARATIONS, author)
        registry.set_declarations(service, DECLARATIONS[1:], author)
        registry.set_policy(DEMO_SCHOOL_ID, service, frozenset({"affiliation"}), author)
    # A new purpose for the SAML service's attribute: the school's page says what stopped and
    # why (both long purposes), the publisher's schools table that it waits for the school.
    new_purpose = replace(DECLARATIONS[1], purpose=f"{DECLARATIONS[1].purpose} En voor reclame.")
    registry.set_declarations(SAML_SERVICE, (new_purpose,), author)
    for released in ({"given_name"}, {"given_name", "affiliation"}, set()):
        registry.set_policy(DEMO_SCHOOL_ID, "leesplank", frozenset(released), author)
    registry.set_policy(DEMO_SCHOOL_ID, "leesplank", frozenset({"given_name"}), author)
    live.add_publisher(
        LONG_SERVICE, "leermiddelen", DECLARATIONS, released=frozenset({"given_name"})
    )
    required = Declaration("given_name", "Op de oorkonde staat de naam.", required=True)
    live.add_publisher(REFUSING_SERVICE, "leermiddelen", (required,))
    # Receipts for the school's pages: three students, each at each of four platforms.
    for uid in ("daan.devries", "fatima.elamrani", "marieke.bakker"):
        student = HttpBrowser()
        for service in ("leesplank", "rekenroute", "toetsplein", LONG_SERVICE):
            live.login(student, service, uid)


@pytest.fixture(params=list(LANGUAGES))
def phone(
    live: LiveDemo, new_context: NewContext, request: pytest.FixtureRequest
) -> Iterator[Screen]:
    """Measures pages on a phone in each language; at the end, fails with every page that did
    not fit."""
    yield from _measured(Screen(live, new_context, {}, request.param, phone=True))


@pytest.fixture(params=list(LANGUAGES))
def desktop(
    live: LiveDemo, new_context: NewContext, request: pytest.FixtureRequest
) -> Iterator[Screen]:
    """The same on a desktop."""
    yield from _measured(Screen(live, new_context, {}, request.param, phone=False))


AnyScreen = TypeVar("AnyScreen", bound=Screen)  # a Screen or a subclass (test_focus's Keyboard)


def _measured(screen: AnyScreen) -> Iterator[AnyScreen]:
    yield screen
    assert not screen.overflowing, "\n".join(
        f"{page}: {problems}" for page, problems in screen.overflowing.items()
    )


# -- the student's pages ----------------------------------------------------------------------
def _student(phone: Screen) -> Page:
    """A student's phone, on which the broker's answer to a platform and the logout progress
    wait for a tap: their scripts (which move on at once) are not loaded, so those pages can
    be measured. Everything else runs as on any phone."""
    context = phone.context()
    pattern = re.compile(re.escape(phone.live.broker_url) + r"/static/(autopost|logout)\.js")
    context.route(pattern, lambda route: route.abort())
    return context.new_page()


def _log_in(phone: Screen, page: Page, service: str, *, first: bool = False) -> str:
    """A login at `service` up to the platform, measuring the broker's pages on the way;
    returns the notice's address ("" without one)."""
    live = phone.live
    page.goto(live.publishers[service].base_url + "/")
    page.get_by_role("button", name=LOGIN_BUTTON).click()
    if first:
        expect(page.locator("#school-search")).to_be_visible()
        phone.check(page, "discovery")
        page.locator("#school-search").fill("lyc")
        phone.check(page, "discovery, searched")
        page.get_by_role("button", name=f"{SCHOOL_NAME} {DEMO_SCHOOL_TOWN}", exact=True).click()
        page.get_by_role("button", name=re.compile("Sanne Jansen")).click()
    autopost = page.locator("form.autopost button")
    notice = page.locator("[data-notice-continue]")
    expect(notice.or_(autopost)).to_be_visible()
    notice_address = ""
    if notice.is_visible():
        phone.check(page, f"notice ({service})")
        expect(page).to_have_url(re.compile(r".*/notice/[\w-]+$"))  # notice.js puts it there
        notice_address = page.url
        notice.click()
    expect(autopost).to_be_visible()
    phone.check(page, f"answer to the platform ({service})")
    autopost.click()
    expect(page).to_have_url(live.publishers[service].acs_url)
    return notice_address


def test_student_pages_fit_a_phone(phone: Screen) -> None:
    student_pages(phone)


def student_pages(phone: Screen) -> None:
    """Every page of a student's, each given to `phone.check` (test_accessibility.py walks the
    same pages with another check): home, discovery (first without, then with a remembered
    school), the notice, the answer to a platform, my data, the logout pages and errors."""
    live = phone.live
    page = _student(phone)
    for path, name in (("/", "home"), ("/my-data", "my data, start")):
        page.goto(live.broker_url + path)
        phone.check(page, name)

    notice = _log_in(phone, page, LONG_SERVICE, first=True)
    assert notice, "no notice at the first visit"
    page.goto(notice)  # continued past: "already signed in", with a link to the platform
    expect(page.locator("main a.button--primary")).to_be_visible()
    expect(page.locator("[data-notice-continue]")).to_have_count(0)
    phone.check(page, "notice, already continued")
    page.goto(f"{live.broker_url}/sent-on/{LONG_SERVICE}")
    phone.check(page, "already signed in")
    for service in ("leesplank", "rekenroute", "toetsplein"):
        _log_in(phone, page, service)
    _remembered_school(phone, page)
    _refused(phone, page)

    page.goto(live.broker_url + "/my-data")
    page.locator('a[href$="/my-data/sign-in"]').click()
    expect(page).to_have_url(re.compile(r".*/my-data/view/[^/]+$"))
    expect(page.locator("[data-receipt-group]")).to_have_count(4)
    phone.check(page, "my data")
    my_data = page.url

    page.goto(live.broker_url + "/oidc/end_session")
    expect(page.locator("[data-logout-confirm]")).to_be_visible()
    phone.check(page, "log out? (OpenID Connect)")
    for path, name in (("/my-data/view/no-such-view", "error"), ("/no-such-page", "not found")):
        page.goto(live.broker_url + path)
        phone.check(page, name)

    page.goto(my_data)
    page.locator('[data-close-my-data="top"] button').click()  # "Close and log out"
    expect(page.locator("[data-logout-next]")).to_be_visible()
    phone.check(page, "logging out")
    page.locator("[data-logout-next]").click()
    expect(page.locator("[data-logout-result]")).to_be_visible()
    phone.check(page, "logged out")


def _remembered_school(phone: Screen, student: Page) -> None:
    """Discovery on a later visit, after the SSO session (only the remembered school is kept):
    the remembered school offered first."""
    later = phone.context()
    # Playwright types add_cookies' keys Optional, so the Cookie dicts of cookies() do not fit.
    later.add_cookies([c for c in student.context.cookies() if c["name"] == "kb_school"])  # type: ignore[misc]
    page = later.new_page()
    page.goto(phone.live.publishers["leesplank"].base_url + "/")
    page.get_by_role("button", name=LOGIN_BUTTON).click()
    expect(page.locator("form.remembered a")).to_be_visible()
    phone.check(page, "discovery, remembered school")


def _refused(phone: Screen, page: Page) -> None:
    """The error page with a way back: a platform that requires what the school does not
    release, its refusal carried back to the platform by a button."""
    page.goto(phone.live.publishers[REFUSING_SERVICE].base_url + "/")
    page.get_by_role("button", name=LOGIN_BUTTON).click()
    expect(page.locator("main ul.missing")).to_be_visible()
    expect(page.locator("main form.return button")).to_be_visible()
    phone.check(page, "error: not released")


# -- the portal's pages -----------------------------------------------------------------------
SCHOOL = f"/portal/school/{DEMO_SCHOOL_ID}"
SCHOOL_PAGES = {
    "school: services": f"{SCHOOL}/services",
    "school: a service with a history": f"{SCHOOL}/services/leesplank",
    "school: a publisher's service": f"{SCHOOL}/services/{SAML_SERVICE}",
    "school: identity provider": f"{SCHOOL}/identity-provider",
    "school: who receives what": f"{SCHOOL}/overview",
    "school: receipts": f"{SCHOOL}/receipts",
}
PUBLISHER = f"/portal/publisher/{PUBLISHER_ID}/services"
PUBLISHER_PAGES = {
    "publisher: services": PUBLISHER,
    "publisher: a SAML service": f"{PUBLISHER}/{SAML_SERVICE}",
    "publisher: an OIDC client": f"{PUBLISHER}/{OIDC_SERVICE}",
    "publisher: an OIDC client's URIs": f"{PUBLISHER}/{OIDC_SERVICE}/oidc",
    "publisher: register a SAML service": f"{PUBLISHER}/new",
}
OPERATOR_PAGES = {
    "operator: needs attention": "/portal/operator/attention",
    "operator: services": "/portal/operator/services",
    "operator: chains": "/portal/operator/chains",
    "operator: schools": "/portal/operator/schools",
    "operator: a school": f"/portal/operator/schools/{DEMO_SCHOOL_ID}",
    "operator: administrators": "/portal/operator/admins",
}


def _administrator(
    screen: Screen, role: AdminRole, tenant: str | None, pages: dict[str, str]
) -> Page:
    """A new administrator (a TOTP code counts once), signed in on `screen` (a phone or a
    desktop) in `screen.language`, having opened each of `pages` (name: path) and measured it."""
    kind = "phone" if screen.phone else "desktop"
    email = f"{role.value}-{screen.language}@{kind}.example"
    secret = totp.new_secret()
    screen.live.registry.accounts.add_admin(email, hash_password(PASSWORD), secret, role, tenant)
    page = screen.context().new_page()
    page.goto(f"{screen.live.broker_url}/portal/?lang={screen.language}")
    screen.check(page, "portal sign-in")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.locator("#code").fill(totp.code_at(secret, totp.current_step() + 1))
    page.locator("#code").press("Enter")
    expect(page.locator(".portal-nav .sign-out")).to_be_visible()
    for name, path in pages.items():
        response = page.goto(screen.live.broker_url + path)
        assert response is not None and response.ok, (name, response and response.status)
        screen.check(page, name)
    return page


def test_school_pages_fit_a_phone(phone: Screen, screenshot: Screenshot) -> None:
    school_pages(phone, screenshot)


def school_pages(phone: Screen, screenshot: Screenshot | None = None) -> None:
    """A school administrator's pages, the forms' refusals and the portal's error pages."""
    language = phone.language
    page = _administrator(phone, AdminRole.SCHOOL, DEMO_SCHOOL_ID, SCHOOL_PAGES)
    expect(page.locator("#receipts tr[data-receipt]")).not_to_have_count(0)
    if screenshot is not None:
        screenshot(page, f"phone-{language}-school-receipts")
    page.locator("#receipts tr[data-receipt] button code").first.click()
    phone.check(page, "school: one student's receipts")
    page.locator("#identifier").fill("no-such-student@demoschool.example")
    page.locator("#identifier").press("Enter")
    expect(page.locator("#lookup-nothing")).to_be_visible()
    phone.check(page, "school: no receipts for an identifier")
    page.goto(f"{phone.live.broker_url}{SCHOOL}/overview")
    page.locator("#contact").fill("not an address")
    page.locator("#contact").press("Enter")
    phone.check(page, "school: privacy contact refused")
    response = page.goto(f"{phone.live.broker_url}/portal/operator/services")
    assert response is not None and response.status == 403
    phone.check(page, "portal: no access")
    response = page.goto(f"{phone.live.broker_url}/portal/no-such-page")
    assert response is not None and response.status == 404
    phone.check(page, "portal: not found")
    refused = phone.context().new_page()
    refused.goto(f"{phone.live.broker_url}/portal/?lang={language}")
    refused.locator("#email").fill(LONG_EMAIL)
    refused.locator("#password").fill("not the password")
    refused.locator("#code").fill("000000")
    refused.locator("#code").press("Enter")
    expect(refused.locator("#sign-in-refused")).to_be_visible()
    phone.check(refused, "portal sign-in refused")


def test_publisher_pages_fit_a_phone(phone: Screen) -> None:
    publisher_pages(phone)


def publisher_pages(phone: Screen) -> None:
    """A publisher's pages: its services, registering one (refused, then an OIDC client)."""
    language = phone.language
    page = _administrator(phone, AdminRole.PUBLISHER, PUBLISHER_ID, PUBLISHER_PAGES)
    page.locator("#service_id").press("Enter")  # nothing filled in: every problem said
    expect(page.locator(".field-error").first).to_be_visible()
    phone.check(page, "publisher: a SAML service refused")
    page.goto(f"{phone.live.broker_url}{PUBLISHER}/new-oidc")
    phone.check(page, "publisher: register an OIDC client")
    page.locator("#service_id").fill(f"{OIDC_SERVICE}-{language}")
    page.locator("#name").fill(f"Leerlingvolgsysteem ({language})")
    page.locator("#redirect_uris").fill(LONG_REDIRECT)
    page.locator("form button[type=submit].button--primary").click()
    expect(page.locator("#client-secret")).to_be_visible()
    phone.check(page, "publisher: the client secret, once")


def test_operator_pages_fit_a_phone(phone: Screen) -> None:
    operator_pages(phone)


def operator_pages(phone: Screen) -> None:
    """The operator's pages, an invitation made and the page that accepts it, and the question
    before an administrator's account is removed."""
    language = phone.language
    page = _administrator(phone, AdminRole.OPERATOR, None, OPERATOR_PAGES)
    page.locator("#email").fill(f"{language}.{LONG_EMAIL}")
    page.locator("#role").select_option("school")
    page.locator("#tenant_id").fill(DEMO_SCHOOL_ID)
    page.locator("#tenant_id").press("Enter")
    expect(page.locator("#invite-link")).to_be_visible()
    phone.check(page, "operator: an invitation made")
    link = page.locator("#invite-link").inner_text()
    invited = phone.context().new_page()
    invited.goto(f"{link}?lang={language}" if "?" not in link else f"{link}&lang={language}")
    expect(invited.locator("#totp-secret")).to_be_visible()
    phone.check(invited, "portal: accepting an invitation")
    page.goto(phone.live.broker_url + OPERATOR_PAGES["operator: administrators"])
    page.locator('main a[href$="/remove"]').first.click()
    expect(page).to_have_url(re.compile(r".*/admins/\d+/remove$"))
    phone.check(page, "operator: remove an administrator?")


# -- the portal at a desktop's width -----------------------------------------------------------
def test_portal_pages_fit_a_desktop(desktop: Screen, screenshot: Screenshot) -> None:
    """The portal's pages at 1280, 1024 and 800 px: its wide tables (a school's receipts, a
    service's history, "Who receives what", the accounts) whole, its text a readable line."""
    language = desktop.language
    page = _administrator(desktop, AdminRole.SCHOOL, DEMO_SCHOOL_ID, SCHOOL_PAGES)
    page.set_viewport_size(DESKTOP)
    for name in ("school: receipts", "school: a service with a history"):
        page.goto(desktop.live.broker_url + SCHOOL_PAGES[name])
        screenshot(page, f"desktop-{language}-{name.split(': ')[1].replace(' ', '-')}")
    _administrator(desktop, AdminRole.PUBLISHER, PUBLISHER_ID, PUBLISHER_PAGES)
    _administrator(desktop, AdminRole.OPERATOR, None, OPERATOR_PAGES)
    # The student's pages keep their column of 40rem, phone-first, at a desktop's width too.
    page.set_viewport_size(DESKTOP)
    for path in ("/", "/my-data"):
        page.goto(desktop.live.broker_url + path)
        width = page.evaluate("() => document.querySelector('main').getBoundingClientRect().width")
        assert width == 640, (path, width)
