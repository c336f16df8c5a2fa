"""SAML Single Logout over the SOAP binding towards publishers (SAML bindings 3.2, profiles 4.4).

A school's LogoutRequest that reaches the broker without its cookies (the school's iframe,
test_logout_school_iframe.py) ends the session server side: no browser window is there to
carry a LogoutRequest to the session's SAML services. A service whose metadata lists a SOAP
SingleLogoutService is told server to server instead: here a scripted service provider on
127.0.0.1 takes the SOAP POST, keeps it, and answers as the test says (Success signed or
unsigned, another status, garbage, a fault, the wrong InResponseTo, a bad signature, nothing in
time). The school hears Success only when every service confirmed. An OIDC school's
back-channel logout token tells the service the same way; a service with SOAP alone is told so
in the student's own logout too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from lxml import etree
from saml2 import BINDING_SOAP, samlp
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from broker.web import metrics
from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_school import op_url
from tests.flows.test_operations_endpoints import sample
from tests.flows.test_school_backchannel_logout import logout_token, post
from tests.support.client import Browser
from tests.support.forge import NS, PublisherForger, verify_signature
from tests.support.live import LiveDemo, Publisher
from tests.support.logout import carry_saml_posts, finish_logout

STUDENT = "fatima.elamrani"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"


@dataclass
class Script:
    """What the scripted service answers next, and what it received."""

    answer: str = "signed"
    received: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


class _SoapSp(BaseHTTPRequestHandler):
    script: ClassVar[Script]
    forger: ClassVar[PublisherForger]
    entity_id: ClassVar[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.script.received.append(body)
        self.script.headers.append({k: v for k, v in self.headers.items()})
        if self.script.answer == "cut":
            # The connection dropped without an answer: the service could not be reached.
            self.close_connection = True
            return
        request = etree.fromstring(body).find(f"{{{SOAP_ENV}}}Body/samlp:LogoutRequest", NS)
        request_id = request.get("ID", "") if request is not None else ""
        status, content = self.answer(self.script.answer, request_id, request)
        if self.script.answer == "slow":
            time.sleep(3)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except BrokenPipeError:
            pass  # "slow": the broker stopped waiting long ago

    def answer(
        self, how: str, request_id: str, request: etree._Element | None = None
    ) -> tuple[int, bytes]:
        if how == "garbage":
            return 200, b"<html>not soap</html>"
        if how == "fault":
            fault = "<soap11:Fault><faultcode>soap11:Server</faultcode></soap11:Fault>"
            return 500, envelope(fault).encode()
        if how == "doctype":
            return 200, b'<!DOCTYPE x [<!ENTITY a "b">]>' + envelope("&a;").encode()
        if how == "huge":
            return 200, envelope("<x>" + "a" * 300 * 1024 + "</x>").encode()
        if how == "pysaml2" and request is not None:
            return 200, self.pysaml2_answer(request)
        if how == "must_understand":
            signed = self.forger.logout_response(request_id, SUCCESS)
            header = (
                f'<h:Other xmlns:h="urn:x" soap11:mustUnderstand="1" xmlns:soap11="{SOAP_ENV}"/>'
            )
            return 200, envelope(signed, header).encode()
        status = RESPONDER if how.startswith("responder") else SUCCESS
        second = PARTIAL_LOGOUT if how == "responder_partial" else None
        irt = "_another" if how == "wrong_irt" else request_id
        issuer = "https://stranger.example/sp" if how == "wrong_issuer" else self.entity_id
        if how == "bad_signature":
            # Signed as Responder, then said to be Success: the signature no longer holds.
            xml = self.forger.logout_response(irt, RESPONDER, issuer=issuer)
            xml = xml.replace(RESPONDER, SUCCESS)
        else:
            xml = self.forger.logout_response(
                irt, status, issuer=issuer, sign=how != "unsigned", second=second
            )
        if how == "comment_issuer":
            # A comment in its own, signed Issuer (exclusive c14n drops it: the signature
            # holds): lxml's `.text` and pysaml2 would read two names.
            cut = len(issuer) // 2
            xml = xml.replace(f">{issuer}<", f">{issuer[:cut]}<!---->{issuer[cut:]}<")
        return 200, envelope(xml).encode()

    def pysaml2_answer(self, request: etree._Element) -> bytes:
        """The answer pysaml2 itself makes (as `Saml2Client.handle_logout_request` does over
        SOAP): a signed Success with `Destination=""`, in its own envelope."""
        client = self.forger.client
        told = samlp.logout_request_from_string(etree.tostring(request))
        signed = client.create_logout_response(
            told, [BINDING_SOAP], sign=True, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
        )
        info = client.apply_binding(BINDING_SOAP, str(signed), "", response=True)
        return str(info["data"]).encode()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def envelope(body: str, header: str = "") -> str:
    head = f"<soap11:Header>{header}</soap11:Header>" if header else ""
    return (
        f'<soap11:Envelope xmlns:soap11="{SOAP_ENV}">{head}'
        f"<soap11:Body>{body}</soap11:Body></soap11:Envelope>"
    )


def with_soap_slo(location: str, *, keep_front: bool = True) -> Any:
    """A metadata edit: a SOAP SingleLogoutService at `location` (and, `keep_front` False, no
    Redirect/POST ones, so that only the SOAP binding reaches the service)."""

    def edit(metadata: str) -> str:
        root = etree.fromstring(metadata.encode())
        descriptor = root.find("md:SPSSODescriptor", {"md": MD})
        assert descriptor is not None
        existing = descriptor.findall("md:SingleLogoutService", {"md": MD})
        if not keep_front:
            for element in existing:
                descriptor.remove(element)
        soap = etree.Element(f"{{{MD}}}SingleLogoutService")
        soap.set("Binding", SOAP_BINDING)
        soap.set("Location", location)
        # Schema order: after the KeyDescriptors, before the AssertionConsumerServices.
        before = descriptor.find("md:AssertionConsumerService", {"md": MD})
        assert before is not None
        before.addprevious(soap)
        return str(etree.tostring(root).decode())

    return edit


MD = "urn:oasis:names:tc:SAML:2.0:metadata"


@dataclass(frozen=True)
class SoapService:
    publisher: Publisher
    script: Script
    location: str


def soap_service(demo: LiveDemo, name: str, *, front: str = "answer") -> Iterator[SoapService]:
    """A publisher with a SOAP SingleLogoutService served by a scripted service here, and
    the demo publisher's front channel as `front` says (its `slo` setting: "none" lists no
    Redirect/POST endpoint, "silent" takes the iframe's request and never answers)."""
    script = Script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SoapSp)
    location = f"http://127.0.0.1:{server.server_port}/slo-soap"
    service_id = f"{name}-{len(demo.publishers)}"
    publisher = demo.add_publisher(
        service_id,
        "leermiddelen",
        (),
        slo=front,
        edit_metadata=with_soap_slo(location, keep_front=front != "none"),
    )
    keys = demo.directory / "peers"
    forger = PublisherForger(
        publisher.entity_id,
        publisher.acs_url,
        keys / f"{service_id}.key",
        keys / f"{service_id}.crt",
        demo.broker.saml_entities.idp_metadata(),
    )
    handler = type(
        "SoapSp", (_SoapSp,), {"script": script, "forger": forger, "entity_id": publisher.entity_id}
    )
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SoapService(publisher, script, location)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def soap_sp(demo: LiveDemo) -> Iterator[SoapService]:
    """A publisher with Redirect/POST SLO endpoints and a SOAP one."""
    yield from soap_service(demo, "soap-uitgever")


@pytest.fixture(scope="module")
def soap_only(demo: LiveDemo) -> Iterator[SoapService]:
    """A publisher whose only SLO endpoint is the SOAP one."""
    yield from soap_service(demo, "alleen-soap", front="none")


@dataclass(frozen=True)
class SchoolLogout:
    status: str  # what the school heard: success, partial or failed
    browser: Browser  # the student's, whose session the school ended
    received: dict[str, Any]  # what the service received at the login


def school_logout_without_cookies(
    demo: LiveDemo, service: SoapService, answer: str
) -> SchoolLogout:
    """Log in at the service, then let the school's LogoutRequest reach the broker without its
    cookies (as in the school's iframe), the service scripted to answer `answer`."""
    service.script.answer = answer
    browser = Browser()
    assert demo.login(browser, service.publisher.id, STUDENT).final.status == 200
    received = demo.received(browser, service.publisher.id)
    sp_slo = f"{demo.broker_url}/saml/sp/slo"
    page = browser.get(
        f"{demo.school_url}/logout?uid={STUDENT}", stop=lambda u: u.startswith(sp_slo)
    )
    assert page.location is not None and page.location.startswith(sp_slo), page.url
    frame = Browser()
    result = carry_saml_posts(frame, frame.get(page.location))
    assert result.status == 200, result.text[:500]
    found = etree.HTML(result.text).find(".//*[@data-logout-status]")
    assert found is not None, result.text[:500]
    return SchoolLogout(str(found.get("data-logout-status")), browser, received)


def test_the_service_gets_a_signed_logout_request_and_the_school_hears_success(
    demo: LiveDemo, soap_sp: SoapService
) -> None:
    before = len(soap_sp.script.received)
    logout = school_logout_without_cookies(demo, soap_sp, "signed")
    assert logout.status == "success"

    assert len(soap_sp.script.received) == before + 1
    body = soap_sp.script.received[-1]
    assert soap_sp.script.headers[-1]["Content-Type"].startswith("text/xml")
    assert "oasis-open.org/committees/security" in soap_sp.script.headers[-1]["SOAPAction"]
    doc = etree.fromstring(body)
    assert doc.tag == f"{{{SOAP_ENV}}}Envelope"
    request = doc.find(f"{{{SOAP_ENV}}}Body/samlp:LogoutRequest", NS)
    assert request is not None
    # Signed by the broker's IdP key (checked with xmlsec directly, not the broker's code).
    xml = etree.tostring(request)
    verify_signature(xml, demo.settings.saml.signing_cert, request.get("ID") or "")
    assert request.get("Destination") == soap_sp.location
    issuer = request.find("saml:Issuer", NS)
    assert issuer is not None and issuer.text == demo.idp_entity_id
    # The NameID and SessionIndex of the assertion the service received.
    name_id = request.find("saml:NameID", NS)
    assert name_id is not None
    assert name_id.text == logout.received["name_id"]["value"]
    assert name_id.get("Format") == logout.received["name_id"]["format"]
    assert name_id.get("SPNameQualifier") == soap_sp.publisher.entity_id
    indexes = [e.text for e in request.findall("samlp:SessionIndex", NS)]
    assert indexes == [logout.received["session_index"]]
    # The session is gone: the next login goes to the school.
    page = logout.browser.get(f"{soap_sp.publisher.base_url}/login")
    assert demo.shows_discovery(page) or page.url.startswith(f"{demo.school_url}/sso")


def test_an_unsigned_success_over_the_binding_confirms(
    demo: LiveDemo, soap_sp: SoapService
) -> None:
    assert school_logout_without_cookies(demo, soap_sp, "unsigned").status == "success"


def test_a_pysaml2_services_answer_with_an_empty_destination_confirms(
    demo: LiveDemo, soap_sp: SoapService, caplog: pytest.LogCaptureFixture
) -> None:
    """pysaml2 answers over SOAP with Destination="" (the broker's metadata lists no SOAP
    endpoint to name): that names no Destination, and the answer confirms."""
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        assert school_logout_without_cookies(demo, soap_sp, "pysaml2").status == "success"
    assert not any("wrong_destination" in message for message in caplog.messages)


# What the broker's log line gives as the reason (login/logout_delivery.py).
NOT_CONFIRMED = {
    "responder": "refused service=%s status=Responder",
    # Both levels: the operator reads that the service said its logout was partial.
    "responder_partial": "refused service=%s status=Responder/PartialLogout",
    # Not reached: the platform's code, not the school's (the party the operator must check).
    "cut": "failed service=%s code=platform_unreachable",
    "garbage": "failed service=%s code=not_soap",
    "fault": "refused service=%s status=500",
    "doctype": "failed service=%s code=doctype_refused",
    "wrong_irt": "failed service=%s code=wrong_in_response_to",
    "wrong_issuer": "failed service=%s code=wrong_issuer",
    "comment_issuer": "failed service=%s code=issuer_not_text",
    "bad_signature": "failed service=%s code=bad_signature",
    "huge": "failed service=%s code=response_too_large",
    "must_understand": "failed service=%s code=soap_header",
}


@pytest.mark.parametrize("answer", sorted(NOT_CONFIRMED))
def test_a_service_that_does_not_confirm_makes_it_partial(
    demo: LiveDemo, soap_sp: SoapService, answer: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(soap_sp.script.received)
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        assert school_logout_without_cookies(demo, soap_sp, answer).status == "partial"
    assert len(soap_sp.script.received) == before + 1  # it was told; its answer did not hold
    line = "back-channel logout " + NOT_CONFIRMED[answer] % soap_sp.publisher.id
    assert line in caplog.messages, caplog.messages
    # Nothing of the student or the message in the log: no NameID, no SessionIndex.
    told = etree.fromstring(soap_sp.script.received[-1])
    name_id = told.find(f"{{{SOAP_ENV}}}Body/samlp:LogoutRequest/saml:NameID", NS)
    assert name_id is not None and name_id.text
    assert not any(name_id.text in message for message in caplog.messages)


def test_a_service_that_did_not_hear_is_counted_and_logged_as_such(
    demo: LiveDemo, soap_sp: SoapService, caplog: pytest.LogCaptureFixture
) -> None:
    # The operator's view of a partial logout: which services were not told, by status.
    failed = told_services("failed")
    with caplog.at_level(logging.INFO, logger="broker.logout"):
        assert school_logout_without_cookies(demo, soap_sp, "garbage").status == "partial"
    assert told_services("failed") == failed + 1
    summary = [m for m in caplog.messages if m.startswith("school logout without the cookie")]
    assert len(summary) == 1, caplog.messages
    assert summary[0].endswith(
        "services=1 confirmed=0 failed=1 timed_out=0 not_told=0 unsupported=0"
    ), summary


def test_a_service_that_answers_too_late_makes_it_partial(
    demo: LiveDemo, soap_sp: SoapService, caplog: pytest.LogCaptureFixture
) -> None:
    previous = demo.broker.school_logout.wait_seconds
    demo.broker.school_logout.wait_seconds = 1.0
    timed_out = told_services("timed_out")
    try:
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="broker.logout"):
            assert school_logout_without_cookies(demo, soap_sp, "slow").status == "partial"
    finally:
        demo.broker.school_logout.wait_seconds = previous
    # Well within the service's three seconds: the deadline is the deadline.
    assert time.monotonic() - started < 10
    # The platform's timeout, named so (not the school's, which the operator would check).
    assert told_services("timed_out") == timed_out + 1
    line = f"back-channel logout timed out service={soap_sp.publisher.id} code=platform_timeout"
    assert caplog.messages.count(line) == 1, caplog.messages
    assert not any("school_timeout" in message for message in caplog.messages)


def test_a_soap_only_service_is_told_in_the_students_own_logout(
    demo: LiveDemo, soap_only: SoapService
) -> None:
    """With a browser: services with a Redirect/POST endpoint get the iframe as before; one
    whose only SLO endpoint is SOAP is told server to server, no longer 'cannot be told'."""
    soap_only.script.answer = "signed"
    before = len(soap_only.script.received)
    browser = Browser()
    for publisher in ("leesplank", soap_only.publisher.id):
        assert demo.login(browser, publisher, STUDENT).final.status == 200
    started = browser.get(f"{demo.publishers['leesplank'].base_url}/logout")
    outcome = finish_logout(browser, started)
    name = f"{soap_only.publisher.id} (test publisher)"
    assert outcome.services[name] == "confirmed", outcome.services
    assert len(soap_only.script.received) == before + 1


def test_the_brokers_idp_metadata_offers_no_soap_endpoint(demo: LiveDemo) -> None:
    metadata = Browser().get(f"{demo.broker_url}/saml/idp/metadata").text
    assert "SingleLogoutService" in metadata
    assert SOAP_BINDING not in metadata


def test_an_oidc_schools_back_channel_logout_tells_the_soap_service(
    demo: LiveDemo, soap_sp: SoapService
) -> None:
    """The other way a session ends without a browser: the OIDC school's logout token."""
    soap_sp.script.answer = "signed"
    before = len(soap_sp.script.received)
    confirmed = told_services("confirmed")
    browser = Browser()
    base = soap_sp.publisher.base_url
    page = browser.get(f"{base}/login?school={op_url(demo)}")
    assert page.url.startswith(f"{op_url(demo)}/authorize"), page.url
    form = next(f for f in page.forms if ("uid", STUDENT) in f.buttons)
    page = carry_saml_posts(browser, browser.post(form.action, {"uid": STUDENT}))
    assert page.status == 200 and page.url.startswith(base), (page.url, page.text[:300])
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    session = demo.broker.flow.session(token)
    assert session is not None
    sid = session[0].upstream_session["sid"]

    assert post(demo, logout_token(demo, sid)).status_code == 200

    assert demo.broker.flow.session(token) is None
    assert len(soap_sp.script.received) == before + 1
    assert told_services("confirmed") == confirmed + 1


def told_services(status: str) -> float:
    return sample(
        metrics.render()[0].decode(), "ketenbroker_school_logout_services_total", status=status
    )
