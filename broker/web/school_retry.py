"""The way on from a page that says the school did not sign the student in, for the same login.

"Try again" posts the login and the school to `/discovery` again, which sends the student to
the school with a fresh request (as choosing it did), and a link opens the school choice for
the login. Offered where trying again can help: the school's sign-in page could not be reached
for now (login_upstream.school_failed_page), the school said no, signed
(service_answers.refuse_to_service) or not (unsigned_refusal.py), or answered an attempt that
is over (service_answers.stale_answer_page); and on the "too many attempts" and "briefly
unavailable" pages of the school choice itself (`try_again_control`).

"Try again" is answered with a redirect to the school's sign-in page, which browsers hold to the
page's `form-action`: the page names that origin (`origin`), through form_pages.form_page."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import request, url_for

from broker.core.errors import StateExpired, StoreUnavailable
from broker.core.model import School
from broker.core.origins import written_origin
from broker.login.login_model import LoginRecord
from broker.login.post_message import PostMessage
from broker.web.browser import browser_secret
from broker.web.wiring import broker

log = logging.getLogger("broker.login")

# The fields of the school choice's form (discovery.html), which "Try again" posts again.
LOGIN_FIELD, SCHOOL_FIELD, SERVICE_FIELD = "login", "school", "service"
# "Back to <platform>"'s field (back_to_platform.py): why the student goes back, which decides
# what the platform hears. None: from a page of the school's "no" (the school refused); one of
# these from a page where the login cannot go on for another reason.
WHY_FIELD = "why"
WENT_BACK, NO_SCHOOL = "went_back", "no_school"
# The longest login id (discovery's `_login_id`) and school or service id (the registry's ids,
# registry/tables.py `ID`): a longer value in one of those fields names nothing.
MAX_ID = 64


@dataclass(frozen=True)
class RetryAtSchool:
    """`form`: "Try again"; `choose_again`: the login's school choice; `origin`: the school's
    sign-in origin ("" when not known), for the page's form-action."""

    form: PostMessage
    choose_again: str
    origin: str


def retry_at_school(record: LoginRecord, school: School) -> RetryAtSchool:
    return _retry(record.login_id, school, record.request.service_id)


def _retry(login_id: str, school: School, service_id: str) -> RetryAtSchool:
    form = PostMessage(
        url_for("discovery.chosen"),
        {
            LOGIN_FIELD: login_id,
            SCHOOL_FIELD: school.id,
            # Not secret: names the platform on the page of a login that expired meanwhile.
            SERVICE_FIELD: service_id,
        },
    )
    choose_again = url_for("discovery.choose", login=login_id)
    return RetryAtSchool(form, choose_again, sign_in_origin(school) or "")


def try_again_control() -> tuple[RetryAtSchool | None, str | None]:
    """ "Try again" for a page of a request that may simply be made again (429, 503): a GET's
    own address (a link), or, for the school choice's POST, "Try again" at that school as on
    the other pages here (the same fields posted again, the school's origin for the page's
    form-action); (None, None) for any other POST (a school's answer is never posted again:
    it is single use), or a choice that names no registered school."""
    if request.method in ("GET", "HEAD"):
        return None, request.script_root + request.full_path.rstrip("?")
    if request.endpoint != "discovery.chosen":
        return None, None
    return _retry_of_choice(), None


def _retry_of_choice() -> RetryAtSchool | None:
    login_id, school_id, service_id = (
        request.form.get(name, "") for name in (LOGIN_FIELD, SCHOOL_FIELD, SERVICE_FIELD)
    )
    if not login_id or not school_id or max(map(len, (login_id, school_id, service_id))) > MAX_ID:
        return None
    try:
        school = broker().view.school(school_id)
        return None if school is None else _retry(login_id, school, service_id)
    except StoreUnavailable:
        # The registry's database is what is out of reach (the school and its sign-in address
        # are read through it): the page says "wait a moment" only.
        return None


def reopen_for_retry(record: LoginRecord, school: School) -> RetryAtSchool | None:
    """The way on after the school's signed "no", which took the login's record: it is saved
    back without the refused request (`flow.reopen`: an answer to that request is stale from
    now on, and the next request to the school asks for a fresh sign-in: which account, at an
    OpenID provider; ForceAuthn, at a SAML IdP), so that "Try again" and the school choice
    find the login. A write on this failure path only. None when the login's time is up, or
    the store cannot take the record: the page then offers only the way back to the platform,
    as for any refusal."""
    try:
        broker().flow.reopen(browser_secret(request), record, school.idp_entity_id)
    except (StateExpired, StoreUnavailable) as failure:
        log.info("no retry offered school=%s code=%s", school.id, failure.code)
        return None
    return retry_at_school(record, school)


def sign_in_origin(school: School) -> str | None:
    """Where sending the student to `school` redirects the browser: its SAML SSO or OIDC
    authorization origin."""
    b = broker()
    if school.oidc is None:
        return b.saml_back.sso_origin(school)
    # Never a network call here: one slow provider must not hold up every student's page.
    cached = b.oidc_back.directory.cached(school.oidc.issuer)
    endpoint = cached.authorization_endpoint if cached is not None else school.oidc.issuer
    return written_origin(endpoint)
