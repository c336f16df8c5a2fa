"""The one place where errors become pages: a localised page with an error id, a log line with
the reason code and that id, never a stack trace and never personal data."""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, render_template, request, url_for
from flask_babel import gettext
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from broker.core.errors import (
    BrokerError,
    CookiesBlocked,
    LogoutStoreUnavailable,
    MyDataExpired,
    NameIdNotPersistent,
    RequiredAttributeMissing,
    SchoolRefused,
    StateExpired,
    StoreUnavailable,
    UnsignedSchoolRefusal,
)
from broker.login.post_message import PostMessage
from broker.web import metrics
from broker.web.browser import carries_broker_cookies
from broker.web.form_pages import form_page
from broker.web.i18n import other_language_copies
from broker.web.json_errors import answers_json, json_http_error
from broker.web.labels import (
    LOGOUT_NOT_DONE,
    LOGOUT_REFUSED_TITLE,
    attribute_label,
    error_title,
    http_error_message,
)
from broker.web.logs import note_refusal_logged
from broker.web.school_retry import RetryAtSchool, try_again_control
from broker.web.soap_errors import answers_soap, soap_http_error, soap_refusal

log = logging.getLogger("broker.web")


def code_locations(error: BaseException | None, limit: int = 12) -> list[str]:
    """`file:line function` of the innermost frames: enough to find a bug, no values."""
    if error is None or error.__traceback__ is None:
        return []
    frames = traceback.extract_tb(error.__traceback__)[-limit:]
    return [f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno} {f.name}" for f in frames]


def new_error_id() -> str:
    return secrets.token_hex(4)


def error_page(context_for: Callable[[], Mapping[str, Any]]) -> str:
    """error.html with `context_for()`, made in the request's language. A page answering a POST
    (the school's answer at the ACS, a form) carries its content in the other language too,
    made by `context_for()` in that language: its address cannot be fetched again, so that is
    how its language switch works (i18n.other_language_copies)."""
    context = context_for()
    if request.method in ("GET", "HEAD"):
        return render_template("error.html", **context)
    copies = other_language_copies("error.html", context_for)
    return render_template("error.html", **context, **copies)


# What a page says in its language, made when asked (once per language it carries).
Wording = Callable[[], str | None]


def render_error(
    error: BrokerError,
    *,
    service_name: str | None = None,
    return_form: PostMessage | None = None,
    return_link: str | None = None,
    message: Wording | None = None,
    retry: RetryAtSchool | None = None,
    choose_again: str | None = None,
    portal_home: str | None = None,
    title: Wording | None = None,
    redirects_to: str = "",
    cannot_serve: bool = False,
    log_out_everywhere: bool = False,
) -> Response:
    """The error's page, as a response (form_pages.form_page: its forms' origins in the
    form-action, no-store when it shows a way on for a login). `message`: what is said instead
    of the error's public message (None, or a None made: the public message); `retry`: "Try
    again" at the school for the same login, with the login's school choice (school_retry.py);
    `choose_again`: the address of the login's discovery page alone (a shared IdP's student of
    another school: discovery.choose_again_page); `redirects_to`: the origin the broker's
    answer to `return_form` redirects to (back_to_platform.py); `portal_home`: the page is a
    portal's, for an administrator (`portal_home_of_request`); `title`: said instead of the
    error's heading. Both are made in the page's language, once per language the page carries
    (`error_page`). A page "briefly unavailable" (503) without a `retry` gets the request's own
    (school_retry.try_again_control). `cannot_serve`: the chosen school cannot sign students
    in here (not set up): the steps say to choose again or go back (login_upstream.py).
    `log_out_everywhere`: a logout was refused and the session may stand: the page offers the
    student's own "log out everywhere" button (logout_refusal.py)."""
    error_id = new_error_id()
    log.warning("refused code=%s status=%s error_id=%s", error.code, error.status, error_id)
    note_refusal_logged()
    cause = getattr(error, "cause", error)
    # The Format a school's NameID came with ("": none), for its ICT contact; never the value.
    name_id_format = None
    if isinstance(cause, NameIdNotPersistent):
        name_id_format = cause.received_format or ""
    # What the school's "no" said ("" for nothing worded): a setting its ICT contact must change
    # gets a part of its own (InvalidNameIDPolicy: no persistent NameID rule or generator).
    said = cause.said if isinstance(cause, (SchoolRefused, UnsignedSchoolRefusal)) else ""
    # Only the school can change it: trying again (or another school) will not help, so the
    # page offers neither, and going back is its way on.
    school_must_change = said == "name_id_policy" or cause.code in SCHOOL_MUST_CHANGE
    if school_must_change:
        retry, choose_again = None, None
    reload_link = None
    if retry is None and is_brief(cause):
        retry, reload_link = try_again_control()
    choose_again = choose_again or (retry.choose_again if retry is not None else None)

    def context() -> dict[str, Any]:
        missing = None
        if isinstance(cause, RequiredAttributeMissing):
            missing = [str(attribute_label(name)) for name in cause.missing]
        return {
            "status": error.status,
            "code": error.code,
            "title": (title and title())
            or error_title(
                error.status,
                error.code,
                portal=portal_home is not None,
                service_name=service_name,
                said=said,
            ),
            "message": (message and message()) or gettext(error.public_message),
            "error_id": error_id,
            "missing": missing,
            "name_id_format": name_id_format,
            "said": said,
            "service_name": service_name,
            "return_form": return_form,
            "return_link": return_link,
            "retry_form": retry.form if retry is not None else None,
            "reload_link": reload_link,
            "choose_again": choose_again,
            "cannot_serve": cannot_serve,
            "log_out_everywhere": log_out_everywhere,
            "school_must_change": school_must_change,
            "portal_home": portal_home,
        }

    ways_on = (return_form, return_link, reload_link, choose_again)
    # The logout button's form token is this browser's: the page is not for a cache either.
    carries_login = log_out_everywhere or any(way is not None for way in ways_on)
    return form_page(
        error_page(context),
        error.status,
        forms=(return_form,),
        retry=retry,
        redirects_to=redirects_to,
        carries_login=carries_login,
    )


# Refusals of a school's answer that only a change at the school mends (its NameID); and a
# school's "no" that says so (`said`: InvalidNameIDPolicy), which is no refusal code.
SCHOOL_MUST_CHANGE = frozenset({"name_id_is_address", "name_id_not_persistent"})


def is_brief(error: BaseException) -> bool:
    """A failure that passes by itself ("briefly unavailable": the store or the registry's
    database out of reach), so that trying again is the advice. Not a logout the store could
    not carry out: that page tells the student to close the browser now (error.html)."""
    return isinstance(error, StoreUnavailable) and not isinstance(error, LogoutStoreUnavailable)


# The blueprints whose every page is part of a logout (asked, carried out, answered): their
# "briefly unavailable" says that logging out failed, never that signing in did. (SOAP's is
# answered in SOAP; a run's status in JSON.)
LOGOUT_BLUEPRINTS = frozenset({"logout", "oidc_logout", "saml_logout"})


def logout_not_done_page(error: BrokerError) -> Response:
    """A logout the store (or the registry's database) failed for where the route did not give
    its own `store_down_page` (a request not checked without the store, such as a LogoutRequest
    naming another session, or a step of a run): nothing ended here and the SSO cookie stays,
    so the page says logging out did not work, the student may still be logged in, to try again
    in a moment (the 503's step and button) and, on a shared computer, to close the browser."""
    return render_error(
        error,
        title=lambda: gettext(LOGOUT_REFUSED_TITLE),
        message=lambda: gettext(LOGOUT_NOT_DONE),
    )


def http_error_page(
    status: int, error_id: str, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """The page of an HTTP error that is not a BrokerError (404, 405, CSRF's 400, a rate
    limit's 429), with `headers` (a 405's Allow, a 429's Retry-After). "Too many attempts" and
    "briefly unavailable" offer to try again (school_retry.try_again_control)."""
    home = portal_home_of_request()
    retry, reload_link = try_again_control() if status in (429, 503) else (None, None)
    page = error_page(
        lambda: {
            "status": status,
            "title": error_title(status, portal=home is not None),
            "message": http_error_message(status, portal=home is not None),
            "error_id": error_id,
            "portal_home": home,
            "retry_form": retry.form if retry is not None else None,
            "choose_again": retry.choose_again if retry is not None else None,
            "reload_link": reload_link,
        }
    )
    response = form_page(page, status, retry=retry, carries_login=reload_link is not None)
    response.headers.extend(headers)
    return response


def without_cookies(error: BrokerError) -> BrokerError:
    """A login's state not found in a request that carries none of the broker's cookies: the
    browser blocks them (or lost them), and saying "took too long" would send the student
    round the same loop for ever. Any other error, or one with a cookie, stays as it is."""
    if isinstance(error, MyDataExpired):
        # An old or another browser's my-data address: opening /my-data again is the way on.
        return error
    if isinstance(error, StateExpired) and not carries_broker_cookies(request):
        return CookiesBlocked(error.detail)
    return error


def portal_home_of_request() -> str | None:
    """The portal's start page for a page under /portal, whose readers are administrators, not
    students on their way (its error pages lead there, not back to a learning platform)."""
    if request.path == "/portal" or request.path.startswith("/portal/"):
        return url_for("portal_sign_in.home")
    return None


def install_error_pages(app: Flask) -> None:
    @app.errorhandler(BrokerError)
    def broker_error(error: BrokerError) -> Response:
        if answers_soap(request.path):
            return soap_refusal(error)
        error = without_cookies(error)
        metrics.refused_at(request.endpoint, error)
        if answers_json(request.path):
            log.warning("refused code=%s status=%s", error.code, error.status)
            note_refusal_logged()
            return json_http_error(error.status, [])
        if is_brief(error) and request.blueprint in LOGOUT_BLUEPRINTS:
            return logout_not_done_page(error)
        return render_error(error, portal_home=portal_home_of_request())

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        # The error's own headers go along: a 405's Allow (RFC 9110 15.5.6). Not its type.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        if answers_soap(request.path):
            return soap_http_error(status, headers)
        error_id = new_error_id()
        log.warning("http error status=%s error_id=%s", status, error_id)
        note_refusal_logged()
        if answers_json(request.path):
            return json_http_error(status, headers)
        return http_error_page(status, error_id, headers)

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> Response | tuple[str, int]:
        error_id = new_error_id()
        original = error.original_exception
        # The class name and where it happened only: an exception's text (and its frames'
        # locals) may quote a message or an attribute value.
        log.error(
            "unhandled error_id=%s type=%s",
            error_id,
            type(original).__name__,
            extra={"frames": code_locations(original)},
        )
        note_refusal_logged()
        if answers_soap(request.path):
            return soap_http_error(500, [])
        if answers_json(request.path):
            return json_http_error(500, [])
        page = error_page(
            lambda: {
                "status": 500,
                "title": error_title(500),
                "message": gettext(BrokerError.public_message),
                "error_id": error_id,
            }
        )
        return page, 500
