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

What the SAML processing refuses is answered as bindings 3.2.3.3 says, with a SAML status, not a
SOAP fault: a request whose signature verified but that is stale, for another Destination or a
replay gets a signed `Requester`/`RequestDenied` LogoutResponse (HTTP 200). A message that is
not one the broker can take (not a SOAP envelope, not XML, over the cap, refused by the
firewall, a header the broker must understand) or whose sender is not proven (an unknown
issuer, no or a bad signature) gets a SOAP fault (HTTP 500; `Client`, or `MustUnderstand`; a
body over the cap too), and so does a request over the rate limit (`Server`: it may
succeed later); every other error of this route is a fault too (soap_errors.py). Either way: a log
line with the reason code only, and nothing changed. With the store down, a checked request
gets a signed `Responder`/`PartialLogout` answer (HTTP 200): a failure of the SAML
processing too; it is the answer the front channel gives then, and says in a message the
school can verify that the session may stand.
"""

from __future__ import annotations

import base64
import logging

from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from broker.core.errors import BrokerError, InvalidMessage, StoreUnavailable
from broker.saml import firewall
from broker.saml.entities import SP_SOAP_SLO_PATH
from broker.saml.logout import (
    DENIED_ANSWER,
    FAILED_ANSWER,
    LOGOUT_REQUEST,
    Answer,
    PeerLogout,
    SchoolIdp,
)
from broker.saml.logout_messages import (
    STATUS_PARTIAL_LOGOUT,
    STATUS_REQUESTER,
    STATUS_UNKNOWN_PRINCIPAL,
    Received,
    SignedRefusal,
)
from broker.saml.logout_soap import FAULT_SERVER, soap_fault, soap_message
from broker.saml.metadata_check import SOAP as BINDING_SOAP
from broker.web import metrics
from broker.web.rate_limits import RateLimited
from broker.web.saml_logout_routes import end_without_the_cookie, first_use
from broker.web.soap_errors import TOO_LARGE, note_soap_refusal, soap_response
from broker.web.wiring import broker

saml_soap_logout = Blueprint("saml_soap_logout", __name__)
log = logging.getLogger("broker.logout")

WHAT = "school logout by soap schools"
_OUTCOMES = {
    (firewall.STATUS_SUCCESS, None): "success",
    (firewall.STATUS_SUCCESS, STATUS_PARTIAL_LOGOUT): "partial",
    (STATUS_REQUESTER, STATUS_UNKNOWN_PRINCIPAL): "unknown_principal",
    (FAILED_ANSWER.status, FAILED_ANSWER.second): "responder",
}
# What the store being down is counted as (the same answer as `responder`, another cause).
STORE_UNAVAILABLE = "store_unavailable"


@saml_soap_logout.route(SP_SOAP_SLO_PATH, methods=["POST"])
def sp_slo_soap() -> Response:
    try:
        idp, peer = _read()
    except SignedRefusal as refusal:
        return _denied(refusal, refusal.request_id)
    # Any other refusal of the message goes to the app's handler, which answers this route
    # with a SOAP fault (errors.py, soap_errors.soap_refusal).
    request_id = peer.message.message_id
    try:
        answer = _end(idp, peer)
    except InvalidMessage as refusal:
        return _denied(refusal, request_id)  # a replay: the signature held
    if answer is None:
        metrics.school_logout_soap(STORE_UNAVAILABLE)
        answer = FAILED_ANSWER
    else:
        metrics.school_logout_soap(_outcome(answer))
    return _answered(request_id, answer)


def _read() -> tuple[SchoolIdp, PeerLogout]:
    """The envelope's one LogoutRequest, checked as the front channel checks one (no store)."""
    if request.content_length is not None and request.content_length > firewall.MAX_BODY_BYTES:
        raise InvalidMessage("SOAP request over the cap", code=TOO_LARGE)
    if request.mimetype != "text/xml":
        # SOAP 1.1 over HTTP is text/xml (bindings 3.2.2.1).
        raise InvalidMessage("SOAP request not text/xml", code="not_soap")
    try:
        content = request.get_data(cache=False)
    except RequestEntityTooLarge:
        # A chunked body (no Content-Length) that ran past the app's MAX_CONTENT_LENGTH.
        raise InvalidMessage("SOAP request over the cap", code=TOO_LARGE) from None
    xml = soap_message(content)
    # Read as a front-channel POST message is (the enveloped signature, the same checks), its
    # Destination this endpoint if it names one.
    received = Received(BINDING_SOAP, base64.b64encode(xml).decode())
    return broker().saml_school_logout.read(received, LOGOUT_REQUEST)


def _end(idp: SchoolIdp, peer: PeerLogout) -> Answer | None:
    """Once only (a replay raises `InvalidMessage`), then ended as without the cookie. None:
    the store failed, and the school hears `Responder`."""
    try:
        first_use(peer)
        return end_without_the_cookie(idp, peer, cookies=False, what=WHAT)
    except StoreUnavailable:
        _not_handled(idp)
        return None


def _not_handled(idp: SchoolIdp) -> None:
    schools = ",".join(school.id for school in idp.schools)
    log.warning("school logout by soap not handled schools=%s code=store_unavailable", schools)


def _denied(refusal: BrokerError, request_id: str) -> Response:
    """A signed request the SAML processing refuses: `Requester`/`RequestDenied`, signed."""
    note_soap_refusal(refusal.code)
    return _answered(request_id, DENIED_ANSWER)


@saml_soap_logout.errorhandler(RateLimited)
def _rate_limited(error: RateLimited) -> Response:
    """Over the `acs` rate limit: a fault, not the app's HTML page. `Server`: the same message
    may succeed later (SOAP 1.1, 4.4.1); Retry-After says when."""
    note_soap_refusal("rate_limited")
    response = soap_response(soap_fault(FAULT_SERVER, "rate_limited"), 500)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def _outcome(answer: Answer) -> str:
    """The metric's label for an answer (the answers `end_without_the_cookie` gives)."""
    return _OUTCOMES.get((answer.status, answer.second), "other")


def _answered(request_id: str, answer: Answer) -> Response:
    body = broker().saml_school_logout.soap_answer(request_id, answer)
    return soap_response(body, 200)
