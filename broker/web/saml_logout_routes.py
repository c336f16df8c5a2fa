"""SAML Single Logout endpoints: the IdP's (publishers' services) and the SP's (schools).

A LogoutRequest starts a logout run (logout_routes.begin_logout) when it names this browser's
SSO session; one that names a session the broker no longer has is answered Success at once
(nothing to end), one that names another session Requester/UnknownPrincipal. A LogoutRequest is
taken once (`first_use`): where it starts a run, that check is made in LogoutStart.start by
the request that claims the session, so that the same request posted twice at the same moment
lands on one run instead of the second copy being refused as a replay. A LogoutResponse is
filed for the run that sent the request it answers, matched by InResponseTo. With the store
down, a LogoutRequest checked without it gets the store-down page (the SSO cookie dropped) and
a button that carries the peer its `Responder` answer (docs/saml-profile.md, "With the store
down"); one whose SessionIndex is another session's gets the generic page and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from broker.core.errors import InvalidMessage, StoreUnavailable
from broker.core.model import Protocol, Service, UpstreamIdentity
from broker.login.logout import BY_SCHOOL, BY_SERVICE, CONFIRMED, FAILED, Initiator
from broker.login.logout_start import Session
from broker.login.school_sessions import saml_sid
from broker.login.session_index import names_session
from broker.saml.entities import IDP_SLO_PATH, SP_SLO_PATH
from broker.saml.logout import (
    FAILED_ANSWER,
    LOGOUT_REQUEST,
    LOGOUT_RESPONSE,
    Answer,
    PeerLogout,
    Received,
    SamlSchoolLogout,
    SamlServiceLogout,
    SchoolIdp,
    answer_status,
    initiator_answer,
    required_answer,
)
from broker.saml.logout_messages import LogoutMessage

# pysaml2 stays under broker/saml (house-style.md): the binding URNs come from there.
from broker.saml.redirect_query import (
    RELAY_STATE,
    SAML_REQUEST,
    SAML_RESPONSE,
)
from broker.web.browser import SSO_COOKIE, browser_secret, carries_broker_cookies
from broker.web.login_finish import session_and_services
from broker.web.logout_refusal import refusals_worded_for_logout
from broker.web.logout_routes import begin_logout, deliver, framed, store_down_page, to_run
from broker.web.relay_state import read_binding
from broker.web.school_backchannel_routes import note_school_logout
from broker.web.wiring import broker

saml_logout = Blueprint("saml_logout", __name__)
log = logging.getLogger("broker.logout")

SAML = Protocol.SAML.value
# A LogoutRequest names one SessionIndex as a rule; more than a few are not looked up.
MAX_SESSION_INDEXES = 4


def _received() -> tuple[Received, str]:
    # The RelayState is given back with the answer, so given back exactly (relay_state.py).
    binding, read, query = read_binding()
    for kind, name in ((LOGOUT_REQUEST, SAML_REQUEST), (LOGOUT_RESPONSE, SAML_RESPONSE)):
        value = read(name)
        if value:
            return Received(binding, value, read(RELAY_STATE), query), kind
    raise InvalidMessage("no SAMLRequest or SAMLResponse", code="missing_request")


def _again(initiator: Initiator, session: Session | None) -> Response | None:
    """The LogoutRequest that started this browser's last run, sent again (the platform's form
    submitted twice): it finds no session (the first one ended it), and this browser's mark
    says this initiator (the same request id and RelayState) asked for that run: on to it
    (logout_marks.py). Asked before the replay check, whose refusal is then only a refusal:
    a copy from another browser, or once a new session stands, is refused there as before.
    (A copy that still finds the session, sent at the same moment, is sent on by the claim in
    LogoutStart.start.)"""
    if session is not None:
        return None
    earlier = broker().logout_start.started_before(browser_secret(request), initiator)
    if earlier is None:
        return None
    log.info("logout request again by=%s: on to its run", initiator.kind)
    return to_run(earlier)


@dataclass(frozen=True)
class Asked:
    """A checked LogoutRequest in this browser: the peer's message, the browser's SSO cookie,
    and the answer should the store fail (`store_down_page` with the peer's `Responder`)."""

    peer: PeerLogout
    token: str | None
    down: Callable[[StoreUnavailable], Response]


def _asked(side: SamlServiceLogout | SamlSchoolLogout, peer: PeerLogout, name: str) -> Asked:
    def down(error: StoreUnavailable) -> Response:
        return store_down_page(error, side.answer_failed(peer), name)

    return Asked(peer, request.cookies.get(SSO_COOKIE), down)


def first_use(peer: PeerLogout) -> None:
    """A LogoutRequest is taken once: a replayed copy is refused (shared by workers). Made
    before answering here (and over SOAP); for a request that starts a run, in
    LogoutStart.start instead."""
    b = broker()
    message = peer.message
    window = b.settings.login_ttl_seconds + b.settings.saml.clock_skew_seconds
    b.replay.first_use(
        _use_key(message.issuer), message.message_id, message.issued_at, message.issued_at + window
    )


def give_back_use(peer: PeerLogout) -> None:
    """Forget `first_use` of a request whose ending then failed with the store (before
    anything ended, or half way), so the school's retry of this very message is taken and
    finishes it; when the store cannot take even that, the retry is refused as a replay and
    the school must send a new request."""
    try:
        broker().replay.release(_use_key(peer.message.issuer), peer.message.message_id)
    except StoreUnavailable:
        log.warning("school logout request id not given back code=store_unavailable")


def _use_key(issuer: str) -> str:
    return f"saml-logout:{issuer}"


def end_without_the_cookie(idp: SchoolIdp, peer: PeerLogout, *, cookies: bool, what: str) -> Answer:
    """A school's checked LogoutRequest (taken once) that found no session of its IdP by a
    browser's cookie, or came with no browser at all (the SOAP binding, `cookies` False): the
    session it names ended server side, and what the school must hear (the binding carries
    it); `what`: the log line's label (note_school_logout). The
    cookie may simply not have come: an IdP that tells its services in iframes on its own page
    makes the broker a third party, and Safari blocks its cookies there, Firefox gives the
    frame a jar without them. So the session is looked up where the login filed it, under the
    SessionIndex the request names (school_sessions.py), and ended server side as a school's
    back-channel logout ends one: its OIDC platforms with a back-channel URI are told, its SAML
    services (reachable only by the browser's top window) are not, and the school hears
    Success/PartialLogout unless every one of them confirmed. Only Success when there was
    nothing left to end; UnknownPrincipal when the session filed there is another student's;
    Responder/PartialLogout when the request names no SessionIndex and none of the broker's
    cookies came (`cookies`), so the broker cannot know.

    The store failing raises `StoreUnavailable` after the request's use is given back
    (`give_back_use`): it failed before anything ended, or half way (the session's record
    deleted and its services not told: a batch is not atomic), and the school's retry of this
    very message is taken and finishes the job (ending is safe to repeat; school_logout.py
    tells the services of a session whose record went)."""
    try:
        return _end_without_the_cookie(idp, peer, cookies=cookies, what=what)
    except StoreUnavailable:
        give_back_use(peer)
        raise


def _end_without_the_cookie(
    idp: SchoolIdp, peer: PeerLogout, *, cookies: bool, what: str
) -> Answer:
    b = broker()
    message = peer.message
    schools = [each.id for each in idp.schools]
    sids = [saml_sid(index) for index in _session_indexes(message)]

    def names(identity: UpstreamIdentity) -> bool:
        return identity.upstream_session.get("name_id") == message.name_id

    outcome = b.school_logout.end_any(schools, [sid for sid in sids if sid], names)
    if outcome.other:
        log.info("logout request names another session schools=%s", ",".join(schools))
        return answer_status(known=False)
    if not outcome.ended and not any(sids) and not cookies:
        # Neither a SessionIndex to look up nor any of the broker's cookies (a frame whose
        # browser withholds them, or no browser): a session may stand in a browser, and the
        # broker cannot tell. Not `Success`: the school must not tell the student they are
        # logged out here.
        log.info("logout request without session index or cookies schools=%s", ",".join(schools))
        return FAILED_ANSWER
    if not outcome.ended:
        log.info("logout request for no session here schools=%s", ",".join(schools))
        return answer_status(known=True)
    note_school_logout(SAML, outcome, what, ",".join(schools))
    return answer_status(known=True, partial=not outcome.complete)


def _refusals_worded_for_logout(handle: Callable[[], Response]) -> Response:
    """`handle` the message; a LogoutRequest it refuses (unsigned, a signature that does not
    verify, an unknown issuer, a replay, a RelayState that is not text, …) gets the logout's
    own refusal page: the student asked to log out, the session stands, and "log out
    everywhere" is the way on (logout_refusal.py). A refused LogoutResponse is left to the
    error page: the session it concerns ended before the request it answers was sent. The
    kind is read here, not from `_received`, which may refuse before it knows it (the
    RelayState is judged before the form is read: relay_state.read_binding), where
    `_received` reads it: the query on GET, the posted form otherwise (never the other one, as
    `request.values` would: a POST's query naming a SAMLRequest beside a posted SAMLResponse is
    a response); the body is read by then, so reading the form costs nothing more."""
    return refusals_worded_for_logout(handle, _names_a_request)


def _names_a_request() -> bool:
    values = request.args if request.method == "GET" else request.form
    return bool(values.get(SAML_REQUEST))


@saml_logout.route(IDP_SLO_PATH, methods=["GET", "POST"])
def idp_slo() -> Response:
    """A publisher's service: its LogoutRequest, or its LogoutResponse to ours (in an iframe)."""
    return _refusals_worded_for_logout(lambda: _from_service(*_received()))


def _from_service(received: Received, kind: str) -> Response:
    b = broker()
    service, peer = b.saml_service_logout.read(received, kind)
    message = peer.message
    if kind == LOGOUT_RESPONSE:
        # Any status but Success (signed, as every answer must be): did not confirm, filed at
        # once, so the page need not wait out the others' time for it.
        status = CONFIRMED if message.success else FAILED
        if not b.logout.answered(message.in_response_to, service.id, status):
            raise InvalidMessage("LogoutResponse to no request of ours", code="unsolicited")
        log.info(
            "logout answered service=%s status=%s saml_status=%s",
            service.id,
            status,
            message.status,
        )
        page = render_template("logout_frame.html", confirmed=status == CONFIRMED)
        return framed(make_response(page))
    asked = _asked(b.saml_service_logout, peer, service.name)
    try:
        return _service_request(service, asked)
    except StoreUnavailable as error:
        # Checked without the store: signed by a registered service, for us, in time. Only
        # the replay check and the NameID need the store; the SessionIndex does not.
        if not _index_names(peer.message, None, _this_browsers(service, asked.token)):
            raise
        return asked.down(error)


def _session_indexes(message: LogoutMessage) -> tuple[str, ...]:
    """The SessionIndexes of a LogoutRequest that are looked at: the first MAX_SESSION_INDEXES.
    Every check of a LogoutRequest (here and over SOAP) reads these, never the rest."""
    return message.session_indexes[:MAX_SESSION_INDEXES]


Derived = Callable[[tuple[str, ...]], bool]


def _none_derived(indexes: tuple[str, ...]) -> bool:
    return False


def _this_browsers(service: Service, token: str | None) -> Derived:
    """Whether a SessionIndex is one this browser's session gave `service`, known without the
    store (`names_session`: derived from the SSO token and the service): its own value, or
    COMPAT(session-index-per-service) the one shared value a session opened before the upgrade
    gave every service. Another service's value, or another session's, is not."""

    def derived(indexes: tuple[str, ...]) -> bool:
        return names_session(token, service.id, indexes)

    return derived


def _index_names(message: LogoutMessage, kept: str | None, derived: Derived) -> bool:
    """Whether a LogoutRequest's SessionIndexes name the session: none named (the NameID
    decides), the value `kept` (the session's record; None with the store down), or one that
    `derived` recognises. For a publisher's request, with the store and without it alike:
    a service given the old shared value before the upgrade that logged in again after it
    (its record now holds its own value) still names the session by the old one, as it does
    with the store down. None named, with the store down: taken as this browser's, as a
    student who logged out at a shared laptop must not stay signed in (docs/security.md,
    "Logout with the store down")."""
    indexes = _session_indexes(message)
    return not indexes or (kept is not None and kept in indexes) or derived(indexes)


def _names(
    message: LogoutMessage, kept: Mapping[str, str], derived: Derived = _none_derived
) -> bool:
    """Whether a LogoutRequest names the session whose handles are `kept` (what the peer was
    given, or the school gave: `name_id`, `session_index`): its NameID, and its SessionIndexes
    as `_index_names` takes them."""
    return message.name_id == kept.get("name_id") and _index_names(
        message, kept.get("session_index"), derived
    )


def _service_request(service: Service, asked: Asked) -> Response:
    """A publisher's checked LogoutRequest: on to a run when it names this browser's session."""
    b = broker()
    peer, token = asked.peer, asked.token
    message = peer.message
    initiator = Initiator(BY_SERVICE, Protocol.SAML.value, service.id, initiator_answer(peer))
    # The session and its services in one round trip; begin_logout reuses both.
    known = session_and_services(token)
    again = _again(initiator, known[0])
    if again is not None:
        return again
    participant = known[1].get(service.id)
    if known[0] is None or participant is None:
        first_use(peer)
        log.info("logout request for no session here service=%s", service.id)
        return deliver(b.saml_service_logout.answer_now(peer, known=True), service.name)
    if not _names(message, participant.handles, _this_browsers(service, token)):
        first_use(peer)
        log.info("logout request names another session service=%s", service.id)
        return deliver(b.saml_service_logout.answer_now(peer, known=False), service.name)
    return begin_logout(initiator, token, known, lambda: first_use(peer), asked.down)


@saml_logout.route(SP_SLO_PATH, methods=["GET", "POST"])
def sp_slo() -> Response:
    """A school's IdP: its LogoutRequest, or its LogoutResponse to ours."""
    return _refusals_worded_for_logout(lambda: _from_school(*_received()))


def _from_school(received: Received, kind: str) -> Response:
    b = broker()
    idp, peer = b.saml_school_logout.read(received, kind)
    message = peer.message
    if kind == LOGOUT_RESPONSE:
        outstanding = b.logout.outstanding(message.in_response_to)
        # Unsigned or partial is no confirmation (`LogoutMessage.confirms` says why): the page
        # then says the student may still be signed in somewhere through the school.
        status = CONFIRMED if message.confirms else FAILED
        # An unsigned answer that answers no request of ours stays refused as unsigned.
        unanswered = InvalidMessage(
            "LogoutResponse to no request of ours",
            code="unsolicited" if message.signed else "request_unsigned",
        )
        # The school the request went to must be one this IdP serves (a board's IdP serves
        # several: the run's school decides, not the issuer).
        school = idp.school(outstanding[2]) if outstanding is not None else None
        if outstanding is None or school is None:
            raise unanswered
        # The run first: it opens only with the browser secret of the browser that started it,
        # so a copy of the response arriving in another browser is refused *before* it uses up
        # the request it answers, and the right browser can still bring it.
        secret = browser_secret(request)
        run = b.logout.load(secret, outstanding[0])
        if not b.logout.answered(message.in_response_to, school.id, status):
            raise unanswered
        b.logout.school_answered(secret, run, status, partial=message.partial)
        log.info(
            "logout answered school=%s status=%s saml_status=%s", school.id, status, message.status
        )
        return redirect(url_for("logout.done", run_id=run.run_id), 303)
    asked = _asked(b.saml_school_logout, peer, idp.name)
    try:
        return _school_request(idp, asked)
    except StoreUnavailable as error:
        # Checked without the store: signed by a registered school IdP, for us, in time. Which
        # session it names (the school's NameID and SessionIndex) only the store knows: taken
        # as this browser's (docs/security.md, "Logout with the store down").
        return asked.down(error)


def _school_request(idp: SchoolIdp, asked: Asked) -> Response:
    """A school's checked LogoutRequest: on to a run when it names this browser's session."""
    b = broker()
    peer, token = asked.peer, asked.token
    message = peer.message
    initiator = Initiator(BY_SCHOOL, Protocol.SAML.value, "", initiator_answer(peer))
    known = session_and_services(token)
    session = known[0]
    again = _again(initiator, session)
    if again is not None:
        return again
    # The session's school, when this IdP is its IdP: with a board's IdP, whichever of its
    # schools the student signed in to.
    school = idp.school(session[0].school_id) if session is not None else None
    if session is None or school is None:
        first_use(peer)
        cookies = carries_broker_cookies(request)
        what = "school logout without the cookie schools"
        answer = end_without_the_cookie(idp, peer, cookies=cookies, what=what)
        return deliver(required_answer(b.saml_school_logout.answer(peer, answer)), idp.name)
    if not _names(message, session[0].upstream_session):
        first_use(peer)
        log.info("logout request names another session school=%s", school.id)
        return deliver(b.saml_school_logout.answer_now(peer, known=False), school.name)
    return begin_logout(initiator, token, known, lambda: first_use(peer), asked.down)
