"""The OIDC relying party's callback: a school's OpenID provider sends the student back here.

One callback per school (`/oidc/rp/callback/<school id>`, the redirect URI registered at that
school's provider). The login record (bound to the browser, found by `state`) says which school
the student was sent to; an answer on another school's callback is refused before its code goes
anywhere. A shared callback with the record alone is not enough: a malicious provider can send
the student on to another school's provider and have that one's code redeemed at its own token
endpoint (the mix-up attack, RFC 9700 4.4). An RFC 9207 `iss` parameter, when present, must name
the school's issuer as well (broker/oidc/back.py).
"""

from __future__ import annotations

import time

from flask import Blueprint, request
from werkzeug.wrappers import Response

from broker.core.errors import (
    InvalidMessage,
    NotTheChosenSchool,
    StaleSchoolAnswer,
    StateExpired,
    UnknownSchool,
    UpstreamFailure,
)
from broker.login.school_values import school_must_be_named
from broker.oidc.rp_state import answers_request, read_state
from broker.web import metrics
from broker.web.browser import browser_secret, remember_school
from broker.web.discovery import choose_again_page
from broker.web.i18n import speak
from broker.web.login_finish import finish
from broker.web.notice import answered_login
from broker.web.service_answers import refuse_to_service, stale_answer_page
from broker.web.wiring import broker

CALLBACK_PATH = "/oidc/rp/callback/<school_id>"
MAX_PARAMETER = 4096

oidc_rp = Blueprint("oidc_rp", __name__)


@oidc_rp.route(CALLBACK_PATH, methods=["GET"])
def callback(school_id: str) -> Response:
    b = broker()
    if any(len(values) > 1 for values in request.args.listvalues()):
        # Which value counts would be the reader's guess (Werkzeug takes the first, a proxy
        # may take the last; RFC 6749 3.1 allows each once): refused before the state is
        # looked up, so the login stays as it was and the school's own answer still counts.
        raise InvalidMessage("a parameter given more than once", code="repeated_parameter")
    state = request.args.get("state", "")
    login_id, tag = read_state(state)
    if not login_id or len(state) > 64:
        raise InvalidMessage("callback without our state", code="unsolicited")
    params = {key: value for key, value in request.args.items() if len(value) <= MAX_PARAMETER}
    secret = browser_secret(request)
    # Opened with this browser's cookie before it is used up (as the SAML ACS does): an answer
    # without the cookie (someone who learnt the state) changes nothing, and the student's own
    # answer still completes the login. Then single use, before any other check: nonce and
    # PKCE verifier are spent by this browser's first answer to the request, whether it passes
    # or not. Its pages speak the language the record kept, as the ACS's do (where the
    # SameSite=Lax language cookie stays behind; this GET has it, the record is the login's).
    try:
        speak(b.flow.load(secret, login_id).language)
    except StateExpired:
        # Answered already (Back to the school, which answered once more): "already signed
        # in"; else it expired, as it says.
        return answered_login(secret, login_id)
    record = b.flow.take(secret, login_id)
    if not answers_request(record.upstream_request_id, record.upstream, tag):
        # An answer to an earlier request of this login (a copy of a refused one, a reload of
        # its callback after `reopen`, a prepared link not taken): it may not end the live one.
        # The record goes back as it was; the only write, on this path only (rp_state.py). The
        # student's page offers the login's ways on again (as the SAML ACS does).
        b.flow.restore(secret, record)
        stale = StaleSchoolAnswer("answer to an earlier request of this login", code="stale_state")
        chosen = b.view.school(record.school_id or "")
        if chosen is None:
            raise stale
        return stale_answer_page(record, chosen, stale)
    metrics.school_answered(metrics.OIDC, record.upstream_at)
    if record.school_id != school_id:
        # The answer came back on another school's callback: a provider that is not the one
        # the student was sent to (a mix-up attempt), or a confused one. Its code is never
        # redeemed anywhere.
        raise InvalidMessage("answer on another school's callback", code="callback_mismatch")
    school = b.view.school(school_id)
    if school is None or school.oidc is None:
        raise UnknownSchool("login record has no OpenID Connect request")
    started = time.perf_counter()
    try:
        # A board's issuer must name the chosen school (core/shared_idp.py): the registry's
        # flag for it, or several schools on it, from the cached view, as the SAML back asks.
        must_name = school_must_be_named(b.view, school)
        verified = b.oidc_back.complete(school, params, record.upstream, must_name=must_name)
    except NotTheChosenSchool as refusal:
        # A board's issuer named another school (or none): the login stays open to choose
        # again, as at the SAML ACS; this request is spent (`reopen`), and the next one to the
        # provider asks which account (prompt=select_account). Nothing else written.
        b.flow.reopen(secret, record, school.idp_entity_id)
        return choose_again_page(record, refusal)
    except UpstreamFailure as failure:
        return refuse_to_service(record, failure)
    finally:
        metrics.UPSTREAM_CALL_SECONDS.observe(time.perf_counter() - started)
    response = finish(record, verified.identity, verified.authn_instant)
    remember_school(response, school.id)  # a successful school login only (as the ACS)
    return response
