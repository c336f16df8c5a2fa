"""A peer's signed LogoutResponse whose status is not Success: a logout it did not confirm.

A platform (SAML SP) that answers the broker's LogoutRequest in its iframe with `Responder`/
`PartialLogout` (Shibboleth SP does, when it finds no session of its own), `Requester` or any
other status but Success is recorded at once as "did not confirm": its iframe's answer is filed
like a Success is, so the page need not wait out the others' time for it, and says so, as do the
metrics and the log. pysaml2 raises for every such status; until the fix that answer was
refused as a bad message (400, `message_refused`) and the student waited for "did not answer".
An answer that does not hold (unsigned, a signature that does not verify) is refused as ever
and files nothing. A school that answers PartialLogout (SAML core 3.7.3.2: its session may
stand on elsewhere, also under a top-level Success) did not confirm either, and the page says
in the student's words what that means.

The demo publisher "partial" answers as a pysaml2 SP would (Redirect binding, query-signed);
the scripted answers are forged here with the peer's own key (tests/support/forge.py) and
brought to the broker by POST, as a browser would carry them.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from lxml import etree

from broker.web import metrics
from tests.flows.test_operations_endpoints import sample
from tests.support.client import Browser, Page
from tests.support.forge import PublisherForger, redirect_message
from tests.support.live import LiveDemo, Publisher
from tests.support.logout import (
    answer_initiator,
    carry_saml_posts,
    finish_logout,
    frame_urls,
    load_frames,
    read_final,
    run_id_of,
    wait_out,
    warns,
)
from tests.support.saml_workers import demo_school_forger

STUDENT = "daan.devries"
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
SUCCESS, RESPONDER, REQUESTER = (STATUS + name for name in ("Success", "Responder", "Requester"))
PARTIAL_LOGOUT = STATUS + "PartialLogout"
DID_NOT_CONFIRM = "Did not confirm the logout: you may still be logged in there."
# Long: a page that moves on before it passed did not wait for the service's answer.
LONG_WAIT = 30


@dataclass(frozen=True)
class Scripted:
    publisher: Publisher
    forger: PublisherForger

    @property
    def name(self) -> str:
        return f"{self.publisher.id} (test publisher)"


@pytest.fixture(scope="module")
def partial(demo: LiveDemo) -> Publisher:
    """A pysaml2 publisher that answers every LogoutRequest Responder/PartialLogout, signed."""
    return demo.add_publisher("halve-uitgever", "leermiddelen", (), slo="partial")


@pytest.fixture(scope="module")
def scripted(demo: LiveDemo) -> Iterator[Scripted]:
    """A publisher whose answers the test makes itself (its own SLO endpoint never answers)."""
    publisher = demo.add_publisher("geschreven-uitgever", "leermiddelen", (), slo="silent")
    keys = demo.directory / "peers"
    yield Scripted(publisher, _forger(demo, publisher, keys / publisher.id))


def _forger(demo: LiveDemo, publisher: Publisher, key_stem: Path) -> PublisherForger:
    return PublisherForger(
        publisher.entity_id,
        publisher.acs_url,
        key_stem.with_suffix(".key"),
        key_stem.with_suffix(".crt"),
        demo.broker.saml_entities.idp_metadata(),
    )


def signed_in(demo: LiveDemo, *publishers: str) -> Browser:
    browser = Browser()
    for publisher in publishers:
        assert demo.login(browser, publisher, STUDENT).final.status == 200
    return browser


def status_of(browser: Browser, page: Page) -> dict[str, Any]:
    """The propagation page's status JSON (what its script polls)."""
    found = browser.get(f"{page.url.split('/logout/')[0]}/logout/{run_id_of(page)}/status")
    assert found.status == 200, found.text
    summary: dict[str, Any] = found.response.json()
    return summary


def ended_services(channel: str, status: str) -> float:
    rendered = metrics.render()[0].decode()
    return sample(rendered, "ketenbroker_logout_services_total", channel=channel, status=status)


def request_id_to(browser: Browser, url: str, peer: str) -> str:
    """Follow `url` until the broker sends a LogoutRequest to `peer` (a redirect, or an
    auto-POST form): that request's ID, the request itself never delivered."""
    page = browser.get(url, stop=lambda u: u.startswith(peer))
    if page.location and page.location.startswith(peer):
        xml, _ = redirect_message(page.location)
    else:
        forms = [f for f in page.forms if "SAMLRequest" in f.fields and f.action.startswith(peer)]
        assert forms, (page.url, page.status, page.text[:500])
        xml = base64.b64decode(forms[0].fields["SAMLRequest"])
    ident = etree.fromstring(xml).get("ID")
    assert ident, xml
    return str(ident)


def bring(browser: Browser, url: str, xml: str) -> Page:
    """A LogoutResponse carried to the broker by POST, as the peer's page would send it."""
    return browser.post(url, {"SAMLResponse": base64.b64encode(xml.encode()).decode()})


def test_a_signed_partial_logout_is_did_not_confirm_at_once(
    demo: LiveDemo, partial: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    browser = signed_in(demo, "leesplank", partial.id)
    name = f"{partial.id} (test publisher)"
    failed = ended_services("front", "failed")
    previous = wait_out(demo, LONG_WAIT)
    try:
        with caplog.at_level(logging.INFO, logger="broker.logout"):
            started = browser.get(f"{demo.publishers['leesplank'].base_url}/logout")
            frames = load_frames(browser, started)
            # The answer came back and was taken: the frame says "did not confirm".
            assert any('data-logout-frame-status="failed"' in f.text for f in frames), [
                (f.status, f.text[:300]) for f in frames
            ]
            # Filed at once: the page's script hears it is done, long before the wait is over.
            summary = status_of(browser, started)
            assert summary["done"] is True
            assert summary["services"] == [{"name": name, "status": "failed"}]
            outcome = finish_logout(browser, started)
    finally:
        wait_out(demo, previous)
    assert outcome.services == {name: "failed"}
    assert DID_NOT_CONFIRM in outcome.page.text and warns(outcome.page)
    assert ended_services("front", "failed") == failed + 1
    line = f"logout answered service={partial.id} status=failed saml_status=Responder/PartialLogout"
    assert line in caplog.messages, caplog.messages
    # The service that started the logout hears it was partial.
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="partial"' in back.text, back.text


def _frame_request(demo: LiveDemo, browser: Browser, scripted: Scripted) -> tuple[Page, str]:
    """The student's logout at leesplank, up to the LogoutRequest for the scripted service:
    (the propagation page, the request's ID)."""
    started = browser.get(f"{demo.publishers['leesplank'].base_url}/logout")
    assert started.status == 200 and "/logout/" in started.url, started.url
    base = scripted.publisher.base_url
    for src in frame_urls(started):
        url = urljoin(started.url, unescape(src))
        hop = browser.get(url, stop=lambda u: u.startswith(base))
        if (hop.location or "").startswith(base):
            return started, request_id_to(browser, url, base)
    raise AssertionError("no iframe for the scripted service")


# What each forged answer does: the frame's HTTP status and what the service counts as.
FORGED = {
    "signed_requester": (200, "failed"),
    "signed_responder_partial": (200, "failed"),
    "unsigned": (400, "pending"),
    "tampered": (400, "pending"),
    "another_key": (400, "pending"),
}


@pytest.mark.parametrize("how", sorted(FORGED))
def test_a_forged_answer_counts_only_when_it_holds(
    demo: LiveDemo, scripted: Scripted, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    browser = signed_in(demo, "leesplank", scripted.publisher.id)
    slo = f"{demo.broker_url}/saml/idp/slo"
    previous = wait_out(demo, LONG_WAIT)
    try:
        started, request_id = _frame_request(demo, browser, scripted)
        forger = scripted.forger
        if how == "another_key":
            # Leesplank's key, speaking as the scripted service: not a key of its metadata.
            leesplank = demo.publishers["leesplank"]
            forger = _forger(demo, leesplank, demo.directory / "peers" / "leesplank")
        status, second = {
            "signed_requester": (REQUESTER, None),
            "tampered": (SUCCESS, None),
        }.get(how, (RESPONDER, PARTIAL_LOGOUT))
        xml = forger.logout_response(
            request_id,
            status,
            issuer=scripted.publisher.entity_id,
            sign=how != "unsigned",
            second=second,
            destination=slo,
        )
        if how == "tampered":
            # Signed as Success, then said to be Requester: the signature no longer holds.
            xml = xml.replace(SUCCESS, REQUESTER)
        with caplog.at_level(logging.INFO, logger="broker"):
            answered = bring(browser, slo, xml)
            code, counted = FORGED[how]
            assert answered.status == code, answered.text[:300]
            assert status_of(browser, started)["services"] == [
                {"name": scripted.name, "status": counted}
            ]
        if code == 400:
            # Refused as before the fix, and nothing filed: the request still waits for its
            # answer, and the service's own signed one is taken.
            assert not any(m.startswith("logout answered") for m in caplog.messages)
            genuine = scripted.forger.logout_response(
                request_id, RESPONDER, second=PARTIAL_LOGOUT, destination=slo
            )
            assert bring(browser, slo, genuine).status == 200
        # Once only: the same answer again is unsolicited.
        assert bring(browser, slo, xml).status == 400
        outcome = finish_logout(browser, started)
    finally:
        wait_out(demo, previous)
    assert outcome.services == {scripted.name: "failed"}
    assert DID_NOT_CONFIRM in outcome.page.text


def _schools_request(demo: LiveDemo, browser: Browser) -> tuple[Page, str]:
    """The student's own logout up to the LogoutRequest to the school: (the propagation page,
    the request's ID)."""
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    started = browser.submit(my_data, f"{demo.broker_url}/my-data/close")
    load_frames(browser, started)
    next_url = f"{demo.broker_url}/logout/{run_id_of(started)}/next"
    return started, request_id_to(browser, next_url, demo.school_url)


@pytest.mark.parametrize("top", [SUCCESS, RESPONDER])
def test_a_schools_partial_logout_tells_the_student_they_may_still_be_signed_in(
    demo: LiveDemo, top: str, caplog: pytest.LogCaptureFixture
) -> None:
    browser = signed_in(demo, "leesplank")
    _, request_id = _schools_request(demo, browser)
    slo = f"{demo.broker_url}/saml/sp/slo"
    school = demo_school_forger(demo)
    answer = school.logout_response(request_id, top, second=PARTIAL_LOGOUT, destination=slo)
    # Changed after signing: refused, and the school's own answer is still taken after it.
    forged = answer.replace(PARTIAL_LOGOUT, STATUS + "RequestDenied")
    assert bring(browser, slo, forged).status == 400
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        outcome = read_final(bring(browser, slo, answer))
    assert outcome.school == "partial"
    assert warns(outcome.page)
    assert "Your school could not log you out everywhere." in outcome.page.text
    said = top.removeprefix(STATUS)
    assert any(
        m.startswith("logout answered school=")
        and m.endswith(f"status=failed saml_status={said}/PartialLogout")
        for m in caplog.messages
    ), caplog.messages


def test_a_schools_plain_refusal_is_did_not_confirm(demo: LiveDemo) -> None:
    browser = signed_in(demo, "leesplank")
    _, request_id = _schools_request(demo, browser)
    slo = f"{demo.broker_url}/saml/sp/slo"
    answer = demo_school_forger(demo).logout_response(
        request_id, REQUESTER, second=None, destination=slo
    )
    outcome = read_final(bring(browser, slo, answer))
    assert outcome.school == "failed"
    assert "Your school did not confirm the logout." in outcome.page.text
