"""A school's OpenID provider ends a student's SSO session at the broker, server to server
(OpenID Connect Back-Channel Logout 1.0, the broker as the school's relying party).

`POST /oidc/rp/backchannel-logout/<school id>` with the form field `logout_token`: the URI the
broker registers at each school's provider as its `backchannel_logout_uri` (one per school, like
the redirect URI). The token is checked (oidc/rp_logout_token.py), its `jti` used once per
issuer and client (the store's replay guard, `jti_scope`), the session it names ended and its
back-channel services told (login/school_logout.py): filed under this school, or under another
school on the same issuer that holds the same client id (a school board's one client,
core/shared_idp.py `sharing_client`). Answers as the spec says (section 2.8): 200 when the logout
succeeded (also when the session had already ended: the token was valid and there is nothing
left to do), 400 with an OAuth-style JSON error when the token does not hold, and never a
cached answer. No cookie, no CSRF token: nothing here acts on a browser's behalf, and only a
token the school signed ends anything.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Blueprint, jsonify, make_response, request
from werkzeug.wrappers import Response

from broker.core.errors import BrokerError, InvalidMessage, StoreUnavailable
from broker.core.model import OidcUpstream
from broker.core.shared_idp import sharing_client
from broker.login.logout import BY_SCHOOL, CONFIRMED, FAILED, TIMED_OUT, UNSUPPORTED
from broker.login.school_logout import NOT_TOLD, SchoolLogoutOutcome
from broker.oidc.rp_logout_token import MAX_JTI_LENGTH
from broker.web import metrics
from broker.web.no_store import no_store
from broker.web.wiring import broker

SCHOOL_BACKCHANNEL_PATH = "/oidc/rp/backchannel-logout/<school_id>"
# A logout token is a few hundred bytes; a form much larger than this is not one.
MAX_FORM_BYTES = 32 * 1024
OIDC = "oidc"
# What became of telling each service, in the order the log line names them.
SERVICE_STATUSES = (CONFIRMED, FAILED, TIMED_OUT, NOT_TOLD, UNSUPPORTED)

school_backchannel = Blueprint("school_backchannel", __name__)
log = logging.getLogger("broker.logout")


@school_backchannel.route(SCHOOL_BACKCHANNEL_PATH, methods=["POST"])
def school_backchannel_logout(school_id: str) -> Response:
    try:
        outcome = _logout(school_id)
    except StoreUnavailable:
        metrics.school_logout_token("store_unavailable")
        log.warning(
            "school logout token not handled school=%s code=store_unavailable", _loggable(school_id)
        )
        return _answer({"error": "temporarily_unavailable"}, 503)
    except BrokerError as refusal:
        metrics.school_logout_token(refusal.code)
        # The one line per refusal (the adapter logs none): the school and the reason code,
        # never the token, its sid or sub.
        log.warning(
            "school logout token refused school=%s code=%s", _loggable(school_id), refusal.code
        )
        return _answer({"error": "invalid_request", "error_description": refusal.code}, 400)
    if outcome.ended:
        metrics.school_logout_token("ended")
        note_school_logout(OIDC, outcome, "school logout by back channel school", school_id)
    else:
        metrics.school_logout_token("no_session")
        log.info("school logout by back channel school=%s no session", school_id)
    return _answer(None, 200)


def note_school_logout(
    protocol: str, outcome: SchoolLogoutOutcome, what: str, schools: str
) -> None:
    """Metrics and the log line of a session a school ended without the browser's cookie (its
    back channel, a SAML LogoutRequest in a frame or over SOAP): counts only, never which
    services or whose session."""
    metrics.logout_started(BY_SCHOOL, protocol)
    metrics.logout_ended(BY_SCHOOL, protocol, "complete" if outcome.complete else "partial")
    metrics.school_logout_services(outcome.statuses)
    # Every status, also the failed and timed-out deliveries (OIDC back channel, SAML SOAP):
    # an operator reading the line sees which of a partial logout's services did not hear.
    log.info(
        "%s=%s services=%d %s",
        what,
        schools,
        sum(outcome.statuses.values()),
        " ".join(f"{status}={outcome.count(status)}" for status in SERVICE_STATUSES),
    )


def _logout(school_id: str) -> SchoolLogoutOutcome:
    b = broker()
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise InvalidMessage("logout request too large", code="too_large")
    school = b.view.school(school_id)
    if school is None or school.oidc is None:
        raise InvalidMessage("no OpenID Connect school by this id", code="unknown_school")
    if request.mimetype != "application/x-www-form-urlencoded":
        raise InvalidMessage("logout request is not a form", code="not_a_form")
    tokens = request.form.getlist("logout_token")
    if len(tokens) != 1:
        raise InvalidMessage("not exactly one logout_token", code="no_logout_token")
    claims = b.oidc_back.logout_token(school, tokens[0])
    # Once only, across every worker: a captured token cannot end a later session of the sid.
    issuer, jti = jti_scope(school.oidc), claims.jti[:MAX_JTI_LENGTH]
    b.replay.first_use(issuer, jti, claims.issued_at, claims.expires_at)
    # A board's client may be several schools' (one client on a shared issuer): the session
    # is looked for under each of them, and its filing says whose it is (core/shared_idp.py).
    schools = sharing_client(school, b.view.schools_by_idp(school.idp_entity_id))
    try:
        return b.school_logout.end_any(schools, [claims.sid])
    except StoreUnavailable:
        # The store failed after the jti was taken: the school hears 503 and sends the token
        # again (section 2.8), which must not meet its own jti as a replay. Ending is safe to
        # repeat (a session already ended is "no session", 200), so the jti is given back.
        # If the store cannot take even that, the retry is refused as a replay: the window
        # docs/architecture.md names.
        _release(issuer, jti)
        raise


def jti_scope(upstream: OidcUpstream) -> str:
    """Where a logout token's `jti` is used once: per issuer and client, the token's `iss` and
    `aud` as checked, not per school. A board's one client on a shared issuer reaches the same
    session from every school's URI (`sharing_client`), so the same token at a second school's
    URI is the replay it is. Each part is percent-encoded, so no issuer and client id pair can
    spell another's. Before 2026-11-30 the scope was `oidc-logout:<school id>`: during a
    rolling upgrade a token used on a worker of one kind passes once more on the other, and
    finds no session (the first use ended it, and the provider gives a new login a new sid)."""
    return f"oidc-logout:{quote(upstream.issuer, safe='')}:{quote(upstream.client_id, safe='')}"


def _release(issuer: str, jti: str) -> None:
    try:
        broker().replay.release(issuer, jti)
    except StoreUnavailable:
        log.warning("school logout token jti not given back code=store_unavailable")


def _answer(body: dict[str, str] | None, status: int) -> Response:
    response = make_response(jsonify(body) if body is not None else "", status)
    return no_store(response)


def _loggable(school_id: str) -> str:
    """The school id from the URL path, only if registered: an attacker's text never reaches
    the log (no forged lines)."""
    return school_id if broker().view.school(school_id) is not None else "unknown"
