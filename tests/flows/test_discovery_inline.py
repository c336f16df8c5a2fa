"""The discovery page in the very response to a login that arrived by GET (SAML Redirect binding,
OIDC authorize by GET, the my-data sign-in): no redirect to `GET /discovery` first. Its links
(language switch, search) and its school form lead to `/discovery?login=…`, never back to the
login's start. A login that arrived by POST keeps the 303 to `GET /discovery`
(test_authn_requests.py, test_oidc_provider_checks.py)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, OidcPublisher

BROWSER_COOKIE = "__Host-kb_browser"
UID = "sanne.jansen"


class _Links(HTMLParser):
    """The language switch's links: (hreflang, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.switch: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and "hreflang" in values:
            self.switch[values["hreflang"]] = values["href"]


def language_switch(page: Page) -> dict[str, str]:
    links = _Links()
    links.feed(page.text)
    return links.switch


def login_id(demo: LiveDemo, page: Page) -> str:
    """The login the page's school form carries (and the search form: the same one)."""
    ids = {f.fields["login"] for f in page.forms if f.action == f"{demo.broker_url}/discovery"}
    assert len(ids) == 1, ids
    return ids.pop()


def form_action(page: Page) -> list[str]:
    policy = page.response.headers["Content-Security-Policy"]
    directive = next(d for d in policy.split(";") if d.strip().startswith("form-action"))
    return directive.split()[1:]


def assert_inline_discovery(demo: LiveDemo, browser: Browser, page: Page, start: str) -> str:
    """`page` is the discovery page, answered at `start` itself (200, no redirect, so no
    `GET /discovery`), set up as `GET /discovery` sets it up; returns its login id."""
    assert page.status == 200, page.text[:500]
    assert page.url.startswith(start), page.url
    assert not [u for u in page.visited if u.startswith(f"{demo.broker_url}/discovery")]
    assert demo.shows_discovery(page)
    # A fresh browser: the cookie that binds the login to it came with this first response.
    assert BROWSER_COOKIE in page.cookies_set
    assert page.response.headers["Cache-Control"] == "no-store"
    login = login_id(demo, page)
    # The same policy as `GET /discovery` sends for this login: the shown schools' sign-in
    # origins, so the browser follows the school choice's redirect to the school.
    school = urlsplit(demo.school_url)
    assert f"{school.scheme}://{school.netloc}" in form_action(page)
    at_discovery = browser.get(f"{demo.broker_url}/discovery?login={login}")
    assert at_discovery.status == 200, at_discovery.text[:500]
    policy = "Content-Security-Policy"
    assert page.response.headers[policy] == at_discovery.response.headers[policy]
    # The school form POSTs the choice to /discovery; the no-JS search GETs /discovery.
    choice = page.form(f"{demo.broker_url}/discovery")
    assert choice.fields["login"] == login and ("school", "99XX00") in choice.buttons
    search = next(f for f in page.forms if f.method == "get")
    assert search.action == f"{demo.broker_url}/discovery" and search.fields == {"login": login}
    # The language switch fetches this login's page again, never the start's address.
    switch = language_switch(page)
    assert set(switch) == {"nl", "en"}
    for language, href in switch.items():
        parts = urlsplit(href)
        assert parts.path == "/discovery" and not parts.netloc, href
        assert parse_qs(parts.query) == {"login": [login], "lang": [language]}, href
    return login


def assert_completes(demo: LiveDemo, browser: Browser, page: Page, publisher: str) -> None:
    """Choose the school on `page`; the SAML publisher gets the student's chain pseudonym."""
    answer = demo.pick(browser, demo.choose_school(browser, page), UID)
    delivered = browser.submit(answer, demo.publishers[publisher].acs_url)
    assert delivered.status == 200, delivered.text[:500]
    received = demo.received(browser, publisher)
    assert received["name_id"]["value"] == demo.expected_pseudonym(UID, "leermiddelen")


def test_a_redirect_binding_request_gets_the_discovery_page_in_its_response(
    demo: LiveDemo,
) -> None:
    browser = Browser()
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    # The demo publisher sends its AuthnRequest by the Redirect binding (a GET).
    login = assert_inline_discovery(
        demo, browser, page, f"{demo.broker_url}/saml/idp/sso?SAMLRequest="
    )

    # Its links work: the other language and the search show the same login's page.
    english = browser.get(f"{demo.broker_url}{language_switch(page)['en']}")
    assert english.status == 200 and '<html lang="en"' in english.text
    assert login_id(demo, english) == login
    dutch = browser.get(f"{demo.broker_url}{language_switch(english)['nl']}")
    assert dutch.status == 200 and '<html lang="nl"' in dutch.text
    assert "Kies je school" in dutch.text
    found = browser.get(f"{demo.broker_url}/discovery?login={login}&q=lyc")
    assert found.status == 200 and login_id(demo, found) == login
    assert ("school", "99XX00") in found.form(f"{demo.broker_url}/discovery").buttons

    # Choosing the school on the inline page completes the login at the publisher.
    assert_completes(demo, browser, page, "leesplank")


def test_reloading_the_inline_page_starts_the_login_afresh_and_it_completes(
    demo: LiveDemo,
) -> None:
    browser = Browser()
    first = browser.get(f"{demo.publishers['rekenroute'].base_url}/login")
    start = f"{demo.broker_url}/saml/idp/sso?"
    first_login = assert_inline_discovery(demo, browser, first, start)
    # A reload: the same GET again, with the cookie the first response set.
    again = browser.get(first.url)
    assert again.status == 200 and demo.shows_discovery(again)
    assert BROWSER_COOKIE not in again.cookies_set  # the browser keeps its secret
    assert login_id(demo, again) != first_login  # the request was taken again: a new login
    assert_completes(demo, browser, again, "rekenroute")


def test_an_oidc_authorize_by_get_gets_the_discovery_page_and_completes(
    demo: LiveDemo, woordwijs: OidcPublisher
) -> None:
    browser = Browser()
    page = browser.get(f"{woordwijs.base_url}/login")
    assert_inline_discovery(demo, browser, page, f"{demo.broker_url}/oidc/authorize?")
    # The demo's authlib relying party then redeems the code and checks the ID token.
    answer = demo.pick(browser, demo.choose_school(browser, page), UID)
    assert answer.status == 200, answer.text[:500]
    assert answer.url.startswith(woordwijs.redirect_uri), answer.url
    received = demo.received(browser, woordwijs.id)
    assert received["sub"] == demo.expected_pseudonym(UID, "leermiddelen")


def test_ui_locales_on_an_inline_page_speaks_and_remembers_the_language(
    demo: LiveDemo, woordwijs: OidcPublisher
) -> None:
    browser = Browser(language="nl")
    start = browser.get(f"{woordwijs.base_url}/login", follow=False)
    assert start.location
    authorize = f"{start.location}&ui_locales=en-GB"
    page = browser.get(authorize)
    assert page.url == authorize and demo.shows_discovery(page)
    assert '<html lang="en"' in page.text and "Choose your school" in page.text
    # Remembered, as the `?lang=en` of the redirect it replaces was: the search stays English.
    assert browser.cookies(demo.broker_url).get("kb_lang") == "en"
    found = browser.get(f"{demo.broker_url}/discovery?login={login_id(demo, page)}&q=lyc")
    assert '<html lang="en"' in found.text


def test_the_my_data_sign_in_gets_the_discovery_page_in_its_response(demo: LiveDemo) -> None:
    browser = Browser()
    page = browser.get(f"{demo.broker_url}/my-data/sign-in")
    assert_inline_discovery(demo, browser, page, f"{demo.broker_url}/my-data/sign-in")
    signed_in = demo.pick(browser, demo.choose_school(browser, page), UID)
    assert signed_in.status == 200, signed_in.text[:500]
    assert signed_in.url.startswith(f"{demo.broker_url}/my-data/view/"), signed_in.url
