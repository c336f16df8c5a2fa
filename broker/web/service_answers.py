"""What goes back to the service at the end of a login, carried by the student's browser: the
answer (an OIDC code in the client's response mode, a SAML Response), or a refusal in terms the
service understands (with the student's page saying why), and the page that posts a message on
by itself with the Content-Security-Policy that lets its form leave for that one site. Which
front answers (and the metric names of either side) is decided here too, since every answer
starts with it. Every answer at an OIDC client's redirect URI leaves through `to_client`."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from broker.core.errors import (
    AssuranceNotMet,
    BrokerError,
    InteractionRequired,
    NoSchoolAvailable,
    PolicyRefusal,
    SchoolRefused,
    StaleSchoolAnswer,
)
from broker.core.model import Protocol, School, Service
from broker.core.origins import written_origin
from broker.core.ports import StoreOp
from broker.login.login_model import Completion, LoginRecord, LoginRequest, is_my_data
from broker.login.participants import FAMILIES
from broker.login.post_message import PostMessage
from broker.oidc.oauth_errors import refusal as oauth_refusal
from broker.oidc.response_modes import AuthorizationResponse
from broker.saml.front import (
    STATUS_AUTHN_FAILED,
    STATUS_NO_AUTHN_CONTEXT,
    STATUS_NO_AVAILABLE_IDP,
    STATUS_NO_PASSIVE,
    STATUS_REQUEST_DENIED,
    AnswerableRefusal,
)
from broker.web import metrics
from broker.web.content_policy import content_security_policy
from broker.web.errors import Wording, render_error
from broker.web.labels import school_said
from broker.web.no_store import no_store
from broker.web.school_retry import (
    LOGIN_FIELD,
    WHY_FIELD,
    RetryAtSchool,
    reopen_for_retry,
    retry_at_school,
)
from broker.web.wiring import broker, oidc_front

log = logging.getLogger("broker.login")


def service_answer(
    record: LoginRecord,
    completion: Completion,
    session_index: str,
    back_address: str | None = None,
) -> tuple[Response, dict[str, str], list[StoreOp]]:
    """The response that answers the service, the handles a logout needs to reach it, and the
    store writes to send before the response leaves: an OIDC code's (the SAML front has none)."""
    if is_oidc(record.request):
        answer = oidc_front().respond(completion, session_index)
        handles = {
            "sub": completion.release.pseudonym,
            "sid": session_index,
            "client_id": completion.service.entity_id,
            # The code's token family: the session's end revokes its tokens (participants.py).
            FAMILIES: answer.family,
        }
        # A redirect leaves no page in the history: no address to put in its place.
        back = _back_address(completion, back_address) if answer.response.form_post else None
        response = to_client(answer.response, completion.service.name, back_address=back)
        return response, handles, answer.writes
    message = broker().saml_front.response_for(completion, session_index=session_index)
    back = _back_address(completion, back_address)
    page = autopost(message, completion.service.name, back_address=back)
    return page, dict(message.logout_handles), []


def _back_address(completion: Completion, back_address: str | None) -> str:
    """Where Back from the platform lands after an auto-post answer: a page of the broker's,
    not this POST's answer (the notice's address, or "already signed in" with the way to the
    platform at the address this login was answered at, `platform_site`)."""
    return back_address or url_for(
        "notice.sent_on", service_id=completion.service.id, to=answer_address(completion.request)
    )


def to_client(
    answer: AuthorizationResponse, client_name: str, *, back_address: str | None = None
) -> Response:
    """An answer at an OIDC client's redirect URI, in the response mode it asked for: a 303
    with the parameters in the query, or (form_post) the auto-post page, as SAML's answers
    go, with a button for a browser without JavaScript. `back_address`: as autopost's."""
    if answer.form_post:
        return autopost(answer.form, client_name, back_address=back_address)
    return redirect(answer.location, 303)


def refuse_to_service(record: LoginRecord, cause: BrokerError) -> Response:
    """The login ends with an answer the service understands, carried by the student's page.

    Not at once after the school's own "no" (`SchoolRefused`): a student who cancelled, or
    signed in with the wrong account, tries again at the school for the same login without
    starting over at the platform (school_retry.py: the record is saved back for it, without
    the refused request). The page says what the school answered and offers that way on
    (`retry_page`); its "Back to <platform>" goes through the broker, which takes the login's
    record before it tells the platform (back_to_platform.py). So the platform hears of the
    login once: the refusal, after which "Try again" finds no login, or the answer of a login
    completed after a retry."""
    school = broker().view.school(record.school_id or "")
    back = _school_side(school)
    retry = None
    if isinstance(cause, SchoolRefused) and school is not None:
        retry = reopen_for_retry(record, school)
    if retry is not None:
        # Not over yet: it ends answered after "Try again", or told through "Back".
        if not is_my_data(record.request):
            metrics.login_set_back(front_protocol(record.request), back, cause.code)
        said = cause.said if isinstance(cause, SchoolRefused) else ""
        return retry_page(record, cause, retry, message=lambda: school_said(said))
    if is_my_data(record.request):
        # The broker's own page: no service to tell, only the student.
        return render_error(cause)
    refusal = AnswerableRefusal(cause, record.request, saml_status(cause))
    return answerable_refusal_page(refusal, school_side=back)


def retry_page(
    record: LoginRecord, error: BrokerError, retry: RetryAtSchool, *, message: Wording | None = None
) -> Response:
    """The page of a login kept open after its school did not sign the student in: why
    (`message`, else the error's own words), "Try again" at the school and the school choice
    (`retry`), and "Back to <platform>", a form to the broker that ends the login before the
    platform is told (back_to_platform.py). That answer may be a redirect to the platform (an
    OIDC client's query response mode): the page's form-action names the platform's site."""
    return render_error(error, message=message, retry=retry, **ways_to_platform(record))


def ways_to_platform(record: LoginRecord, why: str | None = None) -> dict[str, Any]:
    """What a page of a login kept open needs for "Back to <platform>" (`render_error`'s
    `service_name`, `return_form` and `redirects_to`): the platform's name, the form (`why`:
    back_to_platform_form's), and the platform's site for the page's form-action, where the
    broker's answer to the form redirects (an OIDC client's query response mode)."""
    service = broker().view.service(record.request.service_id)
    return {
        "service_name": service.name if service else None,
        "return_form": back_to_platform_form(record, why),
        "redirects_to": written_origin(answer_address(record.request)) or "",
    }


def back_to_platform_form(record: LoginRecord, why: str | None = None) -> PostMessage | None:
    """ "Back to <platform>" for a page of `record`'s login: a form to the broker, which ends
    the login before the platform hears `why` (back_to_platform.py; None: the school said no).
    None for the data page's login, which has no platform."""
    if is_my_data(record.request):
        return None
    fields = {LOGIN_FIELD: record.login_id}
    if why is not None:
        fields[WHY_FIELD] = why
    return PostMessage(url_for("back_to_platform.tell"), fields)


def stale_answer_page(record: LoginRecord, school: School, stale: StaleSchoolAnswer) -> Response:
    """The school answered a request of this login that is no longer open: a reload of its
    signed "no" (the record was saved back without that request, `flow.reopen`), its late
    answer to it (Back into the school's page), an OIDC answer to an earlier request. Nothing
    of the answer is used and the login stays as it is; the page offers the ways on again, as
    after the school's "no"."""
    metrics.refused_at(request.endpoint, stale, login_open=True)
    return retry_page(record, stale, retry_at_school(record, school))


def tell_platform(record: LoginRecord, cause: BrokerError) -> Response:
    """`cause` told to the login's platform now, without a page of the broker's to read first:
    the student read it already, and chose to go back (back_to_platform.py). The login ends
    here, and counts (its refusal page counted only a setback)."""
    b = broker()
    service = b.view.service(record.request.service_id)
    back = _school_side(b.view.school(record.school_id or ""))
    metrics.login_ended(front_protocol(record.request), back, cause.code)
    refusal = AnswerableRefusal(cause, record.request, saml_status(cause))
    return send_refusal(refusal, service.name if service else "")


def _school_side(school: School | None) -> str:
    return school_protocol(school) if school is not None else metrics.UNKNOWN


def saml_status(cause: BrokerError) -> str:
    """The second-level status a refusal is sent with (SAML core 3.2.2.2). The student's own
    "back" from the school choice (`WentBack`) is AuthnFailed: "the responding provider was
    unable to successfully authenticate the principal" is what happened, and what the
    platform should act on (offer to sign in again). Not RequestDenied, which says the
    responder "has chosen not to respond", a decision of the broker's or the school's that
    was not made. A school chosen or named that cannot serve (`NoSchoolAvailable`) is
    NoAvailableIDP, as an intermediary answers when "none of the supported identity providers
    are available"."""
    if isinstance(cause, NoSchoolAvailable):
        return STATUS_NO_AVAILABLE_IDP
    if isinstance(cause, InteractionRequired):
        return STATUS_NO_PASSIVE
    if isinstance(cause, AssuranceNotMet):
        return STATUS_NO_AUTHN_CONTEXT
    if isinstance(cause, PolicyRefusal):
        return STATUS_REQUEST_DENIED
    return STATUS_AUTHN_FAILED


def answerable_refusal_page(
    refusal: AnswerableRefusal, *, school_side: str = metrics.UNKNOWN
) -> Response:
    """The student's page says why; its button carries the error to the service.

    A passive request (SAML IsPassive, OIDC prompt=none) must not show the student anything:
    the service gets the error at once instead (OIDC Core 3.1.2.1, SAML core 3.4.1), as it does
    a refusal marked `at_once` (a request for what the broker never does)."""
    b = broker()
    metrics.login_ended(front_protocol(refusal.request), school_side, refusal.code)
    service = b.view.service(refusal.request.service_id)
    service_name = service.name if service else None
    # A passive request's refusal, or one the student could do nothing about, goes straight back.
    if refusal.request.front.get("is_passive") or refusal.at_once:
        # No page, so no error id: the reason code is what the log keeps.
        log.warning("refused code=%s status=%s sent=at_once", refusal.code, refusal.status)
        return send_refusal(refusal, service_name or "")
    if is_oidc(refusal.request):
        answer = oidc_front().error_response(refusal.request, *oauth_refusal(refusal.cause))
        if not answer.form_post:
            # The refusal travels in the query of the link back.
            return render_error(refusal, service_name=service_name, return_link=answer.location)
        # form_post: the button back posts it, as SAML's does.
        message = answer.form
    else:
        message = b.saml_front.error_for(refusal.request, refusal.saml_status, refusal.code)
    return render_error(refusal, service_name=service_name, return_form=message)


def send_refusal(refusal: AnswerableRefusal, service_name: str) -> Response:
    """The refusal on its way to the platform, without a page that says why: the SAML error
    Response on the auto-post page, the OIDC error in the client's response mode."""
    if is_oidc(refusal.request):
        answer = oidc_front().error_response(refusal.request, *oauth_refusal(refusal.cause))
        return to_client(answer, service_name)
    message = broker().saml_front.error_for(refusal.request, refusal.saml_status, refusal.code)
    return autopost(message, service_name)


def answer_address(login: LoginRequest) -> str:
    """The address the broker answers `login` at, as checked when its request came in: the
    redirect URI of an OIDC request, the ACS URL of a SAML one."""
    if is_oidc(login):
        kept = json.loads(login.front.get("params") or "{}")
        uris = kept.get("redirect_uri") if isinstance(kept, dict) else None
        return str(uris[0]) if isinstance(uris, list) and uris else ""
    return login.front.get("acs_url", "")


def platform_site(service: Service | None, answered_at: str = "") -> str | None:
    """The platform's site, where a student goes on or starts a login there again (the link
    on "already signed in", "took too long"): the origin of `answered_at`, the address a login
    of it was answered at (`answer_address`), where that is known and the platform still
    registers it; else of the address it registered first (its first redirect URI; the
    default ACS URL in its metadata). Never an address it did not register: `answered_at` may
    come from a URL. The registry keeps no start page; a platform that left it has none."""
    if service is None:
        return None
    if service.oidc is not None:
        registered = list(service.oidc.redirect_uris)
    else:
        registered = broker().saml_requests.acs_urls(service.entity_id)
    if answered_at and answered_at in registered:
        return _site_of(answered_at)
    return _site_of(registered[0]) if registered else None


def _site_of(address: str) -> str | None:
    origin = written_origin(address)
    return f"{origin}/" if origin else None


def is_oidc(request: LoginRequest) -> bool:
    return request.front.get("protocol") == Protocol.OIDC.value


def front_protocol(request: LoginRequest) -> str:
    """The publisher's side of the pairing, as the metrics name it."""
    return metrics.protocol_name(is_oidc(request))


def school_protocol(school: School) -> str:
    """The school's side of the pairing, as the metrics name it."""
    return metrics.protocol_name(school.oidc is not None)


def autopost(
    message: PostMessage, destination_name: str, *, back_address: str | None = None
) -> Response:
    """The page that posts `message` on by itself. `back_address`: put in the history in the
    page's place (autopost.js), so Back from the destination fetches that address instead of
    asking to resend this page's POST. A browser replaces a page that navigates before its
    load event ends, but a phone that loaded the page quickly keeps it in the history."""
    page = render_template(
        "autopost.html",
        action=message.action,
        fields=message.fields,
        destination_name=destination_name,
        back_address=back_address,
    )
    response = make_response(page)
    _allow_form_target(response, message.action)
    return no_store(response)


def _allow_form_target(response: Response, action: str) -> None:
    response.headers["Content-Security-Policy"] = content_security_policy(
        written_origin(action) or ""
    )
