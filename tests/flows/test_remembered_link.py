"""A returning student's remembered school: on the discovery page that comes in the response to
the service's own GET, the "Continue with" button is a link straight to the school, whose
request was made and saved with the page (login_upstream.prepare_upstream). One request to the
broker fewer (no `POST /discovery`), and everything else as before: the request is bound to
the login record sealed under the browser's secret, the answer is checked as any other, a
student who chooses otherwise gets a fresh request and the prepared one's answer is refused.
Pages shown again (`GET /discovery`) keep the POST form."""

from __future__ import annotations

import base64
import logging
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from lxml import etree
from prometheus_client import REGISTRY
from saml2.sigver import verify_redirect_signature

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.login.login_model import LoginRecord
from broker.oidc.rp_discovery import ProviderDirectory
from broker.oidc.rp_state import STATE_TAG, read_state, request_state
from broker.saml.xmlsig import _AllowListRSACrypto
from broker.web.browser import BROWSER_COOKIE, SCHOOL_COOKIE, SSO_COOKIE
from tests.flows.test_discovery_inline import login_id
from tests.flows.test_oidc_school import expected, op_url
from tests.support.client import Browser, Page
from tests.support.forge import redirect_message
from tests.support.live import LiveDemo, OidcPublisher

UID = "sanne.jansen"
CHAIN = "leermiddelen"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


class _Links(HTMLParser):
    """The page's prepared link: the attributes of `<a data-prepared-for>`, if any."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.prepared: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and "data-prepared-for" in values:
            self.prepared.append(values)


def prepared_link(page: Page) -> dict[str, str] | None:
    links = _Links()
    links.feed(page.text)
    assert len(links.prepared) <= 1, links.prepared
    return links.prepared[0] if links.prepared else None


def returning(demo: LiveDemo, school_id: str, language: str = "en") -> Browser:
    """A browser that remembers `school_id` (an earlier day's login: no SSO session left)."""
    browser = Browser(language)
    host = urlsplit(demo.broker_url).hostname or ""
    browser.jar.setdefault(host, {})[SCHOOL_COOKIE] = school_id
    return browser


def remembered_form(demo: LiveDemo, page: Page) -> Any:
    return next(f for f in page.forms if "remembered" in f.css_class.split() and f.method == "post")


def record_of(demo: LiveDemo, browser: Browser, login: str) -> LoginRecord:
    """The login record as the broker keeps it: opened with this browser's secret only."""
    raw = browser.cookies(demo.broker_url)[BROWSER_COOKIE]
    secret = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    return demo.broker.flow.load(secret, login)


def upstream_waits(protocol: str) -> float:
    value = REGISTRY.get_sample_value(
        "ketenbroker_upstream_wait_seconds_count", {"school_protocol": protocol}
    )
    return value or 0.0


def assert_post_form_only(demo: LiveDemo, page: Page, school_id: str) -> None:
    """The remembered school as today: a POST button, no link."""
    assert demo.shows_discovery(page), page.text[:500]
    assert prepared_link(page) is None
    assert ("school", school_id) in remembered_form(demo, page).buttons


def warm_provider(demo: LiveDemo) -> None:
    """The worker holds the OIDC school's provider document (as after any login through it)."""
    school = demo.broker.view.school(DEMO_OIDC_SCHOOL_ID)
    assert school is not None and school.oidc is not None
    demo.broker.oidc_back.directory.metadata(school.oidc.issuer)


def pick_at_provider(browser: Browser, page: Page, **kwargs: Any) -> Page:
    """The demo OpenID provider's pick page: the student signs in as UID."""
    assert page.status == 200 and page.url.startswith(f"{op_url_of(page)}/authorize"), page.url
    form = next(f for f in page.forms if ("uid", UID) in f.buttons)
    return browser.post(form.action, {"uid": UID}, **kwargs)


def op_url_of(page: Page) -> str:
    parts = urlsplit(page.url)
    return f"{parts.scheme}://{parts.netloc}"


def saml_link_answered(demo: LiveDemo) -> tuple[Browser, Page, dict[str, str]]:
    """A returning student followed the SAML school's link and the school answered: (browser,
    the discovery page, the school's answer not yet carried to the broker's ACS)."""
    browser = returning(demo, DEMO_SCHOOL_ID)
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    link = prepared_link(page)
    assert link is not None
    answer = browser.submit(browser.get(link["href"]), f"{demo.school_url}/sso/pick", {"uid": UID})
    return browser, page, answer.form(demo.acs_url).fields


def oidc_link_answered(demo: LiveDemo) -> tuple[Browser, Page, str, str]:
    """The same for the OIDC school: (browser, the discovery page, the link, the provider's
    redirect to the broker's callback, not yet followed)."""
    warm_provider(demo)
    browser = returning(demo, DEMO_OIDC_SCHOOL_ID)
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    link = prepared_link(page)
    assert link is not None
    to_callback = pick_at_provider(browser, browser.get(link["href"]), follow=False)
    callback = to_callback.location or ""
    assert callback.startswith(f"{demo.broker_url}/oidc/rp/callback/{DEMO_OIDC_SCHOOL_ID}?")
    return browser, page, link["href"], callback


# -- SAML school --------------------------------------------------------------------------------
def test_the_remembered_saml_school_is_a_signed_link_and_following_it_completes_the_login(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.login")
    browser = returning(demo, DEMO_SCHOOL_ID)
    start = f"{demo.broker_url}/saml/idp/sso?SAMLRequest="
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    # The page in the response to the service's own request: no `GET /discovery` first.
    assert page.status == 200 and page.url.startswith(start), page.url
    assert not [u for u in page.visited if u.startswith(f"{demo.broker_url}/discovery")]
    assert demo.shows_discovery(page)
    login = login_id(demo, page)

    link = prepared_link(page)
    assert link is not None, page.text[:1500]
    href = link["href"]
    assert href.startswith(f"{demo.school_url}/sso?SAMLRequest="), href
    # Nothing of the service's request goes to the school: not in the link, and no Referer
    # (the page's policy, and the link's own `rel` should a proxy drop the header).
    assert page.response.headers["Referrer-Policy"] == "no-referrer"
    assert link["rel"] == "noreferrer"
    service_query = parse_qs(urlsplit(page.url).query)
    assert service_query["SAMLRequest"][0] not in href
    # The form around the link (for discovery.js) carries the choice, with no button (and the
    # platform, which a choice made after the login expired names).
    form = remembered_form(demo, page)
    assert form.fields == {"login": login, "school": DEMO_SCHOOL_ID, "service": "leesplank"}
    assert form.buttons == []

    # The request is the broker's own, signed over the query string, RelayState = login id.
    xml, params = redirect_message(href)
    assert params["RelayState"] == login and params["SigAlg"] == RSA_SHA256
    certificate = demo.settings.saml.signing_cert.read_text().strip().splitlines()
    assert verify_redirect_signature(params, _AllowListRSACrypto(None), "".join(certificate[1:-1]))
    request = etree.fromstring(xml)
    assert href.startswith(f"{request.get('Destination')}?")
    assert request.get("AssertionConsumerServiceURL") == demo.acs_url
    assert request.get("ForceAuthn") in (None, "false")
    # Bound to the login record, sealed under this browser's secret, as the POST path binds it.
    record = record_of(demo, browser, login)
    assert record.school_id == DEMO_SCHOOL_ID
    assert record.upstream_request_id == request.get("ID")
    assert record.upstream_at is None  # the broker does not see the student leave
    assert f"prepared school={DEMO_SCHOOL_ID} service=leesplank" in caplog.text
    assert "upstream school=" not in caplog.text

    waits = upstream_waits("saml")
    start_at = len(browser.history)
    picker = browser.get(href)
    answer = demo.pick(browser, picker, UID)
    delivered = browser.submit(answer, demo.publishers["leesplank"].acs_url)
    assert delivered.status == 200, delivered.text[:500]
    # No choice was posted: the broker saw the service's request and the school's answer.
    assert not [u for u in browser.history[start_at:] if u.startswith(f"{demo.broker_url}/disc")]
    # The demo publisher's pysaml2 checked the broker's signed Response.
    received = demo.received(browser, "leesplank")
    assert received["name_id"]["value"] == demo.expected_pseudonym(UID, CHAIN)
    # A prepared request's wait would include the student's time on the page: not observed.
    assert upstream_waits("saml") == waits
    assert browser.cookies(demo.broker_url)[SCHOOL_COOKIE] == DEMO_SCHOOL_ID


def test_preparing_costs_the_service_request_no_store_round_trip_more(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's first save carries the prepared request: one round trip, as without it
    (there a plain write; with the request, one batch: the epoch of the replay bucket its
    answer will be checked in, then the record)."""
    store = demo.broker.flow.store
    trips: list[str] = []
    for name in ("get", "put", "take", "add_if_absent", "delete", "batch"):
        real = getattr(store, name)

        def counted(*args: Any, _name: str = name, _real: Any = real) -> Any:
            trips.append(_name)
            return _real(*args)

        monkeypatch.setattr(store, name, counted)
    counts = []
    for browser in (Browser(), returning(demo, DEMO_SCHOOL_ID)):
        start = browser.get(f"{demo.publishers['leesplank'].base_url}/login", follow=False)
        assert start.location
        trips.clear()
        page = browser.get(start.location)
        counts.append(list(trips))
        assert demo.shows_discovery(page)
    assert prepared_link(page) is not None
    assert counts == [["put"], ["batch"]], counts


def test_the_my_data_sign_in_follows_the_link_too(demo: LiveDemo) -> None:
    browser = returning(demo, DEMO_SCHOOL_ID)
    page = browser.get(f"{demo.broker_url}/my-data/sign-in")
    link = prepared_link(page)
    assert link is not None and link["href"].startswith(f"{demo.school_url}/sso?")
    signed_in = demo.pick(browser, browser.get(link["href"]), UID)
    assert signed_in.status == 200, signed_in.text[:500]
    assert signed_in.url.startswith(f"{demo.broker_url}/my-data/view/"), signed_in.url


def test_without_a_remembered_school_there_is_no_link_and_no_prepared_request(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.login")
    for browser in (Browser(), returning(demo, "no-such-school")):
        page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
        assert demo.shows_discovery(page)
        assert prepared_link(page) is None
        assert not [f for f in page.forms if "remembered" in f.css_class.split()]
        record = record_of(demo, browser, login_id(demo, page))
        assert record.school_id is None and record.upstream_request_id is None
    assert "prepared school=" not in caplog.text


def test_pages_shown_again_keep_the_post_form_and_it_makes_a_fresh_request(
    demo: LiveDemo,
) -> None:
    browser = returning(demo, DEMO_SCHOOL_ID)
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    link = prepared_link(page)
    assert link is not None
    login = login_id(demo, page)
    base = f"{demo.broker_url}/discovery?login={login}"
    for again in (base, f"{base}&lang=nl", f"{base}&q=lyc"):
        shown = browser.get(again)
        assert_post_form_only(demo, shown, DEMO_SCHOOL_ID)
    # Its button posts the choice: a new request, not the prepared one.
    form = remembered_form(demo, shown)
    to_school = browser.post(form.action, {**form.fields, "school": DEMO_SCHOOL_ID}, follow=False)
    assert to_school.status == 303 and to_school.location
    new_xml, _ = redirect_message(to_school.location)
    old_xml, _ = redirect_message(link["href"])
    assert etree.fromstring(new_xml).get("ID") != etree.fromstring(old_xml).get("ID")
    record = record_of(demo, browser, login)
    assert record.upstream_request_id == etree.fromstring(new_xml).get("ID")
    assert record.upstream_at is not None  # sent now: the wait is measured from here
    answer = demo.pick(browser, browser.get(to_school.location), UID)
    delivered = browser.submit(answer, demo.publishers["leesplank"].acs_url)
    assert delivered.status == 200


def test_a_login_that_arrived_by_post_gets_the_post_form(
    demo: LiveDemo, woordwijs: OidcPublisher
) -> None:
    browser = returning(demo, DEMO_SCHOOL_ID)
    start = browser.get(f"{woordwijs.base_url}/login", follow=False)
    assert start.location
    authorize = urlsplit(start.location)
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    posted = browser.post(f"{demo.broker_url}{authorize.path}", params, follow=False)
    assert posted.status == 303 and posted.location
    assert posted.location.startswith(f"{demo.broker_url}/discovery?")
    assert_post_form_only(demo, browser.get(posted.location), DEMO_SCHOOL_ID)


def test_choosing_again_replaces_the_prepared_request_and_its_answer_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    # The student opened the link (the school answered), then went back and chose from the
    # list instead: the record now names the new request.
    browser, page, stale_answer = saml_link_answered(demo)
    fresh_picker = demo.choose_school(browser, page)
    assert fresh_picker.url.startswith(f"{demo.school_url}/sso"), fresh_picker.url

    refused = browser.post(demo.acs_url, stale_answer)
    assert refused.status == 400, refused.text[:500]
    assert "refused code=unsolicited " in caplog.text  # InResponseTo names another request
    assert SSO_COOKIE not in refused.cookies_set and "SAMLResponse" not in refused.text

    # The login the student chose goes on.
    answer = demo.pick(browser, fresh_picker, UID)
    delivered = browser.submit(answer, demo.publishers["leesplank"].acs_url)
    assert delivered.status == 200
    received = demo.received(browser, "leesplank")
    assert received["name_id"]["value"] == demo.expected_pseudonym(UID, CHAIN)


def test_choosing_another_school_after_the_link_was_followed_refuses_its_answer(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    warm_provider(demo)
    browser, page, stale_answer = saml_link_answered(demo)
    form = next(f for f in page.forms if ("school", DEMO_OIDC_SCHOOL_ID) in f.buttons)
    at_provider = browser.post(form.action, {**form.fields, "school": DEMO_OIDC_SCHOOL_ID})

    refused = browser.post(demo.acs_url, stale_answer)
    assert refused.status == 400, refused.text[:500]
    assert "refused code=issuer_mismatch " in caplog.text  # not the school the record names
    assert SSO_COOKIE not in refused.cookies_set and "SAMLResponse" not in refused.text

    answer = pick_at_provider(browser, at_provider)
    delivered = browser.submit(answer, demo.publishers["leesplank"].acs_url)
    assert delivered.status == 200, delivered.text[:500]
    received = demo.received(browser, "leesplank")
    assert received["name_id"]["value"] == expected(demo, UID, CHAIN)


# -- OIDC school --------------------------------------------------------------------------------
def test_the_remembered_oidc_school_is_a_link_with_pkce_and_following_it_completes_the_login(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.login")
    warm_provider(demo)
    browser = returning(demo, DEMO_OIDC_SCHOOL_ID)
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    link = prepared_link(page)
    assert link is not None, page.text[:1500]
    login = login_id(demo, page)
    href = link["href"]
    assert href.startswith(f"{op_url(demo)}/authorize?"), href
    query = {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
    assert read_state(query["state"])[0] == login
    assert query["redirect_uri"] == f"{demo.broker_url}/oidc/rp/callback/{DEMO_OIDC_SCHOOL_ID}"
    assert query["code_challenge_method"] == "S256" and query["nonce"]
    # The record keeps the verifier, sealed; the page has only its challenge.
    record = record_of(demo, browser, login)
    assert record.school_id == DEMO_OIDC_SCHOOL_ID and record.upstream_at is None
    # The state names this request of the login by its own tag, kept sealed (rp_state.py).
    assert query["state"] == request_state(login, record.upstream[STATE_TAG])
    verifier = record.upstream["code_verifier"]
    assert query["code_challenge"] == create_s256_code_challenge(verifier)
    assert verifier not in page.text and "code_verifier" not in page.text
    assert record.upstream["nonce"] == query["nonce"]
    assert f"prepared school={DEMO_OIDC_SCHOOL_ID} service=leesplank" in caplog.text

    waits = upstream_waits("oidc")
    start_at = len(browser.history)
    answer = pick_at_provider(browser, browser.get(href))
    delivered = browser.submit(answer, demo.publishers["leesplank"].acs_url)
    assert delivered.status == 200, delivered.text[:500]
    assert not [u for u in browser.history[start_at:] if u.startswith(f"{demo.broker_url}/disc")]
    received = demo.received(browser, "leesplank")
    assert received["name_id"]["value"] == expected(demo, UID, CHAIN)
    assert upstream_waits("oidc") == waits
    assert "upstream school=" not in caplog.text


def test_an_oidc_school_whose_provider_is_not_held_gets_the_post_form_and_no_network_call(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = demo.broker.oidc_back.directory
    fetches: list[int] = []

    def counted() -> Any:
        fetches.append(1)
        return held.session()

    # A worker that has not fetched the provider's document yet (or must refresh it).
    monkeypatch.setattr(demo.broker.oidc_back, "directory", ProviderDirectory(counted))
    browser = returning(demo, DEMO_OIDC_SCHOOL_ID)
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert_post_form_only(demo, page, DEMO_OIDC_SCHOOL_ID)
    assert fetches == []  # the page never waits on a school's provider
    record = record_of(demo, browser, login_id(demo, page))
    assert record.school_id is None and record.upstream_request_id is None
    # The button works as today: the POST fetches the document and sends the student on.
    form = remembered_form(demo, page)
    at_provider = browser.post(form.action, {**form.fields, "school": DEMO_OIDC_SCHOOL_ID})
    assert fetches
    answer = pick_at_provider(browser, at_provider)
    delivered = browser.submit(answer, demo.publishers["leesplank"].acs_url)
    assert delivered.status == 200, delivered.text[:500]


def test_an_answer_to_the_prepared_oidc_request_after_another_choice_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    # The provider answers the prepared request; before that answer reaches the broker, the
    # student chose the SAML school on the page.
    browser, page, _link, callback = oidc_link_answered(demo)
    assert demo.choose_school(browser, page).url.startswith(f"{demo.school_url}/sso")

    refused = browser.get(callback)
    assert refused.status == 400, refused.text[:500]
    # Its state's tag is not the live request's: stale, and the record is put back as it was.
    assert "refused code=stale_state " in caplog.text
    assert SSO_COOKIE not in refused.cookies_set


def test_a_service_that_forces_a_fresh_login_gets_it_through_the_prepared_link_too(
    demo: LiveDemo, woordwijs: OidcPublisher
) -> None:
    """The service's wishes travel as on the POST path: prompt=login becomes the school's
    ForceAuthn; max_age asks a SAML school for a fresh login too."""
    browser = returning(demo, DEMO_SCHOOL_ID)
    start = browser.get(f"{woordwijs.base_url}/login", follow=False)
    assert start.location
    page = browser.get(f"{start.location}&{urlencode({'prompt': 'login'})}")
    link = prepared_link(page)
    assert link is not None, page.text[:800]
    xml, _ = redirect_message(link["href"])
    assert etree.fromstring(xml).get("ForceAuthn") == "true"
    page = browser.get(f"{start.location}&max_age=600")
    link = prepared_link(page)
    assert link is not None
    xml, _ = redirect_message(link["href"])
    assert etree.fromstring(xml).get("ForceAuthn") == "true"


def test_an_answer_to_the_prepared_oidc_request_after_choosing_the_same_school_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """The same school chosen again from the list: a new request (nonce, PKCE verifier and
    state tag). An answer to the prepared one is stale (its state's tag is not the live
    request's): refused before its code goes anywhere, and the live login still completes."""
    browser, page, link, callback = oidc_link_answered(demo)
    form = next(f for f in page.forms if ("school", DEMO_OIDC_SCHOOL_ID) in f.buttons)
    again = browser.post(form.action, {**form.fields, "school": DEMO_OIDC_SCHOOL_ID}, follow=False)
    assert again.location and again.location != link

    refused = browser.get(callback)
    assert refused.status == 400, refused.text[:500]
    assert "refused code=stale_state " in caplog.text
    assert "code=token_refused" not in caplog.text  # its code was never redeemed
    assert SSO_COOKIE not in refused.cookies_set
    answer = pick_at_provider(browser, browser.get(again.location))
    delivered = browser.submit(answer, demo.publishers["leesplank"].acs_url)
    assert delivered.status == 200, delivered.text[:500]
