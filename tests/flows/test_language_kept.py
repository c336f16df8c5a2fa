"""The language a student chose on the discovery page holds when the school answers.

The language cookie is SameSite=Lax: a browser leaves it behind on the school's cross-site POST to
the ACS. The login record keeps the choice instead, so the pages that answer the school (the
notice, an error) speak it; the OIDC callback (a GET, which has the cookie) speaks it too. These clients send every
cookie, so each test takes the cookie away where a browser would (tests/browser has Chromium
do it by itself).
"""

from __future__ import annotations

from urllib.parse import urlencode

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.web.i18n import LANGUAGE_COOKIE
from tests.flows.test_oidc_school import op_url
from tests.flows.test_receipts_and_notice import notice_form
from tests.support.client import Browser, Page, _host
from tests.support.live import LiveDemo

UID = "sanne.jansen"


def _english_chosen(demo: LiveDemo, browser: Browser, school_id: str) -> Page:
    """A Dutch browser at leesplank's login: "English" on the discovery page, then the school
    chosen; returns the page the choice led to (the school's sign-in)."""
    first = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert demo.shows_discovery(first) and 'lang="nl"' in first.text
    login = next(form.fields["login"] for form in first.forms if "login" in form.fields)
    query = urlencode({"login": login, "lang": "en"})
    english = browser.get(f"{demo.broker_url}/discovery?{query}")
    assert 'lang="en"' in english.text
    assert browser.cookies(demo.broker_url)[LANGUAGE_COOKIE] == "en"
    form = next(f for f in english.forms if ("school", school_id) in f.buttons)
    return browser.post(form.action, {**form.fields, "school": school_id})


def _cross_site(demo: LiveDemo, browser: Browser) -> None:
    """What a browser does with the SameSite=Lax language cookie on a cross-site POST."""
    del browser.jar[_host(demo.broker_url)][LANGUAGE_COOKIE]


def test_the_acs_answers_in_the_language_chosen_before_the_school(demo: LiveDemo) -> None:
    browser = Browser("nl", read_notices=False)
    picker = _english_chosen(demo, browser, DEMO_SCHOOL_ID)
    answer = browser.submit(picker, f"{demo.school_url}/sso/pick", {"uid": UID})
    _cross_site(demo, browser)
    notice = browser.submit(answer, demo.acs_url)
    assert notice_form(notice) is not None, notice.text[:500]
    assert '<html lang="en">' in notice.text
    assert "Continue to Leesplank" in notice.text
    # Remembered again for the pages that follow (the notice's own address, a reload).
    assert browser.cookies(demo.broker_url)[LANGUAGE_COOKIE] == "en"


def test_the_oidc_callback_answers_in_the_language_chosen_before_the_school(
    demo: LiveDemo,
) -> None:
    browser = Browser("nl", read_notices=False)
    authorize = _english_chosen(demo, browser, DEMO_OIDC_SCHOOL_ID)
    assert authorize.url.startswith(f"{op_url(demo)}/authorize"), authorize.url
    form = next(f for f in authorize.forms if ("uid", UID) in f.buttons)
    callback = f"{demo.broker_url}/oidc/rp/callback/"
    to_broker = browser.post(form.action, {"uid": UID}, stop=lambda url: url.startswith(callback))
    assert to_broker.location is not None and to_broker.location.startswith(callback)
    _cross_site(demo, browser)  # the record alone decides, as at the ACS
    notice = browser.get(to_broker.location)
    assert notice_form(notice) is not None, notice.text[:500]
    assert '<html lang="en">' in notice.text
