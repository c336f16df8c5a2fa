"""A school's IdP ends the broker's session over the SAML SOAP binding (bindings 3.2, profiles
4.4.3): no browser at all, so no cookie.

The demo school's IdP (its entity id and its key, SchoolForger) sends a signed LogoutRequest in
a SOAP envelope to `/saml/sp/slo/soap`, naming the NameID and SessionIndex of a real login: the
ones the school itself would name (its own LogoutRequest for that login, taken before the
browser brings it). The broker ends the session as the cookieless front-channel case does
(test_logout_school_iframe.py) and answers with a signed LogoutResponse in a SOAP envelope,
checked here with xmlsec directly. A message that does not hold, or whose sender is not proven,
gets a SOAP fault; a signed request the SAML processing refuses (stale, another Destination, a
replay) a signed Requester/RequestDenied; either way nothing changes. The demo school's IdP
also sends one itself (`/logout?binding=soap`, pysaml2 signing).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from saml2.saml import NameID

from broker.certificates import write_pair
from broker.core.errors import StoreUnavailable
from broker.core.model import School
from broker.core.ports import StoreOp, StoreReply
from broker.login.flow import SSO
from broker.login.sealed import store_key
from broker.web import metrics, saml_logout_routes, saml_soap_logout_routes
from broker.web.browser import SSO_COOKIE
from broker.web.metrics import CountingStore
from broker.web.rate_limits import RateLimited, RateLimiter
from tests.flows.test_logout_soap import SoapService, envelope, soap_service
from tests.flows.test_operations_endpoints import sample
from tests.support.client import Browser
from tests.support.forge import NS, SchoolForger, redirect_message, verify_signature
from tests.support.live import LiveDemo
from tests.support.saml_workers import demo_school_forger

STUDENT = "fatima.elamrani"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
# pysaml2 writes metadata certificates to NamedTemporaryFile objects (sigver.make_temp), also
# when a signature fails to verify, and leaves closing them to the garbage collector, which
# warns; not ours to fix (as in tests/security/test_logout_refusals.py).
pytestmark = [
    pytest.mark.usefixtures("collect_pysaml2_temp_files"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@dataclass(frozen=True)
class Login:
    browser: Browser
    token: str  # the broker's SSO token in that browser, to look at the session
    name_id: NameID  # as the school gave it, qualifiers included
    session_index: str


@dataclass(frozen=True)
class Answer:
    http_status: int
    doc: etree._Element  # the SOAP envelope
    raw: bytes

    @property
    def response(self) -> etree._Element:
        found = self.doc.find(f"{{{SOAP_ENV}}}Body/samlp:LogoutResponse", NS)
        assert found is not None, self.raw[:500]
        return found

    @property
    def statuses(self) -> list[str]:
        codes = self.response.iterfind(".//samlp:StatusCode", NS)
        return [str(code.get("Value")).removeprefix(STATUS) for code in codes]

    @property
    def fault(self) -> tuple[str, str]:
        fault = self.doc.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
        assert fault is not None, self.raw[:500]
        return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


@pytest.fixture(scope="module")
def school(demo: LiveDemo) -> SchoolForger:
    return demo_school_forger(demo)


@pytest.fixture(scope="module")
def soap_sp(demo: LiveDemo) -> Iterator[SoapService]:
    """A publisher that confirms over SOAP: a session at it alone can end completely."""
    yield from soap_service(demo, "soap-van-school")


def soap_url(demo: LiveDemo) -> str:
    return f"{demo.broker_url}/saml/sp/slo/soap"


def login(demo: LiveDemo, publisher: str = "leesplank", student: str = STUDENT) -> Login:
    """A real login through the demo school, and what the school names it by."""
    browser = Browser()
    assert demo.login(browser, publisher, student).final.status == 200
    sp_slo = f"{demo.broker_url}/saml/sp/slo"
    page = browser.get(
        f"{demo.school_url}/logout?uid={student}", stop=lambda u: u.startswith(sp_slo)
    )
    assert page.location is not None and page.location.startswith(sp_slo), page.url
    xml, _ = redirect_message(page.location)
    request = etree.fromstring(xml)
    name_id = request.find("saml:NameID", NS)
    index = request.findtext("samlp:SessionIndex", namespaces=NS)
    assert name_id is not None and name_id.text and index
    given = NameID(
        text=name_id.text,
        format=name_id.get("Format"),
        name_qualifier=name_id.get("NameQualifier"),
        sp_name_qualifier=name_id.get("SPNameQualifier"),
    )
    return Login(browser, browser.cookies(demo.broker_url)[SSO_COOKIE], given, index)


def request_for(demo: LiveDemo, school: SchoolForger, at: Login, **changes: Any) -> tuple[str, str]:
    """(the school's signed LogoutRequest for `at`, its ID); `changes` as SchoolForger takes."""
    fields: dict[str, Any] = {
        "destination": soap_url(demo),
        "name_id": at.name_id,
        "session_indexes": (at.session_index,),
    } | changes
    xml = school.logout_request(**fields)
    return xml, str(etree.fromstring(xml.encode()).get("ID"))


def send(demo: LiveDemo, body: str, content_type: str = "text/xml; charset=utf-8") -> Answer:
    headers = {
        "Content-Type": content_type,
        "SOAPAction": '"http://www.oasis-open.org/committees/security"',
    }
    answer = requests.post(soap_url(demo), data=body.encode(), headers=headers, timeout=30)
    return _answer(answer)


def _answer(answer: requests.Response) -> Answer:
    assert answer.headers["Content-Type"].startswith("text/xml"), answer.headers
    assert "Set-Cookie" not in answer.headers
    # Bindings 3.2.3.2: not cached, by HTTP/1.1 and HTTP/1.0 caches alike.
    assert answer.headers["Cache-Control"] == "no-cache, no-store"
    assert answer.headers["Pragma"] == "no-cache"
    return Answer(answer.status_code, etree.fromstring(answer.content), answer.content)


def denied(demo: LiveDemo, answer: Answer, request_id: str) -> None:
    """`answer` is the broker's signed Requester/RequestDenied to `request_id`, HTTP 200."""
    answered_signed(demo, answer, request_id, ["Requester", "RequestDenied"])


def answered_signed(demo: LiveDemo, answer: Answer, request_id: str, statuses: list[str]) -> None:
    """`answer` is the broker's signed LogoutResponse to `request_id` with `statuses`."""
    assert answer.http_status == 200, answer.raw[:500]
    assert answer.statuses == statuses
    response = answer.response
    assert response.get("InResponseTo") == request_id
    verify_signature(
        etree.tostring(response), demo.settings.saml.signing_cert, str(response.get("ID"))
    )


def stands(demo: LiveDemo, at: Login) -> bool:
    return demo.broker.flow.session(at.token) is not None


def goes_to_school(demo: LiveDemo, browser: Browser) -> bool:
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    return demo.shows_discovery(page) or page.url.startswith(f"{demo.school_url}/sso")


def soap_requests(outcome: str) -> float:
    rendered = metrics.render()[0].decode()
    return sample(rendered, "ketenbroker_school_logout_soap_requests_total", outcome=outcome)


def test_a_signed_soap_logout_request_ends_the_session_and_is_answered_signed(
    demo: LiveDemo, school: SchoolForger, soap_sp: SoapService, caplog: pytest.LogCaptureFixture
) -> None:
    soap_sp.script.answer = "signed"
    told = len(soap_sp.script.received)
    at = login(demo, soap_sp.publisher.id)
    xml, request_id = request_for(demo, school, at)
    before = soap_requests("success")
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        answer = send(demo, envelope(xml))

    assert answer.http_status == 200, answer.raw[:500]
    response = answer.response
    # Signed by the broker's SP key (checked with xmlsec, not the broker's code).
    verify_signature(
        etree.tostring(response), demo.settings.saml.signing_cert, str(response.get("ID"))
    )
    assert response.get("InResponseTo") == request_id
    assert response.get("Destination") is None  # it rides back on the connection
    assert response.findtext("saml:Issuer", namespaces=NS) == demo.sp_entity_id
    # Its only service confirmed over SOAP: the whole session ended.
    assert answer.statuses == ["Success"]
    assert len(soap_sp.script.received) == told + 1
    assert not stands(demo, at)
    assert goes_to_school(demo, at.browser)
    assert soap_requests("success") == before + 1
    lines = [m for m in caplog.messages if m.startswith("school logout by soap schools=")]
    assert len(lines) == 1 and lines[0].endswith(
        "services=1 confirmed=1 failed=0 timed_out=0 not_told=0 unsupported=0"
    ), caplog.messages
    assert not any(str(at.name_id.text) in message for message in caplog.messages)


def test_the_demo_schools_own_idp_ends_the_session_over_soap(demo: LiveDemo) -> None:
    """The demo school's IdP itself (pysaml2, its own key) sends the SOAP LogoutRequest for its
    latest session, to the SOAP endpoint it found in the broker's SP metadata."""
    at = login(demo)
    sent = requests.get(f"{demo.school_url}/logout?uid={STUDENT}&binding=soap", timeout=30)
    assert sent.status_code == 200, sent.text[:500]
    answer = Answer(sent.status_code, etree.fromstring(sent.content), sent.content)
    response = answer.response
    verify_signature(
        etree.tostring(response), demo.settings.saml.signing_cert, str(response.get("ID"))
    )
    assert answer.statuses == ["Success", "PartialLogout"]  # leesplank: browser-only SLO
    assert not stands(demo, at)
    assert goes_to_school(demo, at.browser)


def test_a_session_with_a_browser_only_service_ends_partial(
    demo: LiveDemo, school: SchoolForger
) -> None:
    # As the cookieless front channel: a SAML service reachable only through the browser
    # cannot be told, so the school hears Success/PartialLogout, and the session is gone.
    at = login(demo)
    xml, request_id = request_for(demo, school, at)
    answer = send(demo, envelope(xml))
    assert answer.http_status == 200
    assert answer.statuses == ["Success", "PartialLogout"]
    assert not stands(demo, at)
    # Sent again: a replay, refused with a SAML status, as its signature held (bindings
    # 3.2.3.3: a fault is for SOAP-level errors).
    denied(demo, send(demo, envelope(xml)), request_id)


def test_another_students_name_id_is_unknown_principal_and_ends_nothing(
    demo: LiveDemo, school: SchoolForger
) -> None:
    at = login(demo)
    other = NameID(text="someone-else", format=at.name_id.format)
    xml, _ = request_for(demo, school, at, name_id=other)
    answer = send(demo, envelope(xml))
    assert answer.http_status == 200
    assert answer.statuses == ["Requester", "UnknownPrincipal"]
    assert stands(demo, at)


def test_a_request_without_session_index_cannot_be_looked_up(
    demo: LiveDemo, school: SchoolForger
) -> None:
    # No SessionIndex and no browser: the broker cannot know, so never Success.
    at = login(demo)
    xml, _ = request_for(demo, school, at, session_indexes=())
    answer = send(demo, envelope(xml))
    assert answer.http_status == 200
    assert answer.statuses == ["Responder", "PartialLogout"]
    assert stands(demo, at)


@pytest.fixture(scope="module")
def strangers(demo: LiveDemo) -> dict[str, SchoolForger]:
    """A key not in the school's metadata, speaking as the demo school and as an IdP the
    registry does not know."""
    folder: Path = demo.directory / "peers"
    key, cert = folder / "soap-stranger.key", folder / "soap-stranger.crt"
    write_pair(key, cert, "soap stranger")
    sp_metadata = demo.broker.saml_entities.sp_metadata()
    # A registered school IdP whose entity id extends the demo school's: with a comment in
    # its Issuer (`<demo school><!---->.evil`), lxml's `.text` read the demo school while
    # pysaml2 verified with this IdP's keys, so it could end the demo school's sessions.
    look_alike = SchoolForger(f"{demo.school_entity_id}.evil", key, cert, sp_metadata)
    demo.registry.add_school(
        School("99XX77", "Look-alike", look_alike.entity_id), look_alike.metadata()
    )
    return {
        "wrong_key": SchoolForger(demo.school_entity_id, key, cert, sp_metadata),
        "unknown_issuer": SchoolForger("https://stranger.example/idp", key, cert, sp_metadata),
        "comment_issuer": look_alike,
    }


def with_comment_in_issuer(xml: str, school: SchoolForger) -> str:
    """The look-alike's signed message with `<!---->` before `.evil` in its Issuer: the
    signature (exclusive c14n, comments dropped) still holds."""
    named = f">{school.entity_id}</"
    assert named in xml
    return xml.replace(named, f">{school.entity_id.removesuffix('.evil')}<!---->.evil</")


def _bad_body(
    case: str, demo: LiveDemo, school: SchoolForger, at: Login, strangers: dict[str, SchoolForger]
) -> tuple[str, str]:
    """(SOAP body, content type) of a request that must be refused."""
    text_xml = "text/xml; charset=utf-8"
    if case == "unsigned":
        return envelope(request_for(demo, school, at, sign=False)[0]), text_xml
    if case == "comment_issuer":
        look_alike = strangers[case]
        return envelope(
            with_comment_in_issuer(request_for(demo, look_alike, at)[0], look_alike)
        ), text_xml
    if case in strangers:
        return envelope(request_for(demo, strangers[case], at)[0]), text_xml
    xml, _ = request_for(demo, school, at)
    if case == "stray_text":
        return envelope(xml + "stray"), text_xml
    if case == "doctype":
        return '<!DOCTYPE x [<!ENTITY a "b">]>' + envelope(xml), text_xml
    if case == "two_requests":
        return envelope(xml + request_for(demo, school, at)[0]), text_xml
    if case == "must_understand":
        header = f'<h:Other xmlns:h="urn:x" soap11:mustUnderstand="1" xmlns:soap11="{SOAP_ENV}"/>'
        return envelope(xml, header), text_xml
    if case == "soap_1_2_content_type":
        return envelope(xml), "application/soap+xml; charset=utf-8"
    assert case == "no_envelope"
    return xml, text_xml


# case → (faultcode, the reason code the fault and the log line give)
REFUSED = {
    "unsigned": ("Client", "request_unsigned"),
    "wrong_key": ("Client", "bad_signature"),
    "unknown_issuer": ("Client", "unknown_school"),
    "comment_issuer": ("Client", "issuer_not_text"),
    "doctype": ("Client", "doctype_refused"),
    "two_requests": ("Client", "soap_body"),
    "stray_text": ("Client", "soap_body"),
    "must_understand": ("MustUnderstand", "soap_header"),
    "soap_1_2_content_type": ("Client", "not_soap"),
    "no_envelope": ("Client", "not_soap"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_request_that_does_not_hold_gets_a_fault_and_changes_nothing(
    demo: LiveDemo,
    school: SchoolForger,
    strangers: dict[str, SchoolForger],
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    at = login(demo)
    body, content_type = _bad_body(case, demo, school, at, strangers)
    fault_code, reason = REFUSED[case]
    before = soap_requests(reason)
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        answer = send(demo, body, content_type)
    assert answer.http_status == 500, answer.raw[:500]
    assert answer.fault == (f"soap11:{fault_code}", reason)
    assert stands(demo, at)
    assert f"school logout by soap refused code={reason}" in caplog.messages, caplog.messages
    assert not any(str(at.name_id.text) in message for message in caplog.messages)
    assert soap_requests(reason) == before + 1
    # Nothing was used up: the school's good request still ends the session.
    xml, _ = request_for(demo, school, at)
    assert send(demo, envelope(xml)).statuses == ["Success", "PartialLogout"]
    assert not stands(demo, at)


# case → the reason code the log line and the metric give
DENIED = {"stale": "stale_request", "front_channel_destination": "wrong_destination"}


@pytest.mark.parametrize("case", sorted(DENIED))
def test_a_signed_request_the_saml_processing_refuses_is_denied_with_a_status(
    demo: LiveDemo, school: SchoolForger, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Its signature held: the broker answers with a signed SAML status (bindings 3.2.3.3).
    at = login(demo)
    if case == "stale":
        changes: dict[str, Any] = {"issued": datetime.now(UTC) - timedelta(hours=2)}
    else:
        changes = {"destination": f"{demo.broker_url}/saml/sp/slo"}
    xml, request_id = request_for(demo, school, at, **changes)
    reason = DENIED[case]
    before = soap_requests(reason)
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        denied(demo, send(demo, envelope(xml)), request_id)
    assert stands(demo, at)
    assert f"school logout by soap refused code={reason}" in caplog.messages, caplog.messages
    assert soap_requests(reason) == before + 1
    xml, _ = request_for(demo, school, at)
    assert send(demo, envelope(xml)).statuses == ["Success", "PartialLogout"]


def test_a_request_without_destination_is_taken_over_soap(
    demo: LiveDemo, school: SchoolForger
) -> None:
    # SAML core 3.2.1 holds only a Destination that is present to the endpoint; the rule that
    # a signed message must name one is the Redirect and POST bindings' (3.4.5.2, 3.5.5.2).
    at = login(demo)
    xml, _ = request_for(demo, school, at, destination=None)
    assert "Destination" not in xml
    assert send(demo, envelope(xml)).statuses == ["Success", "PartialLogout"]
    assert not stands(demo, at)


def test_a_request_with_an_empty_destination_is_taken_over_soap(
    demo: LiveDemo, school: SchoolForger
) -> None:
    """`Destination=""` names no endpoint (pysaml2 writes it when the metadata lists none for
    the binding): read as no Destination, not as another one."""
    at = login(demo)
    xml, _ = request_for(demo, school, at, destination="")
    assert 'Destination=""' in xml
    assert send(demo, envelope(xml)).statuses == ["Success", "PartialLogout"]
    assert not stands(demo, at)


def _chunks(kib: int) -> Iterator[bytes]:
    """An envelope of about `kib` KiB, sent without a Content-Length."""
    yield f'<soap11:Envelope xmlns:soap11="{SOAP_ENV}"><soap11:Body><!--'.encode()
    for _ in range(kib // 16):
        yield b"a" * 16 * 1024
    yield b"--></soap11:Body></soap11:Envelope>"


@pytest.mark.parametrize("kib", [300, 1024])
def test_a_chunked_body_over_the_cap_gets_a_fault(demo: LiveDemo, kib: int) -> None:
    # No Content-Length to refuse it by: the firewall's cap (300 KiB) or the app's
    # MAX_CONTENT_LENGTH (1 MiB) stops it, and the school gets a fault with the size code,
    # not werkzeug's 413 page.
    before = soap_requests("message_too_large")
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    answer = _answer(requests.post(soap_url(demo), data=_chunks(kib), headers=headers, timeout=30))
    # Bindings 3.2.3.3: an error of the SOAP layer is HTTP 500 with a fault, not 413.
    assert answer.http_status == 500
    assert answer.fault == ("soap11:Client", "message_too_large")
    assert soap_requests("message_too_large") == before + 1


def test_a_body_over_the_cap_gets_a_fault_and_changes_nothing(
    demo: LiveDemo, school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    at = login(demo)
    xml, _ = request_for(demo, school, at)
    # The school's own good request, padded past the cap: refused before it is read.
    padded = envelope(xml).replace(
        "</soap11:Body>", "<!--" + "a" * 300 * 1024 + "--></soap11:Body>"
    )
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        answer = send(demo, padded)
    assert answer.http_status == 500
    assert answer.fault == ("soap11:Client", "message_too_large")
    assert "school logout by soap refused code=message_too_large" in caplog.messages
    assert stands(demo, at)
    assert send(demo, envelope(xml)).statuses == ["Success", "PartialLogout"]
    assert not stands(demo, at)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_another_method_gets_a_405_fault_with_allow(demo: LiveDemo, method: str) -> None:
    before = soap_requests("method_not_allowed")
    answer = requests.request(method, soap_url(demo), data=b"<x/>", timeout=30)
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    if method != "HEAD":
        assert _answer(answer).fault == ("soap11:Client", "method_not_allowed")
    else:  # no body to a HEAD; the rest of the answer is the fault's
        assert answer.headers["Content-Type"].startswith("text/xml")
    assert soap_requests("method_not_allowed") == before + 1


def test_the_rest_of_the_app_keeps_its_html_error_pages(demo: LiveDemo) -> None:
    for url in (f"{demo.broker_url}/saml/sp/slo/soap/x", f"{demo.broker_url}/saml/sp/slo"):
        answer = requests.put(url, timeout=30)
        assert answer.status_code in (404, 405)
        assert answer.headers["Content-Type"].startswith("text/html")


# What breaks → the reason code of the `Server` fault (the same message may succeed later).
SERVER_FAULTS = {
    "rate_limit": "rate_limited",  # over the `acs` rate limit (Retry-After says when)
    "bug": "server_error",  # an error of the broker's own: a fault, not the HTML page
}


@pytest.mark.parametrize("case", sorted(SERVER_FAULTS))
def test_the_school_gets_a_server_fault_and_nothing_ends(
    demo: LiveDemo, school: SchoolForger, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    def spent(self: RateLimiter, *args: Any, **kwargs: Any) -> None:
        raise RateLimited(30)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    at = login(demo)
    xml, _ = request_for(demo, school, at)
    with monkeypatch.context() as patch:
        if case == "rate_limit":
            patch.setattr(RateLimiter, "check", spent)
        else:
            patch.setattr(saml_soap_logout_routes, "end_without_the_cookie", broken)
        answer = send(demo, envelope(xml))
    assert answer.http_status == 500
    assert answer.fault == ("soap11:Server", SERVER_FAULTS[case])
    assert stands(demo, at)


def test_a_look_alike_idps_request_is_refused_on_the_front_channel_too(
    demo: LiveDemo, strangers: dict[str, SchoolForger]
) -> None:
    # The same Issuer with a comment, over HTTP-POST at the front-channel endpoint (no cookie).
    at = login(demo)
    look_alike = strangers["comment_issuer"]
    xml, _ = request_for(demo, look_alike, at, destination=f"{demo.broker_url}/saml/sp/slo")
    message = base64.b64encode(with_comment_in_issuer(xml, look_alike).encode()).decode()
    answer = requests.post(
        f"{demo.broker_url}/saml/sp/slo", data={"SAMLRequest": message}, timeout=30
    )
    assert answer.status_code == 400, answer.text[:500]
    assert stands(demo, at)


def test_with_the_store_down_the_school_hears_responder_and_nothing_ends(
    demo: LiveDemo, school: SchoolForger, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = login(demo)
    xml, request_id = request_for(demo, school, at)

    def down(self: CountingStore, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis: ConnectionError")

    before = soap_requests("store_unavailable")
    with monkeypatch.context() as patch:
        for name in ("put", "get", "take", "add_if_absent", "delete", "batch"):
            patch.setattr(CountingStore, name, down)
        answer = send(demo, envelope(xml))
    # Counted apart from the Responder a request without SessionIndex gets.
    assert soap_requests("store_unavailable") == before + 1
    answered_signed(demo, answer, request_id, ["Responder", "PartialLogout"])
    assert stands(demo, at)


def test_a_request_the_store_failed_after_taking_is_taken_again_when_retried(
    demo: LiveDemo, school: SchoolForger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replay check took the request's id, then the store failed while ending the session:
    # the school heard Responder and sends the same message again, which must not be a replay.
    at = login(demo)
    xml, _ = request_for(demo, school, at)

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis: ConnectionError")

    with monkeypatch.context() as patch:
        patch.setattr(saml_logout_routes, "_end_without_the_cookie", fails)
        assert send(demo, envelope(xml)).statuses == ["Responder", "PartialLogout"]
    assert stands(demo, at)
    assert send(demo, envelope(xml)).statuses == ["Success", "PartialLogout"]
    assert not stands(demo, at)


def test_a_retry_after_the_store_failed_half_way_tells_the_services(
    demo: LiveDemo, school: SchoolForger, soap_sp: SoapService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch that ends a session is not atomic: here the session's record is deleted, then
    # the store fails before its services record goes. The school hears Responder and sends
    # the same message again; the retry must tell the session's SOAP service (until the
    # 2026-11-30 review it found no session, answered Success, and nobody was told).
    soap_sp.script.answer = "signed"
    at = login(demo, soap_sp.publisher.id)
    told = len(soap_sp.script.received)
    xml, _ = request_for(demo, school, at)
    sso = store_key(SSO, at.token)
    batch = CountingStore.batch

    def half(self: CountingStore, operations: list[StoreOp]) -> list[StoreReply]:
        cut = next(
            (i for i, op in enumerate(operations) if op.operation == "delete" and op.key == sso),
            None,
        )
        if cut is None:
            return batch(self, operations)
        batch(self, operations[: cut + 1])
        raise StoreUnavailable("redis: ConnectionError")

    with monkeypatch.context() as patch:
        patch.setattr(CountingStore, "batch", half)
        assert send(demo, envelope(xml)).statuses == ["Responder", "PartialLogout"]
    assert not stands(demo, at)
    assert len(soap_sp.script.received) == told

    assert send(demo, envelope(xml)).statuses == ["Success"]
    assert len(soap_sp.script.received) == told + 1
    # Told once: the next request finds nothing left.
    again, _ = request_for(demo, school, at)
    assert send(demo, envelope(again)).statuses == ["Success"]
    assert len(soap_sp.script.received) == told + 1


def test_the_sp_metadata_lists_the_soap_endpoint(demo: LiveDemo) -> None:
    metadata = etree.fromstring(Browser().get(f"{demo.broker_url}/saml/sp/metadata").text.encode())
    endpoints = {
        (e.get("Binding"), e.get("Location"))
        for e in metadata.iterfind(f".//{{{MD}}}SingleLogoutService")
    }
    assert (SOAP_BINDING, soap_url(demo)) in endpoints
    # Towards publishers the broker takes no SOAP (test_logout_soap.py checks the IdP's).
