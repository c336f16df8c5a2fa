"""OpenID Connect logout routes: the provider's end_session endpoint (RP-Initiated Logout 1.0)
towards publishers' platforms, and the callback a school's OpenID provider sends the student
back to after logging out there.

end_session ends the SSO session at once only when the request proves it comes from this
session: an `id_token_hint` the broker issued whose `sid` is this browser's session. Anything
else that would end a standing session (no hint, a hint of another, older session) is first
confirmed by the student with a form that carries this browser's logout token
(login/logout_form.py), so a link on any site cannot log a student out (section 2 asks the
provider to confirm in that case). Without a session there is nothing to end: the run starts at
once and only answers the platform.
"""

from __future__ import annotations

import logging

from flask import Blueprint, redirect, request, url_for
from werkzeug.wrappers import Response

from broker.core.errors import InvalidMessage, StoreUnavailable
from broker.core.model import Protocol
from broker.login.logout import BY_SERVICE, BY_STUDENT, CONFIRMED, PENDING, Initiator
from broker.login.logout_form import FormToken
from broker.login.session_index import names_session
from broker.oidc.end_session import PARAMETERS, EndSessionRequest
from broker.oidc.provider import END_SESSION_PATH
from broker.oidc.response_modes import add_query
from broker.web.browser import SSO_COOKIE, browser_secret
from broker.web.i18n import LANGUAGE_PARAM, ui_language
from broker.web.login_finish import session_and_services
from broker.web.logout_refusal import refusals_worded_for_logout
from broker.web.logout_routes import (
    begin_logout,
    confirmation_page,
    logout_form_check,
    store_down_page,
)
from broker.web.no_store import no_store
from broker.web.wiring import broker, oidc_front

oidc_logout = Blueprint("oidc_logout", __name__)
log = logging.getLogger("broker.logout")

SCHOOL_LOGOUT_CALLBACK = "/oidc/rp/logout/<school_id>"
MAX_RUN_ID = 64
OIDC = Protocol.OIDC.value


@oidc_logout.route(END_SESSION_PATH, methods=["GET", "POST"])
def end_session() -> Response:
    """A platform's logout request; a refused one (a hint the broker did not sign, a
    post_logout_redirect_uri not registered, another browser's form token) gets the logout's
    own refusal page (logout_refusal.py), as a refused SAML LogoutRequest does: nothing ends,
    nothing redirects, and "log out everywhere" is the way on."""
    return refusals_worded_for_logout(_end_session)


def _end_session() -> Response:
    source = request.args if request.method == "GET" else request.form
    params = {key: source.getlist(key) for key in source if key in PARAMETERS}
    checked = oidc_front().end_session.check(params)
    sso_token = request.cookies.get(SSO_COOKIE)
    # The hint's sid is derived from the SSO token and the hint's client (login/session_index.py):
    # known without the store whether the hint is this browser's session.
    hinted = checked.client if checked.hinted else None  # a hint always names its client
    this_session = hinted is not None and names_session(sso_token, hinted.id, [checked.sid or ""])
    try:
        known = session_and_services(sso_token)
    except StoreUnavailable as down:
        return _store_down(down, this_session, checked, params)
    standing = known[0] is not None
    if standing and not this_session and not _confirmed():
        return _confirmation_page(checked, params)
    if checked.client is not None:
        # A hint for another (older) session: the platform's part in this one is told too.
        initiator = Initiator(
            BY_SERVICE, OIDC, checked.client.id, checked.answer(), own_session=this_session
        )
    else:
        initiator = Initiator(BY_STUDENT, OIDC)
    response = (
        begin_logout(initiator, sso_token, known) if standing else begin_logout(initiator, None)
    )
    language = ui_language(checked.ui_locales or "")
    if language and response.location:
        response.location = add_query(response.location, {LANGUAGE_PARAM: language})
    return response


def _store_down(
    down: StoreUnavailable,
    this_session: bool,
    checked: EndSessionRequest,
    params: dict[str, list[str]],
) -> Response:
    """The store is down: whether a session stands is unknown, so the request is taken as one
    would be with a session standing. Checked without the store (a hint of this session, or
    the student's "yes" with this browser's token): the store-down page, the SSO cookie
    dropped. Anything else asks "Log out?" as it would (the form needs no store) and changes
    nothing. The platform is not sent back: RP-Initiated Logout has no way to say "not logged
    out", and its page would say the student is (docs/oidc-profile.md)."""
    if this_session or _confirmed():
        return store_down_page(down)
    return _confirmation_page(checked, params)


def _confirmed() -> bool:
    """The student's "yes" with this browser's logout token (logout_routes.logout_form_check):
    a stale or missing token asks again, one not made for this browser is a 400."""
    if request.method != "POST" or request.form.get("confirm") != "yes":
        return False
    return logout_form_check() is FormToken.GOOD


def _confirmation_page(checked: EndSessionRequest, params: dict[str, list[str]]) -> Response:
    return confirmation_page(
        url_for("oidc_logout.end_session"),
        [(name, values[0]) for name, values in params.items() if values],
        platform_asks=True,
        platform_name=checked.client.name if checked.client is not None else None,
    )


@oidc_logout.route(SCHOOL_LOGOUT_CALLBACK, methods=["GET"])
def school_logged_out(school_id: str) -> Response:
    """The school's provider sends the student back here (the run id is the `state`)."""
    b = broker()
    run_id = request.args.get("state", "")
    if not run_id or len(run_id) > MAX_RUN_ID:
        raise InvalidMessage("school logout callback without our state", code="unsolicited")
    secret = browser_secret(request)
    run = b.logout.load(secret, run_id)
    if run.school_id != school_id or run.school_protocol != OIDC or run.school_status != PENDING:
        raise InvalidMessage(
            "school logout callback does not match the run", code="logout_callback_mismatch"
        )
    run = b.logout.school_answered(secret, run, CONFIRMED)
    log.info("school logged out school=%s", school_id)
    response = redirect(url_for("logout.done", run_id=run.run_id), 303)
    return no_store(response)
