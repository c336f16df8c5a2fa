"""A browser logout tells a SAML service with a SOAP SingleLogoutService as well as a
Redirect/POST one both ways (login/logout.py): over SOAP, server to server before the
propagation page is shown, and by its iframe. The iframe is a third party that Safari and
cookie blocking send without the service's cookie (docs/saml-profile.md), so on a shared iPad
it may never end the session; the SOAP request names the NameID and SessionIndex itself. The
service shows as logged out when SOAP confirmed, whatever its iframe does; when SOAP did not
confirm, its iframe decides as before. A service that started the logout itself is answered
as before and not told again.

The scripted SOAP service of test_logout_soap.py takes the SOAP POST; the demo publisher's
front channel takes the iframe's LogoutRequest ("answer", or "silent": never answers, as a
blocked iframe does not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from lxml import etree

from broker.web import metrics
from tests.flows.test_logout_soap import SOAP_ENV, SoapService, soap_service
from tests.flows.test_operations_endpoints import sample
from tests.support.client import Browser, Page
from tests.support.forge import NS, verify_signature
from tests.support.live import LiveDemo
from tests.support.logout import (
    LogoutOutcome,
    answer_initiator,
    carry_saml_posts,
    finish_logout,
    load_frames,
    peer_logouts,
    sends_on_by_itself,
    wait_out,
    warns,
)

STUDENT = "daan.devries"
LEESPLANK = "Leesplank (demo publisher)"
# pysaml2 leaves closing its temporary certificate files to the garbage collector (as in
# test_logout_school_soap.py).
pytestmark = [
    pytest.mark.usefixtures("collect_pysaml2_temp_files"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(scope="module")
def both(demo: LiveDemo) -> Iterator[SoapService]:
    """Redirect/POST SLO endpoints that answer, and a SOAP one."""
    yield from soap_service(demo, "beide-kanalen")


@pytest.fixture(scope="module")
def blocked(demo: LiveDemo) -> Iterator[SoapService]:
    """Redirect/POST SLO endpoints whose iframe never answers (the blocked third party of
    Safari), and a SOAP one."""
    yield from soap_service(demo, "geblokkeerd-frame", front="silent")


def name_of(service: SoapService) -> str:
    return f"{service.publisher.id} (test publisher)"


def signed_in(demo: LiveDemo, *publishers: str) -> Browser:
    browser = Browser()
    for publisher in publishers:
        assert demo.login(browser, publisher, STUDENT).final.status == 200
    return browser


def students_button(demo: LiveDemo, browser: Browser) -> Page:
    """The student's "log out everywhere" on the broker's own page: the propagation page."""
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    assert my_data.status == 200 and "/my-data/view/" in my_data.url, my_data.url
    started = browser.submit(my_data, f"{demo.broker_url}/my-data/close")
    assert started.status == 200 and started.url.startswith(f"{demo.broker_url}/logout/")
    return started


def shown(page: Page, name: str) -> str:
    """The status a logout page shows for the service `name`."""
    for item in etree.HTML(page.text).iterfind(".//li[@data-logout-service]"):
        if item.findtext("span[@class='logout-list__name']") == name:
            return str(item.get("data-status"))
    raise AssertionError(f"{name} not on the page")


def ended_services(channel: str, status: str) -> float:
    rendered = metrics.render()[0].decode()
    return sample(rendered, "ketenbroker_logout_services_total", channel=channel, status=status)


def test_told_over_soap_and_shown_logged_out_though_its_iframe_never_answers(
    demo: LiveDemo, blocked: SoapService, caplog: pytest.LogCaptureFixture
) -> None:
    blocked.script.answer = "signed"
    before = len(blocked.script.received)
    counted = ended_services("front_and_back", "confirmed")
    browser = signed_in(demo, "leesplank", blocked.publisher.id)
    received = demo.received(browser, blocked.publisher.id)
    previous = wait_out(demo, 1)
    try:
        with caplog.at_level(logging.INFO, logger="broker.logout"):
            started = students_button(demo, browser)
            # Told over SOAP before the page was shown, and shown as logged out already.
            assert len(blocked.script.received) == before + 1
            assert shown(started, name_of(blocked)) == "confirmed"
            assert shown(started, LEESPLANK) == "pending"
            # Its iframe still carries the LogoutRequest to it; it never answers.
            frames = load_frames(browser, started)
            assert sum('data-logout-status="silent"' in f.text for f in frames) == 1
            time.sleep(1.2)  # the wait passes
            outcome = finish_logout(browser, started)
    finally:
        wait_out(demo, previous)
    assert outcome.services == {LEESPLANK: "confirmed", name_of(blocked): "confirmed"}
    assert outcome.school == "confirmed"
    assert not warns(outcome.page)
    heard = peer_logouts(browser, blocked.publisher.base_url)
    assert [e["binding"] for e in heard][-1:] == [
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    ]

    # The SOAP request: signed by the broker's IdP key (xmlsec directly), naming the session.
    request = etree.fromstring(blocked.script.received[-1]).find(
        f"{{{SOAP_ENV}}}Body/samlp:LogoutRequest", NS
    )
    assert request is not None
    verify_signature(
        etree.tostring(request), demo.settings.saml.signing_cert, request.get("ID") or ""
    )
    assert request.get("Destination") == blocked.location
    name_id = request.find("saml:NameID", NS)
    assert name_id is not None and name_id.text == received["name_id"]["value"]
    indexes = [e.text for e in request.findall("samlp:SessionIndex", NS)]
    assert indexes == [received["session_index"]]

    # Counted and logged as confirmed, and as what telling it both ways saved.
    assert ended_services("front_and_back", "confirmed") == counted + 1
    ended = [m for m in caplog.messages if m.startswith("logout ended by=student")]
    assert len(ended) == 1, caplog.messages
    assert ended[0].endswith(
        "outcome=complete services=2 confirmed=2 failed=0 timed_out=0 unsupported=0 unfinished=0 "
        "front_and_back=1 confirmed_by_back_only=1"
    ), ended
    assert not any(str(name_id.text) in message for message in caplog.messages)


@pytest.mark.parametrize("answer", ["garbage", "responder"])
def test_when_soap_does_not_confirm_the_iframe_decides(
    demo: LiveDemo, both: SoapService, answer: str, caplog: pytest.LogCaptureFixture
) -> None:
    both.script.answer = answer
    before = len(both.script.received)
    browser = signed_in(demo, "leesplank", both.publisher.id)
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        started = students_button(demo, browser)
        assert shown(started, name_of(both)) == "pending"  # SOAP failed: the iframe's turn
        outcome = finish_logout(browser, started)
    assert len(both.script.received) == before + 1
    assert outcome.services == {LEESPLANK: "confirmed", name_of(both): "confirmed"}
    assert not warns(outcome.page)
    refused = [m for m in caplog.messages if m.startswith("back-channel logout")]
    assert refused and both.publisher.id in refused[0], caplog.messages


def test_a_soap_endpoint_that_does_not_answer_in_time_leaves_the_iframe_its_time(
    demo: LiveDemo, both: SoapService
) -> None:
    both.script.answer = "slow"  # answers after three seconds: past the whole wait
    browser = signed_in(demo, "leesplank", both.publisher.id)
    previous = wait_out(demo, 1)
    try:
        started = students_button(demo, browser)
        outcome = finish_logout(browser, started)
    finally:
        wait_out(demo, previous)
    assert outcome.services == {LEESPLANK: "confirmed", name_of(both): "confirmed"}


def test_soap_failed_and_an_iframe_that_never_answers_is_said_plainly(
    demo: LiveDemo, blocked: SoapService
) -> None:
    blocked.script.answer = "responder"
    counted = ended_services("front_and_back", "timed_out")
    browser = signed_in(demo, blocked.publisher.id)
    previous = wait_out(demo, 1)
    try:
        started = students_button(demo, browser)
        load_frames(browser, started)
        time.sleep(1.2)
        outcome = finish_logout(browser, started)
    finally:
        wait_out(demo, previous)
    assert outcome.services == {name_of(blocked): "timed_out"}
    assert warns(outcome.page)
    assert ended_services("front_and_back", "timed_out") == counted + 1


def test_the_service_that_started_it_is_answered_as_before_and_the_other_told_both_ways(
    demo: LiveDemo, both: SoapService, blocked: SoapService
) -> None:
    both.script.answer = blocked.script.answer = "signed"
    told_both, told_blocked = len(both.script.received), len(blocked.script.received)
    browser = signed_in(demo, both.publisher.id, blocked.publisher.id)
    previous = wait_out(demo, 1)
    try:
        started = browser.get(f"{both.publisher.base_url}/logout")
        assert started.status == 200 and "/logout/" in started.url, started.url
        load_frames(browser, started)
        time.sleep(1.2)  # the blocked iframe's wait passes
        outcome: LogoutOutcome = finish_logout(browser, started)
    finally:
        wait_out(demo, previous)
    # The initiator is not told (it asked); the other is, over SOAP too.
    assert len(both.script.received) == told_both
    assert len(blocked.script.received) == told_blocked + 1
    assert outcome.services == {name_of(blocked): "confirmed"}
    # Everything confirmed: the answer goes on by itself, Success as before.
    assert sends_on_by_itself(outcome.page)
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in back.text, back.text[:500]


def test_a_final_page_opened_early_counts_an_unanswered_service_as_unfinished(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """`/done` opened before an iframe answered (by hand, a stale link): the service still
    pending is counted `unfinished` (metric and log line), one documented bucket, never as a
    status of its own."""
    counted = ended_services("front", "unfinished")
    browser = signed_in(demo, "leesplank")
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        started = students_button(demo, browser)
        assert shown(started, LEESPLANK) == "pending"
        done = browser.get(started.url.rstrip("/") + "/done")
    assert done.status == 200, done.text[:300]
    assert ended_services("front", "unfinished") == counted + 1
    assert ended_services("front", "pending") == 0
    ended = [m for m in caplog.messages if m.startswith("logout ended by=student")]
    assert len(ended) == 1, caplog.messages
    assert "services=1 confirmed=0 failed=0 timed_out=0 unsupported=0 unfinished=1 " in ended[0]
    assert "pending=" not in ended[0]
