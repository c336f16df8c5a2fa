"""Two schools on one SAML IdP (a school board's), end to end against the live demo.

The demo school's IdP is registered for a second school, "Demo Lyceum Zuid" (99XX01), with the
same metadata; the IdP names its students' school as 99XX00 in nlEduPersonHomeOrganizationId.
A student who chooses 99XX00 signs in there, with the pseudonym in that school's namespace; one
who chooses 99XX01 is refused (`other_school`, 403, the way back to the choice, nothing written)
and can choose again; an answer that names no school is refused too (`school_not_asserted`).
A `Scoping/IDPList` naming the shared IdP leads to a discovery page of its schools only (an SSO
session at one of them answers it), and logout from that IdP ends the session of the school the
student signed in to.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import urljoin

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.core.model import School
from broker.registry.receipts import ReceiptQuery
from broker.web.browser import SSO_COOKIE
from tests.flows import test_logout_school_soap as soap
from tests.flows.test_logout_soap import envelope
from tests.flows.test_operations_endpoints import metrics_text, sample, total
from tests.support.client import Browser, Page
from tests.support.forge import SchoolForger, authn_request_id, redirect_message
from tests.support.live import LiveDemo, running_demo
from tests.support.logout import carry_saml_posts, finish_logout
from tests.support.saml_workers import demo_school_forger

BOARD_SCHOOL = "99XX01"
STUDENT = "sanne.jansen"
SETBACKS = "ketenbroker_login_setbacks_total"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("shared-idp-demo")) as live:
        metadata = live.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
        live.registry.add_school(
            School(BOARD_SCHOOL, "Demo Lyceum Zuid", live.school_entity_id), metadata
        )
        yield live


def _choose(demo: LiveDemo, browser: Browser, discovery: Page, school_id: str) -> str:
    """Choose `school_id` on the discovery page: the URL of the broker's request to the IdP."""
    assert demo.shows_discovery(discovery), discovery.url
    form = next(f for f in discovery.forms if ("school", school_id) in f.buttons)
    sent = browser.post(
        form.action,
        {**form.fields, "school": school_id},
        stop=lambda url: url.startswith(demo.school_url),
    )
    assert sent.location is not None and sent.location.startswith(f"{demo.school_url}/sso")
    return sent.location


def _to_school(demo: LiveDemo, browser: Browser, school_id: str) -> str:
    discovery = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    return _choose(demo, browser, discovery, school_id)


def school_answer(
    demo: LiveDemo, location: str, attributes: dict[str, list[str]]
) -> dict[str, str]:
    """The demo IdP's signed answer (as the broker's ACS takes it) to the request at
    `location`, for the test student, carrying `attributes`."""
    _, params = redirect_message(location)
    school: SchoolForger = demo_school_forger(demo)
    answer = school.response(
        in_response_to=authn_request_id(location),
        destination=demo.acs_url,
        audience=demo.sp_entity_id,
        subject=demo.school_subject(STUDENT),
        attributes=attributes,
    )
    return {"SAMLResponse": answer, "RelayState": params["RelayState"]}


def _board_receipts(demo: LiveDemo) -> int:
    return len(demo.broker.receipts.find(ReceiptQuery(BOARD_SCHOOL)))


def _assert_nothing_written(demo: LiveDemo, browser: Browser, page: Page, receipts: int) -> None:
    assert _board_receipts(demo) == receipts
    assert SSO_COOKIE not in page.cookies_set
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(page)
    assert browser.get(f"{demo.publishers['leesplank'].base_url}/received.json").status == 404


def test_a_student_of_the_chosen_school_signs_in(demo: LiveDemo) -> None:
    browser = Browser()
    login = demo.login(browser, "leesplank", STUDENT)
    assert login.final.status == 200, login.final.text
    received = demo.received(browser, "leesplank")
    # The namespace is the chosen school's: school:99XX00, as with an IdP of its own.
    assert received["name_id"]["value"] == demo.expected_pseudonym(STUDENT, "leermiddelen")


def test_choosing_another_school_of_the_board_is_refused_and_can_be_chosen_again(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    browser, receipts = Browser(), _board_receipts(demo)
    picker = browser.get(_to_school(demo, browser, BOARD_SCHOOL))
    with caplog.at_level(logging.INFO):
        refused = demo.pick(browser, picker, STUDENT)
    assert refused.status == 403, refused.text[:500]
    assert "Your school account does not belong to the school you chose." in refused.text
    assert "refused code=other_school " in caplog.text
    lines = [r.getMessage() for r in caplog.records if "code=other_school" in r.getMessage()]
    assert any(f"school={BOARD_SCHOOL}" in line for line in lines)
    # The school the IdP named is not logged.
    assert not any(DEMO_SCHOOL_ID in line for line in lines)
    _assert_nothing_written(demo, browser, refused, receipts)

    # The way back: the same login's school choice, then the right school signs in.
    link = next(a for a in _links(refused) if "/discovery?login=" in a)
    again = browser.get(urljoin(demo.broker_url, link))
    picker = browser.get(_choose(demo, browser, again, DEMO_SCHOOL_ID))
    page = demo.pick(browser, picker, STUDENT)
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
    browser.submit(page, demo.publishers["leesplank"].acs_url)
    received = demo.received(browser, "leesplank")
    assert received["name_id"]["value"] == demo.expected_pseudonym(STUDENT, "leermiddelen")


def _links(page: Page) -> list[str]:
    return [unescape(href) for href in re.findall(r'href="([^"]+)"', page.text)]


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ({"givenName": ["Sanne"]}, "school_not_asserted"),
        ({"nlEduPersonHomeOrganizationId": [DEMO_SCHOOL_ID]}, "other_school"),
    ],
)
def test_an_answer_that_does_not_name_the_chosen_school_is_refused(
    demo: LiveDemo,
    caplog: pytest.LogCaptureFixture,
    attributes: dict[str, list[str]],
    code: str,
) -> None:
    browser, receipts = Browser("nl"), _board_receipts(demo)
    answer = school_answer(demo, _to_school(demo, browser, BOARD_SCHOOL), attributes)
    labels = {"pairing": "unknown_saml", "reason": code}  # as any refusal at the ACS
    counted = sample(metrics_text(demo.broker_url), SETBACKS, **labels)
    ended = total(metrics_text(demo.broker_url), "ketenbroker_logins_total")
    with caplog.at_level(logging.INFO):
        refused = browser.post(demo.acs_url, answer)
    assert refused.status == 403, refused.text[:500]
    assert f"refused code={code} " in caplog.text
    # Counted, so a board IdP that sends no school shows on the operator's dashboards: as a
    # setback, the login stays open to choose again (it counts as ended only when it ends).
    after = sample(metrics_text(demo.broker_url), SETBACKS, **labels)
    assert after - counted == 1
    assert total(metrics_text(demo.broker_url), "ketenbroker_logins_total") == ended
    assert "Kies je school opnieuw" in refused.text
    assert "hoort" in refused.text  # informal Dutch: "je account hoort niet bij ..."
    _assert_nothing_written(demo, browser, refused, receipts)


@pytest.mark.parametrize(
    "asserted",
    [
        [BOARD_SCHOOL],
        # An account at two of the board's schools signs in at either: the IdP vouches for both.
        [DEMO_SCHOOL_ID, BOARD_SCHOOL],
    ],
)
def test_the_chosen_schools_own_id_is_accepted_from_the_shared_idp(
    demo: LiveDemo, asserted: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    location = _to_school(demo, browser, BOARD_SCHOOL)
    answer = school_answer(demo, location, {"nlEduPersonHomeOrganizationId": asserted})
    with caplog.at_level(logging.INFO):
        page = browser.post(demo.acs_url, answer)
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
    # The other school's BRIN is dropped unlogged: a drop line would say, with the school and
    # the time, where else the student is enrolled (login/school_values.py).
    assert "attribute=school_id" not in caplog.text
    browser.submit(page, demo.publishers["leesplank"].acs_url)
    received = demo.received(browser, "leesplank")
    # Zuid's namespace, not the demo school's.
    assert received["name_id"]["value"] != demo.expected_pseudonym(STUDENT, "leermiddelen")


def _offered(page: Page) -> set[str]:
    return {value for form in page.forms for name, value in form.buttons if name == "school"}


def test_an_idp_list_naming_the_shared_idp_offers_only_its_schools(demo: LiveDemo) -> None:
    browser = Browser()
    everyone = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert DEMO_OIDC_SCHOOL_ID in _offered(everyone)
    page = browser.get(
        f"{demo.publishers['leesplank'].base_url}/login?school={demo.school_entity_id}"
    )
    assert demo.shows_discovery(page), page.url
    assert _offered(page) == {DEMO_SCHOOL_ID, BOARD_SCHOOL}
    # A school the page did not offer cannot be chosen for this login either.
    form = next(f for f in page.forms if ("school", DEMO_SCHOOL_ID) in f.buttons)
    refused = browser.post(form.action, {**form.fields, "school": DEMO_OIDC_SCHOOL_ID})
    assert refused.status == 400, refused.text[:300]


def test_an_idp_list_naming_the_shared_idp_is_answered_by_a_session_at_one_of_its_schools(
    demo: LiveDemo,
) -> None:
    browser = Browser()
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200
    page = browser.get(
        f"{demo.publishers['rekenroute'].base_url}/login?school={demo.school_entity_id}"
    )
    assert demo.answers_publisher(page), page.url


def test_logout_from_the_shared_idp_ends_the_session_of_the_chosen_school(
    demo: LiveDemo,
) -> None:
    browser = Browser()
    assert demo.login(browser, "leesplank", "daan.devries").final.status == 200
    started = carry_saml_posts(browser, browser.get(f"{demo.school_url}/logout?uid=daan.devries"))
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    outcome = finish_logout(browser, started)
    assert outcome.school == "initiator"
    # The session is gone: a new login shows the choice again.
    again = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    assert demo.shows_discovery(again)


def test_a_broker_logout_is_answered_by_the_shared_idp(demo: LiveDemo) -> None:
    browser = Browser()
    assert demo.login(browser, "leesplank", "marieke.bakker").final.status == 200
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    started = browser.submit(my_data, f"{demo.broker_url}/my-data/close")
    outcome = finish_logout(browser, started)
    # The IdP's LogoutResponse matched the run's school among the two on that IdP.
    assert outcome.school == "confirmed"


def test_a_soap_logout_request_of_the_boards_idp_ends_the_session_of_its_school(
    demo: LiveDemo,
) -> None:
    """Over SOAP too (test_logout_school_soap.py): the board's IdP names no school; the
    session is found under whichever of its schools the student signed in to."""
    at = soap.login(demo, student=STUDENT)
    xml, _ = soap.request_for(demo, demo_school_forger(demo), at)
    answer = soap.send(demo, envelope(xml))
    assert answer.http_status == 200, answer.raw[:500]
    assert answer.statuses == ["Success", "PartialLogout"]  # leesplank: browser-only SLO
    assert not soap.stands(demo, at)
