"""SAML endpoints: the IdP's SSO (towards publishers), the SP's ACS (towards schools), metadata."""

from __future__ import annotations

import logging

from flask import Blueprint, request
from werkzeug.wrappers import Response

from broker.core.errors import (
    InvalidMessage,
    NotTheChosenSchool,
    StaleSchoolAnswer,
    StateExpired,
    UnknownSchool,
    UnsignedSchoolRefusal,
    UpstreamFailure,
)
from broker.saml.entities import (
    ACS_PATH,
    IDP_METADATA_PATH,
    MDQ_PATH,
    SP_METADATA_PATH,
    SSO_PATH,
    sha1_identifier,
)
from broker.saml.front import AnswerableRefusal

# pysaml2 stays under broker/saml (house-style.md): the binding URNs come from there, not saml2.
from broker.saml.redirect_query import (
    RELAY_STATE,
    SAML_REQUEST,
)
from broker.web import metrics
from broker.web.browser import SSO_COOKIE, browser_secret, remember_school
from broker.web.discovery import choose_again_page
from broker.web.i18n import speak
from broker.web.login_finish import finish
from broker.web.login_upstream import continue_login
from broker.web.notice import answered_login
from broker.web.relay_state import read_binding
from broker.web.service_answers import (
    answerable_refusal_page,
    refuse_to_service,
    stale_answer_page,
)
from broker.web.unsigned_refusal import unsigned_refusal_page
from broker.web.wiring import broker

saml = Blueprint("saml", __name__)
log = logging.getLogger(__name__)

METADATA_TYPE = "application/samlmetadata+xml"


@saml.route(SSO_PATH, methods=["GET", "POST"])
def sso() -> Response:
    """An AuthnRequest from a publisher's service, Redirect (GET) or POST binding."""
    b = broker()
    binding, read, query = read_binding()
    saml_request, relay_state = read(SAML_REQUEST), read(RELAY_STATE)
    if not saml_request:
        raise InvalidMessage("no SAMLRequest", code="missing_request")
    try:
        login_request = b.saml_requests.parse_authn_request(
            binding, saml_request, relay_state, query
        )
    except AnswerableRefusal as refusal:
        return answerable_refusal_page(refusal)
    secret = browser_secret(request)
    # Saved by continue_login only if the login goes on (an SSO session may answer at once).
    record = b.flow.start(secret, login_request, save=False)
    return continue_login(secret, record, request.cookies.get(SSO_COOKIE))


@saml.route(ACS_PATH, methods=["POST"])
def acs() -> Response:
    """The school's Response. Bound to the browser by its cookie and to our request by the
    login record; the record is consumed only after every check passed."""
    b = broker()
    saml_response = request.form.get("SAMLResponse")
    login_id = request.form.get("RelayState", "")
    if not saml_response:
        raise InvalidMessage("no SAMLResponse", code="missing_response")
    if not login_id or len(login_id) > 64:
        raise InvalidMessage("response without our RelayState", code="unsolicited")
    secret = browser_secret(request)
    try:
        record = b.flow.load(secret, login_id)
    except StateExpired:
        # The login was answered already (Back into the school's page, which answered once
        # more): "already signed in"; else it expired, as it says.
        return answered_login(secret, login_id)
    # A cross-site POST: the language cookie (SameSite=Lax) stays behind, the record kept it.
    speak(record.language)
    metrics.school_answered(metrics.SAML, record.upstream_at)
    school = b.view.school(record.school_id or "")
    if school is None:
        raise UnknownSchool("login record has no school")
    if record.upstream_request_id is None:
        # No request of this login is open: the school's signed "no" took it (a reload of that
        # "no", the school's late answer to its request). Stale, as the OIDC callback's
        # `stale_state`: nothing of it is read, the login stays, and its ways on are shown again.
        return stale_answer_page(record, school, StaleSchoolAnswer("no open request"))
    try:
        verified = b.saml_back.parse_response(saml_response, school, record.upstream_request_id)
    except UnsignedSchoolRefusal as refusal:
        # A "no" the school did not sign: anyone could have sent it, so the record stays and
        # the service hears nothing; the student is told, and may try again at the school.
        return unsigned_refusal_page(record, school, refusal)
    except NotTheChosenSchool as refusal:
        # A shared IdP's student of another school: the login stays open to choose again.
        return choose_again_page(record, refusal)
    except UpstreamFailure as failure:
        # The school itself said no (or sent no usable subject): the login ends, and the
        # service hears so in its own protocol instead of waiting for a response forever.
        record = b.flow.take(secret, login_id)
        return refuse_to_service(record, failure)
    # Once only, also across a wiped store (the epoch rule, security.md); and single use: of two
    # racing copies of this response the one that won the replay key consumes the record. One
    # round trip for both where the store's batches are atomic, the replay check first; there a
    # replayed answer consumes the record too: it can only be a copy of this login's own answer
    # (signed, InResponseTo our request, sent with this browser's cookie), and the login it
    # belongs to ends either way. On a Cluster the take follows the check (`first_use`).
    reply = b.replay.first_use(
        f"saml:{school.idp_entity_id}",
        verified.assertion_id,
        verified.issued_at,
        verified.expires_at,
        request_id=record.upstream_request_id,
        then=b.flow.take_op(login_id),
    )
    record = b.flow.taken(secret, login_id, reply)
    response = finish(record, verified.identity, verified.authn_instant)
    # The school's login succeeded: now it is worth offering first next time (not at the
    # choice, where a mis-tap would be remembered).
    remember_school(response, school.id)
    return response


def _metadata_response(xml: str) -> Response:
    response = Response(xml, mimetype=METADATA_TYPE)
    # Peers that honour HTTP caching come back as often as the metadata's cacheDuration says.
    response.cache_control.max_age = broker().settings.metadata.cache_duration_seconds
    response.cache_control.public = True
    return response


@saml.route(IDP_METADATA_PATH)
def idp_metadata() -> Response:
    return _metadata_response(broker().saml_entities.idp_metadata())


@saml.route(SP_METADATA_PATH)
def sp_metadata() -> Response:
    return _metadata_response(broker().saml_entities.sp_metadata())


@saml.route(f"{MDQ_PATH}/<path:identifier>")
def mdq_entity(identifier: str) -> Response:
    """The broker's own entities by the Metadata Query Protocol: `{sha1}<hex of the entity
    id>` or the URL-encoded entity id. Anything else is a plain 404, as the protocol says."""
    b = broker()
    documents = {
        b.settings.idp_entity_id: b.saml_entities.idp_metadata,
        b.settings.sp_entity_id: b.saml_entities.sp_metadata,
    }
    for entity_id, document in documents.items():
        if identifier in (entity_id, sha1_identifier(entity_id)):
            return _metadata_response(document())
    log.info("metadata query for an unknown entity", extra={"reason": "mdq_unknown_entity"})
    return Response("unknown entity\n", status=404, mimetype="text/plain")
