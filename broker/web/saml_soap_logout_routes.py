"""A school IdP's LogoutRequest server to server: the SAML SOAP binding at the SP (bindings 3.2,
profiles 4.4.3 and 4.4.4.2), `POST /saml/sp/slo/soap`, listed in the SP metadata only.

No browser, so no cookie: the request is checked exactly as a school's front-channel
LogoutRequest (SamlSchoolLogout.read: firewall, a registered school IdP, an enveloped signature
with a key of its metadata, this endpoint as Destination, fresh; then once, `first_use`) and ends
the session as the cookieless front-channel case does (`end_without_the_cookie`): looked up by
its SessionIndex, ended when the NameID is its student's, its publishers told server to server.
Only the binding differs: the answer is a signed LogoutResponse in a SOAP envelope on this
connection. There is no TLS client authentication here, so the signature is the only proof of
who sent the request; an unsigned one is refused.

A request that does not hold gets a SOAP fault (HTTP 500, bindings 3.2.3.3; `Client`, or
`MustUnderstand` for a header the broker must understand), a log line with the reason code
only, and changes nothing. With the store down, a checked request gets a signed
`Responder`/`PartialLogout` answer (HTTP 200): the failure is in the SAML processing, which
bindings 3.2.3.3 says is answered with a SAML status, not a fault; it is the answer the
front channel gives then, and says in a message the school can verify that the session may
stand.
"""

from __future__ import annotations

import base64
import logging

from flask import Blueprint, make_response, request
from werkzeug.wrappers import Response

from broker.core.errors import BrokerError, InvalidMessage, StoreUnavailable
from broker.saml import firewall
from broker.saml.entities import SP_SOAP_SLO_PATH
from broker.saml.logout import FAILED_ANSWER, LOGOUT_REQUEST, Answer, PeerLogout, SchoolIdp
from broker.saml.logout_messages import (
    STATUS_PARTIAL_LOGOUT,
    STATUS_REQUESTER,
    STATUS_SUCCESS,
    STATUS_UNKNOWN_PRINCIPAL,
    Received,
)
from broker.saml.logout_soap import (
    FAULT_CLIENT,
    FAULT_MUST_UNDERSTAND,
    FAULT_SERVER,
    SOAP_CONTENT_TYPE,
    soap_fault,
    soap_message,
)
from broker.saml.metadata_check import SOAP as BINDING_SOAP
from broker.web import metrics
from broker.web.saml_logout_routes import end_without_the_cookie, first_use, give_back_use
from broker.web.wiring import broker

saml_soap_logout = Blueprint("saml_soap_logout", __name__)
log = logging.getLogger("broker.logout")

WHAT = "school logout by soap schools"
_OUTCOMES = {
    (STATUS_SUCCESS, None): "success",
    (STATUS_SUCCESS, STATUS_PARTIAL_LOGOUT): "partial",
    (STATUS_REQUESTER, STATUS_UNKNOWN_PRINCIPAL): "unknown_principal",
    (FAILED_ANSWER.status, FAILED_ANSWER.second): "responder",
}


@saml_soap_logout.route(SP_SOAP_SLO_PATH, methods=["POST"])
def sp_slo_soap() -> Response:
    try:
        idp, peer = _read()
        answer = _end(idp, peer)
    except BrokerError as refusal:
        return _refused(refusal)
    metrics.school_logout_soap(_outcome(answer))
    body = broker().saml_school_logout.soap_answer(peer, answer)
    return _soap(body, 200)


def _read() -> tuple[SchoolIdp, PeerLogout]:
    """The envelope's one LogoutRequest, checked as the front channel checks one (no store)."""
    if request.content_length is not None and request.content_length > firewall.MAX_BODY_BYTES:
        raise InvalidMessage("SOAP request over the cap", code="too_large")
    if request.mimetype != "text/xml":
        # SOAP 1.1 over HTTP is text/xml (bindings 3.2.2.1).
        raise InvalidMessage("SOAP request not text/xml", code="not_soap")
    xml = soap_message(request.get_data(cache=False))
    # Read as a front-channel POST message is (the enveloped signature, the same checks), its
    # Destination this endpoint.
    received = Received(BINDING_SOAP, base64.b64encode(xml).decode())
    return broker().saml_school_logout.read(received, LOGOUT_REQUEST)


def _end(idp: SchoolIdp, peer: PeerLogout) -> Answer:
    """Once only, then ended as without the cookie. The store down: the `Responder` answer,
    nothing done (the session ends first of all, in one batch, or not at all)."""
    try:
        first_use(peer)
    except StoreUnavailable:
        return _not_handled(idp)
    try:
        return end_without_the_cookie(idp, peer, cookies=False, what=WHAT)
    except StoreUnavailable:
        # Taken, then the store failed before anything ended: given back, so that the school's
        # retry of the same message (ending is safe to repeat) is not refused as a replay.
        give_back_use(peer)
        return _not_handled(idp)


def _not_handled(idp: SchoolIdp) -> Answer:
    schools = ",".join(school.id for school in idp.schools)
    log.warning("school logout by soap not handled schools=%s code=store_unavailable", schools)
    return FAILED_ANSWER


def _refused(refusal: BrokerError) -> Response:
    metrics.school_logout_soap(refusal.code)
    # The reason code only: never the issuer's text, the NameID or the message.
    log.warning("school logout by soap refused code=%s", refusal.code)
    if refusal.code == "soap_header":
        code = FAULT_MUST_UNDERSTAND
    else:
        code = FAULT_CLIENT if refusal.status < 500 else FAULT_SERVER
    return _soap(soap_fault(code, refusal.code), 500)


def _outcome(answer: Answer) -> str:
    """The metric's label for an answer (the answers `end_without_the_cookie` gives)."""
    return _OUTCOMES.get((answer.status, answer.second), "other")


def _soap(body: str, status: int) -> Response:
    response = make_response(body, status)
    response.headers["Content-Type"] = SOAP_CONTENT_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response
