"""The way on from a page that says the school did not sign the student in, for the same login:
"Try again" posts the login and the school to `/discovery` again, which sends the student to the
school with a fresh request (as choosing it did), and a link opens the school choice for the
login. Offered where trying again can help: the school's sign-in page could not be reached
(discovery.unreachable_school_page), the school said no, signed (refuse_to_service) or not
(unsigned_refusal.py).

"Try again" is answered with a redirect to the school's sign-in page, which browsers hold to the
page's `form-action`: the page names that origin (`origin`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import request, url_for

from broker.core.errors import StateExpired, StoreUnavailable
from broker.core.model import School
from broker.login.login_model import LoginRecord
from broker.login.post_message import PostMessage
from broker.web.browser import browser_secret
from broker.web.wiring import broker

log = logging.getLogger("broker.login")

# The fields of the school choice's form (discovery.html), which "Try again" posts again.
LOGIN_FIELD, SCHOOL_FIELD, SERVICE_FIELD = "login", "school", "service"


@dataclass(frozen=True)
class RetryAtSchool:
    """`form`: "Try again"; `choose_again`: the login's school choice; `origin`: the school's
    sign-in origin ("" when not known), for the page's form-action."""

    form: PostMessage
    choose_again: str
    origin: str


def retry_at_school(record: LoginRecord, school: School) -> RetryAtSchool:
    form = PostMessage(
        url_for("discovery.chosen"),
        {
            LOGIN_FIELD: record.login_id,
            SCHOOL_FIELD: school.id,
            # Not secret: names the platform on the page of a login that expired meanwhile.
            SERVICE_FIELD: record.request.service_id,
        },
    )
    choose_again = url_for("discovery.choose", login=record.login_id)
    return RetryAtSchool(form, choose_again, sign_in_origin(school) or "")


def reopen_for_retry(record: LoginRecord, school: School) -> RetryAtSchool | None:
    """The way on after the school's signed "no", which took the login's record: it is saved
    back without the refused request (`flow.reopen`: an answer to that request is refused from
    now on, and the next request to an OpenID provider asks which account), so that "Try
    again" and the school choice find the login. A write on this failure path only. None when
    the login's time is up, or the store cannot take the record: the page then offers only the
    way back to the platform, as for any refusal."""
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
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"
