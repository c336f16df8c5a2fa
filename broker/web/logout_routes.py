"""Logout pages: the student's "log out everywhere" button, the propagation page that tells
every service of the session (iframes for front-channel services, server calls for the rest),
its status JSON, the step to the school, and the final page (login/logout.py).

Protocol routes (SAML SLO endpoints, the OIDC end_session endpoint) start runs through
`begin_logout`; every run ends on `/logout/<run>/done`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from flask import (
    Blueprint,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from broker.core.errors import InvalidMessage, LogoutStoreUnavailable, StoreUnavailable
from broker.core.origins import written_origin
from broker.login.logout import (
    BY_SCHOOL,
    BY_STUDENT,
    CONFIRMED,
    FRONT,
    PENDING,
    Initiator,
    LogoutRun,
    Outbound,
    status_summary,
)
from broker.login.logout_form import FormToken, check_form_token, make_form_token
from broker.login.logout_run import (
    FRONT_AND_BACK,
    confirmed_by_back_only,
    counts_by_status,
    service_counts,
)
from broker.login.logout_start import Session
from broker.login.participants import SessionServices
from broker.login.post_message import PostMessage
from broker.web import metrics
from broker.web.browser import SSO_COOKIE, browser_secret, clear_sso_token
from broker.web.content_policy import content_security_policy
from broker.web.errors import render_error
from broker.web.no_store import no_store
from broker.web.service_answers import autopost
from broker.web.wiring import broker

logout = Blueprint("logout", __name__)
log = logging.getLogger("broker.logout")

MAX_TARGET_INDEX = 256


def begin_logout(
    initiator: Initiator,
    sso_token: str | None,
    known: tuple[Session | None, SessionServices] | None = None,
    first_use: Callable[[], None] | None = None,
    on_down: Callable[[StoreUnavailable], Response] | None = None,
) -> Response:
    """Start a run (login/logout_start.py: the SSO session ends there, before anything else)
    and go on to its propagation page. `sso_token` is the session the initiator named (the
    browser's cookie, checked by the protocol route against what the message names); `known`:
    that session and its record of services, when the route read them already; `first_use`:
    the message's replay check, made there by the request that acts on it; `on_down`: the
    answer when the store fails (`store_down_page`, with the peer's answer for SAML)."""
    try:
        started = broker().logout_start.start(
            browser_secret(request), initiator, sso_token, known, first_use
        )
    except StoreUnavailable as down:
        return on_down(down) if on_down is not None else store_down_page(down)
    run = started.run
    if run is None:
        log.info("logout asked again by=%s: on to its run", initiator.kind)
        return to_run(started.run_id)
    log.info(
        "logout started by=%s protocol=%s services=%d school_told=%s",
        initiator.kind,
        initiator.protocol or "-",
        len(run.targets),
        run.school_status,
    )
    metrics.logout_started(initiator.kind, initiator.protocol, second=started.second)
    return to_run(run.run_id)


def store_down_page(
    down: StoreUnavailable, answer: Outbound | None = None, peer_name: str | None = None
) -> Response:
    """The store failed while a logout was asked: the session may stand on in it. The page
    says so (close the browser), and the browser forgets the SSO token all the same, so that
    nothing signs in from it once the store is back (the next student at a shared laptop).
    Only for a request checked without the store (the form's token, a LogoutRequest's signature,
    an id_token_hint of this session): an unchecked one changes nothing (docs/security.md).
    `answer`: what the peer that asked gets (a SAML `Responder` LogoutResponse), carried by a
    button once the student has read the page, as the final page carries a partial logout's."""
    return_form = return_link = None
    if answer is not None and answer.fields is not None:
        return_form = PostMessage(answer.url, dict(answer.fields))
    elif answer is not None:
        return_link = answer.url
    response = render_error(
        LogoutStoreUnavailable(down.detail),
        service_name=peer_name,
        return_form=return_form,
        return_link=return_link,
    )
    _may_send_to(response, answer)
    clear_sso_token(response)
    return no_store(response)


def to_run(run_id: str) -> Response:
    """On to a run's propagation page; the browser forgets the SSO token (the session's gone)."""
    response = redirect(url_for("logout.propagate", run_id=run_id), 303)
    clear_sso_token(response)
    return no_store(response)


def logout_form_token() -> str:
    """The token of the student's logout forms (templates call it; login/logout_form.py says
    why it is bound to the browser's secret and not Flask-WTF's hour-long CSRF token)."""
    return make_form_token(browser_secret(request), time.time())


def logout_form_check() -> FormToken:
    """GOOD, or MISSING/STALE (the caller asks again with `confirmation_page`); a token not made
    for this browser is refused (400), and nothing ends."""
    checked = check_form_token(browser_secret(request), request.form.get("csrf_token"), time.time())
    if checked is FormToken.FORGED:
        raise InvalidMessage("logout form with a token not made for this browser", code="csrf")
    if checked is not FormToken.GOOD:
        log.info("logout form asked again reason=%s", checked.value)
    return checked


def confirmation_page(
    action: str,
    fields: Sequence[tuple[str, str]] = (),
    *,
    platform_asks: bool = False,
    platform_name: str | None = None,
) -> Response:
    """The page that asks "Log out?": one button (a fresh token, `fields` carried along) and
    "stay logged in". For the student's own button asked again, or for a platform's end_session
    request (`platform_asks`; its name when known). Works without JavaScript: a plain form."""
    page = render_template(
        "logout_confirm.html",
        action=action,
        fields=fields,
        platform_asks=platform_asks,
        service_name=platform_name,
    )
    return no_store(make_response(page))


@logout.route("/logout", methods=["POST"])
def student_logout() -> Response:
    """The student's button: a form with a token only this browser's pages carry, so another
    site cannot log them out. A page open longer than a token lasts, or a form without one,
    gets the question once more (one button, a fresh token) instead of a dead end: the SSO
    session must not stand on because a lesson was long."""
    if logout_form_check() is not FormToken.GOOD:
        return confirmation_page(url_for("logout.student_logout"))
    return begin_logout(Initiator(BY_STUDENT), request.cookies.get(SSO_COOKIE))


def _run(run_id: str) -> tuple[bytes, LogoutRun]:
    b = broker()
    secret = browser_secret(request)
    run = b.logout.settle(secret, b.logout.load(secret, run_id))
    return secret, run


def _names(run: LogoutRun) -> dict[str, str]:
    view = broker().view
    names = {}
    for target in run.targets:
        service = view.service(target.participant.service_id)
        names[target.participant.service_id] = service.name if service else ""
    return names


@logout.route("/logout/<run_id>", methods=["GET"])
def propagate(run_id: str) -> Response:
    b = broker()
    secret, run = _run(run_id)
    run = b.logout.run_back_channels(secret, run)
    if b.logout.services_done(run):
        # Nothing for the page to wait for: its next step here, not a redirect to it (a round
        # trip on a phone). A reload or Back comes here again and gets the same.
        return _onward(secret, run)
    frames = [
        url_for("logout.front", run_id=run.run_id, index=i)
        for i, t in enumerate(run.targets)
        if t.mode == FRONT and t.status == PENDING
    ]
    wait = max(int(run.deadline - b.logout.clock()) + 1, 1)
    page = render_template(
        "logout.html",
        run=run,
        names=_names(run),
        frames=frames,
        wait=wait,
        status_url=url_for("logout.status", run_id=run.run_id),
        next_url=url_for("logout.next_step", run_id=run.run_id),
    )
    response = make_response(page)
    origins = sorted({t.origin for t in run.targets if t.mode == FRONT and t.origin})
    response.headers["Content-Security-Policy"] = content_security_policy() + (
        "; frame-src 'self' " + " ".join(origins)
    )
    return no_store(response)


@logout.route("/logout/<run_id>/status", methods=["GET"])
def status(run_id: str) -> Response:
    b = broker()
    _, run = _run(run_id)
    summary = status_summary(run, _names(run))
    summary["done"] = summary["done"] or b.logout.clock() >= run.deadline
    summary["next"] = url_for("logout.next_step", run_id=run.run_id)
    return no_store(jsonify(summary))


@logout.route("/logout/<run_id>/front/<int:index>", methods=["GET"])
def front(run_id: str, index: int) -> Response:
    """Inside the propagation page's iframe: send the service its logout message."""
    b = broker()
    if index > MAX_TARGET_INDEX:
        raise InvalidMessage("logout target index out of range", code="logout_target")
    _, run = _run(run_id)
    message = b.logout.front_message(run, index)
    return framed(deliver(message, _names(run).get(run.targets[index].participant.service_id)))


@logout.route("/logout/<run_id>/next", methods=["GET"])
def next_step(run_id: str) -> Response:
    """The services had their chance: on to the school (unless it started it), then done."""
    b = broker()
    secret, run = _run(run_id)
    if not b.logout.services_done(run) and b.logout.clock() < run.deadline:
        return no_store(redirect(url_for("logout.propagate", run_id=run.run_id), 303))
    return _onward(secret, run)


def _onward(secret: bytes, run: LogoutRun) -> Response:
    """After the services: the message to the school, or (none to send) the final page."""
    b = broker()
    message = b.logout.school_request(secret, run)
    if message is not None:
        school = b.view.school(run.school_id)
        return deliver(message, school.name if school else "")
    return no_store(redirect(url_for("logout.done", run_id=run.run_id), 303))


@logout.route("/logout/<run_id>/done", methods=["GET"])
def done(run_id: str) -> Response:
    b = broker()
    secret, run = _run(run_id)
    run, first = b.logout.final_answer(secret, run)
    answer = run.answer
    names = _names(run)
    school = b.view.school(run.school_id) if run.school_id else None
    initiator_name = ""
    if run.initiator.service_id:
        service = b.view.service(run.initiator.service_id)
        initiator_name = service.name if service else ""
    elif run.initiator.kind == BY_SCHOOL and school is not None:
        initiator_name = school.name  # the way back goes to the school's IdP
    if first:
        _count_ended(run)
    page = render_template(
        "logout_done.html",
        run=run,
        names=names,
        confirmed=CONFIRMED,
        school=school,
        initiator_name=initiator_name,
        answer_form=answer if answer is not None and answer.fields is not None else None,
        answer_link=answer.url if answer is not None and answer.fields is None else None,
        # Sent on without a click (logout.js) only when there is nothing to read here: a tab
        # closed on this page would otherwise leave the initiator without its answer. When
        # something did not confirm, the page stays with its button (and says what to do).
        go_on=answer is not None and run.confirmed_everywhere,
        everywhere=run.confirmed_everywhere,
    )
    response = make_response(page)
    _may_send_to(response, answer)
    return no_store(response)


def _count_ended(run: LogoutRun) -> None:
    """A run's outcome, once: the metrics, and a log line of counts (no service names: those
    that did not confirm were logged as they answered)."""
    outcome = "partial" if run.partial else "complete"
    metrics.logout_ended(run.initiator.kind, run.initiator.protocol, outcome)
    counts = service_counts(run)
    metrics.logout_services(counts)
    by_status = counts_by_status(counts)
    log.info(
        "logout ended by=%s protocol=%s outcome=%s services=%d %s front_and_back=%d "
        "confirmed_by_back_only=%d",
        run.initiator.kind,
        run.initiator.protocol or "-",
        outcome,
        len(run.targets),
        " ".join(f"{status}={count}" for status, count in by_status.items()),
        sum(count for (channel, _), count in counts.items() if channel == FRONT_AND_BACK),
        confirmed_by_back_only(run),
    )


def deliver(message: Outbound, destination_name: str | None) -> Response:
    if message.fields is None:
        response = redirect(message.url, 303)
    else:
        response = autopost(PostMessage(message.url, dict(message.fields)), destination_name or "")
    return no_store(response)


def framed(response: Response) -> Response:
    """A page the propagation page shows in an iframe: the broker's own pages may frame it."""
    csp = response.headers.get("Content-Security-Policy") or content_security_policy()
    response.headers["Content-Security-Policy"] = csp.replace(
        "frame-ancestors 'none'", "frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _may_send_to(response: Response, answer: Outbound | None) -> None:
    """A page carrying the peer's answer (its form or link): the policy lets it go there."""
    if answer is not None:
        response.headers["Content-Security-Policy"] = content_security_policy(
            written_origin(answer.url) or ""
        )
