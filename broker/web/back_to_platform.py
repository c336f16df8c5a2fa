""" "Back to <platform>" from a page that keeps the login open for "Try again" (after the
school's signed "no", or its answer to an attempt that is over: service_answers.retry_page).

The button posts the login's id here, not the refusal straight to the platform: the broker
takes the login's record first and only then tells the platform (what the school's "no" means
there: SAML AuthnFailed, OAuth access_denied). So once the platform has heard, the login is
over: "Try again" and the school's later answers find no login, and the platform never gets a
second answer to its request. The login id is unguessable and its record opens only with this
browser's cookie (sealed.py), so it also does the work of a CSRF token, as at `POST /discovery`.
The answer is the auto-post page (a SAML platform, an OIDC client's form_post; its button works
without JavaScript) or a redirect (an OIDC client's query mode, which the refusal page's
form-action allows)."""

from __future__ import annotations

import logging

from flask import Blueprint, request
from werkzeug.wrappers import Response

from broker.core.errors import BadRequest, SchoolRefused, StateExpired, UnknownService
from broker.login.login_model import is_my_data
from broker.web.browser import browser_secret
from broker.web.notice import answered_login
from broker.web.school_retry import LOGIN_FIELD, MAX_ID
from broker.web.service_answers import tell_platform
from broker.web.wiring import broker

log = logging.getLogger("broker.login")

back_to_platform = Blueprint("back_to_platform", __name__)


@back_to_platform.route("/back-to-platform", methods=["POST"])
def tell() -> Response:
    login_id = request.form.get(LOGIN_FIELD, "")
    if not login_id or len(login_id) > MAX_ID:
        raise BadRequest("back to the platform without a login", code="missing_login")
    secret = browser_secret(request)
    try:
        record = broker().flow.take(secret, login_id)
    except StateExpired:
        # Over already: answered after a retry ("already signed in", with the way there), told
        # before (a second click without JavaScript), or expired; for another browser, nothing.
        return answered_login(secret, login_id)
    if is_my_data(record.request):
        # The data page's login has no platform (its pages offer no such button).
        raise UnknownService("the data page's login has no platform to go back to")
    log.info(
        "back to the platform school=%s service=%s", record.school_id, record.request.service_id
    )
    return tell_platform(record, SchoolRefused("the student went back to the platform"))
