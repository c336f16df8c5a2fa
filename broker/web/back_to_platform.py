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
form-action allows).

The same button stands on every page where the login cannot go on and on the school choice
itself (SAML profiles 4.1.4.1 and core 3.4.1.4: a request is answered with a Response, an error
status when it cannot be satisfied). Its `why` field says which page it is on, and so what the
platform hears: none, the school's "no" (AuthnFailed, access_denied); `no_school`, a school that
cannot serve (NoAvailableIDP, access_denied); `went_back`, the student left the school choice
(AuthnFailed, access_denied; service_answers.saml_status says why). The field is the student's
own to send, as the button is theirs to press: it only picks which of these refusals their own
login ends with, and the platform is told once whichever it is."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, request
from werkzeug.wrappers import Response

from broker.core.errors import (
    BadRequest,
    BrokerError,
    NoSchoolAvailable,
    SchoolRefused,
    StateExpired,
    UnknownService,
    WentBack,
)
from broker.login.login_model import is_my_data
from broker.web.browser import browser_secret
from broker.web.notice import answered_login
from broker.web.school_retry import LOGIN_FIELD, MAX_ID, NO_SCHOOL, WENT_BACK, WHY_FIELD
from broker.web.service_answers import tell_platform
from broker.web.wiring import broker

log = logging.getLogger("broker.login")

back_to_platform = Blueprint("back_to_platform", __name__)


@back_to_platform.route("/back-to-platform", methods=["POST"])
def tell() -> Response:
    login_id = request.form.get(LOGIN_FIELD, "")
    if not login_id or len(login_id) > MAX_ID:
        raise BadRequest("back to the platform without a login", code="missing_login")
    why = request.form.get(WHY_FIELD)
    if why is not None and why not in _CAUSES:
        # Before the login is taken: a value no page of the broker's sends ends nothing.
        raise BadRequest("back to the platform for an unknown reason", code="unknown_reason")
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
    cause = _CAUSES[why]()
    log.info(
        "back to the platform school=%s service=%s code=%s",
        record.school_id,
        record.request.service_id,
        cause.code,
    )
    return tell_platform(record, cause)


# What the platform hears, by the page's `why` (None: the school's "no").
_CAUSES: dict[str | None, Callable[[], BrokerError]] = {
    None: lambda: SchoolRefused("the student went back to the platform"),
    NO_SCHOOL: lambda: NoSchoolAvailable("the student went back: no school can serve"),
    WENT_BACK: lambda: WentBack("the student went back from the school choice"),
}
