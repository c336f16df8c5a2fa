"""SAML Single Logout towards publishers over the SOAP binding (SAML bindings 3.2, profiles 4.4):
how a service hears of a logout when no browser can carry the message, or the browser may
carry it without the service's cookie (a logout with a browser tells a service that lists
both kinds of endpoint both ways: login/logout.py).

A school that ends the session server side (its OIDC back channel, a LogoutRequest in a frame
without the broker's cookies, or one over SOAP) leaves no browser window to carry a
LogoutRequest to the session's SAML services. A service whose metadata lists a
SingleLogoutService with the SOAP binding gets the same signed LogoutRequest the front channel
would carry (logout_messages.py builds both), in a SOAP 1.1 envelope POSTed to that Location,
out through the broker's one way of making server-to-server logout calls
(login/logout_delivery.py: https, or loopback http only when the broker itself runs on loopback;
no redirects; the answer capped; within the run's deadline).

Its answer must be a SOAP envelope holding one samlp:LogoutResponse, which passes the same
firewall as every inbound SAML message (size cap, no DOCTYPE, shape and signature policy), is
issued by that very service, answers this request (InResponseTo), names the broker's IdP SLO
endpoint if it names a Destination at all (an empty one, as pysaml2 sends, names none), and is
fresh. A signed response is verified with the service's metadata keys (a bad signature fails
it); an unsigned one is accepted: the binding lets TLS authenticate the responder (profiles
4.4.4.2), and the broker reached the service's host at the URL of its registered metadata over
https (docs/saml-profile.md, "Single logout").
Only a top-level Success confirms; anything else counts as failed.

Towards schools the broker also takes a school IdP's LogoutRequest over SOAP (its SP metadata
lists `/saml/sp/slo/soap`): `soap_message` unpacks the envelope under the same rules,
`soap_answer` and `soap_fault` make what goes back (web/saml_soap_logout_routes.py). Towards
publishers the broker's IdP metadata offers no SOAP endpoint: there it only sends.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_SOAP, saml

from broker.core.errors import InvalidMessage
from broker.login.logout_delivery import BackChannelPost, Notification, PostAnswer, deliver
from broker.saml import firewall
from broker.saml.logout_messages import (
    LOGOUT_RESPONSE,
    Endpoint,
    Received,
    check_fresh,
    logout_request_message,
    parse_checked,
    signed_xml,
    slo_endpoint,
)
from broker.saml.response_checks import check_destination, check_parsed_issuer, issuer_of

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
# SAML bindings 3.2.3.3: the SOAPAction a SAML requester may send.
SOAP_ACTION = "http://www.oasis-open.org/committees/security"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
_XML_DECLARATION_END = "?>"


@dataclass(frozen=True)
class SoapAnswerRules:
    """What a service's LogoutResponse over SOAP must meet besides its own service's checks."""

    # The broker's IdP SLO endpoint: the only Destination a response may name (if any).
    destination: str
    max_age: int
    skew: int


@dataclass(frozen=True)
class SoapTarget:
    """A service to tell over SOAP: its id (for the log), entity id and SOAP endpoint."""

    service_id: str
    entity_id: str
    endpoint: Endpoint


def soap_endpoint(entity: Any, entity_id: str) -> Endpoint | None:
    """The service's SingleLogoutService with the SOAP binding; None when it lists none."""
    return slo_endpoint(entity, entity_id, "spsso", (BINDING_SOAP,))


def soap_envelope(message_xml: str) -> str:
    """A signed message in a SOAP 1.1 envelope (bindings 3.2.3.1: the SAML message is the only
    child of the Body, no SOAP header needed). Put in as text, not reparsed: the signed bytes
    go out as they were signed."""
    if message_xml.startswith("<?xml"):
        message_xml = message_xml.split(_XML_DECLARATION_END, 1)[1].lstrip()
    return _in_envelope(message_xml)


def _in_envelope(body_xml: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<soap11:Envelope xmlns:soap11="{SOAP_ENV}">'
        f"<soap11:Body>{body_xml}</soap11:Body></soap11:Envelope>"
    )


def tell_by_soap(
    entity: Any,
    post: BackChannelPost,
    target: SoapTarget,
    *,
    issuer: str,
    name_id: saml.NameID,
    session_index: str,
    rules: SoapAnswerRules,
    timeout: float,
) -> str:
    """Send the signed LogoutRequest to `target` and judge its answer: CONFIRMED, FAILED or
    TIMED_OUT (login/logout_delivery.py), never raising for the service's fault."""
    request = logout_request_message(issuer, target.endpoint, name_id, session_index)
    body = soap_envelope(signed_xml(entity, request))
    request_id = str(request.id)

    def judge(answer: PostAnswer) -> str:
        if answer.status_code != 200:
            return str(answer.status_code)  # a SOAP fault comes with 500 (SOAP 1.1, 6.2)
        return read_soap_answer(entity, answer.content, target.entity_id, request_id, rules)

    headers = {"SOAPAction": f'"{SOAP_ACTION}"'}
    notification = Notification(target.endpoint.location, body, SOAP_CONTENT_TYPE, headers)
    return deliver(post, target.service_id, notification, timeout, judge)


def read_soap_answer(
    entity: Any, content: bytes, issuer: str, request_id: str, rules: SoapAnswerRules
) -> str:
    """What `content` says of the logout: empty when it is a SOAP envelope with a
    LogoutResponse of `issuer` to `request_id` whose status is Success, else the status it
    gave, top-level and second-level (`status_names`, for the log: "Responder/PartialLogout").
    Raises InvalidMessage for an answer that does not hold."""
    xml = soap_message(content)
    doc = firewall.inspect(xml, root=LOGOUT_RESPONSE, assertions=0)
    found = issuer_of(doc)
    if found != issuer:
        raise InvalidMessage("LogoutResponse from another issuer", code="wrong_issuer")
    if doc.get("InResponseTo") != request_id:
        raise InvalidMessage("LogoutResponse to another request", code="wrong_in_response_to")
    # pysaml2 names Destination="" in every SOAP answer: no Destination, as SAML core reads it.
    check_destination(doc, LOGOUT_RESPONSE, rules.destination, required=False)
    check_fresh(doc, LOGOUT_RESPONSE, max_age=rules.max_age, skew=rules.skew)
    value = firewall.top_status(doc)
    if value != firewall.STATUS_SUCCESS:
        # Not a confirmation, signed or not: nothing to verify, it fails the service as it is.
        return firewall.status_names(value, firewall.second_status(doc))
    # A Success counts only as pysaml2 reads it: it verifies a signature, when there is one,
    # with the keys of the issuer as it reads it (which must be the one checked above), with
    # the in-process backend's policy, and the status is taken again from what it verified.
    received = Received(BINDING_HTTP_POST, base64.b64encode(xml).decode())
    parsed = parse_checked(entity, received, LOGOUT_RESPONSE)
    check_parsed_issuer(parsed, issuer)
    code = parsed.status.status_code if parsed.status is not None else None
    if code is None or code.value != firewall.STATUS_SUCCESS:
        raise InvalidMessage("LogoutResponse status unreadable", code="message_refused")
    return ""


def soap_message(content: bytes) -> bytes:
    """The one element in the envelope's Body, serialised (the caller checks that it is the
    message it expects). Not within the firewall's cap, a DOCTYPE, not a SOAP 1.1 envelope, a
    header the broker must understand, a Body without exactly one element, or a fault: refused,
    each with its own code."""
    envelope = firewall.parse_message(content)
    if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
        raise InvalidMessage("not a SOAP 1.1 envelope", code="not_soap")
    for header in envelope.iterfind(f"{{{SOAP_ENV}}}Header/*"):
        # SOAP 1.1, 4.2.3: a header the receiver must understand and does not is a failure.
        if header.get(f"{{{SOAP_ENV}}}mustUnderstand") in ("1", "true"):
            raise InvalidMessage("SOAP header the broker must understand", code="soap_header")
    bodies = envelope.findall(f"{{{SOAP_ENV}}}Body")
    children = [child for body in bodies for child in body if isinstance(child.tag, str)]
    if len(bodies) != 1:
        raise InvalidMessage("SOAP envelope without exactly one Body", code="not_soap")
    if len(children) != 1 or _stray_text(bodies[0]):
        raise InvalidMessage("SOAP Body without exactly one message", code="soap_body")
    if children[0].tag == f"{{{SOAP_ENV}}}Fault":
        raise InvalidMessage("SOAP fault", code="soap_fault")
    # Without its tail (white space, the only text the Body may have besides it).
    return bytes(etree.tostring(children[0], with_tail=False))


def _stray_text(body: etree._Element) -> bool:
    """Whether the Body holds text beside its elements (white space aside)."""
    texts = [body.text, *(child.tail for child in body)]
    return any(text and text.strip() for text in texts)


# SOAP 1.1, 4.4.1: the fault codes the broker answers with.
FAULT_CLIENT = "Client"  # the message does not hold; sent again unchanged, it fails again
FAULT_SERVER = "Server"  # the broker failed; the same message may succeed later
FAULT_MUST_UNDERSTAND = "MustUnderstand"


def soap_answer(entity: Any, message: Any) -> str:
    """`message` (a LogoutResponse) signed by `entity`'s key, in a SOAP envelope."""
    return soap_envelope(signed_xml(entity, message))


def soap_fault(code: str, reason: str) -> str:
    """A SOAP 1.1 fault (bindings 3.2.3.3: sent with HTTP 500). `reason` is the broker's own
    reason code, never the peer's text."""
    return _in_envelope(
        f"<soap11:Fault><faultcode>soap11:{code}</faultcode>"
        f"<faultstring>{reason}</faultstring></soap11:Fault>"
    )
