"""The information notice (docs/receipts.md): the page, and the student's "Continue", which
finishes the login it held (receipting.py); and the page that says "You are already signed in
to <platform>" wherever an answered login is met again: Back to the notice, or from the
platform to an auto-post answer (`sent_on`), and a school's second answer to a login it
answered before, at the SAML ACS and the OIDC callback (`answered_login`)."""

from __future__ import annotations

import logging

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from broker.core.errors import StateExpired, StoreUnavailable, UnknownSchool, UnknownService
from broker.core.origins import written_origin
from broker.login.receipting import LOGIN_DONE, NOTICE_DONE, PendingRelease
from broker.web.browser import SSO_COOKIE, browser_secret
from broker.web.content_policy import content_security_policy
from broker.web.i18n import SUPPORTED_LANGUAGES, lang_switch_url
from broker.web.labels import labelled_purposes
from broker.web.login_finish import finish, session_and_services
from broker.web.no_store import no_store
from broker.web.service_answers import (
    answer_address,
    platform_site,
)
from broker.web.wiring import broker

notice = Blueprint("notice", __name__)
log = logging.getLogger("broker.login")
MAX_NOTICE_ID = 64
# The notice's own form sends this field. A POST to /notice/<id> without it is a browser
# re-sending the request the notice came in (a reload that kept its POST body after
# `history.replaceState`, as WebKit may): it gets the notice again, never the login's end.
CONTINUE_FIELD = "continue"


def _checked(notice_id: str) -> str:
    if len(notice_id) > MAX_NOTICE_ID:
        raise StateExpired("notice id too long")
    return notice_id


@notice.route("/notice/<notice_id>", methods=["GET"])
def show(notice_id: str) -> Response:
    notice_id, secret = _checked(notice_id), browser_secret(request)
    try:
        pending = broker().receipting.peek(secret, notice_id)
    except StateExpired:
        # The Back button from the platform, after "Continue": the login was answered, and
        # saying it "took too long" would be wrong. One read, on this path only.
        return already_answered(secret, notice_id)
    return notice_response(pending, notice_id)


def already_answered(secret: bytes, notice_id: str, *, kind: str = NOTICE_DONE) -> Response:
    """ "You are already signed in to <platform>", for a notice this browser continued past
    (its mark, receipting.done_op), or a login that was answered (`kind` LOGIN_DONE:
    `answered_login`); the original refusal for any other."""
    b = broker()
    done = b.receipting.done(secret, notice_id, kind=kind)
    service = b.view.service(done.service_id) if done is not None else None
    if done is None or service is None:
        raise StateExpired("notice absent or used")
    return _signed_in_page(service.name, done.site)


def answered_login(secret: bytes, login_id: str) -> Response:
    """A school's answer for a login whose record is gone: when this browser's login was
    answered (login_finish.answered_mark), the school answered it again (the student went Back
    into the school's page, which signed them in once more), and nothing of that answer is
    used: "You are already signed in to <platform>", with the way there. Otherwise the login
    expired (StateExpired, as before). One read, on this path only."""
    page = already_answered(secret, login_id, kind=LOGIN_DONE)
    log.info("answer to a login answered before: already signed in")
    return page


@notice.route("/sent-on/<service_id>", methods=["GET"])
def sent_on(service_id: str) -> Response:
    """Where Back from a platform lands after an auto-post answer that no notice came before
    (the page puts this address in its own place, autopost.js): the same "already signed in"
    page as the notice's, with the link to the platform's site, at the address the login was
    answered at (the query's `to`: an ACS URL, or an OIDC client's redirect URI when it asked
    for response_mode=form_post) if the platform registers it, else at its first
    (`platform_site`). It holds nothing of the login, so any browser may see it; it is what
    the broker answered there, not a state."""
    b = broker()
    service = b.view.service(service_id) if len(service_id) <= MAX_NOTICE_ID else None
    if service is None or not service.approved:
        raise UnknownService("no such service to go back to")
    return _signed_in_page(service.name, platform_site(service, request.args.get("to", "")))


def _signed_in_page(service_name: str, site: str | None) -> Response:
    response = make_response(
        render_template("notice_done.html", service_name=service_name, site=site)
    )
    return no_store(response)


def notice_response(pending: PendingRelease, notice_id: str) -> Response:
    """The notice page for a held login: at `GET /notice/<id>`, and in the very response that
    completed the login (login_finish.notice_page), which saves the student a round trip and the
    broker a request.

    That response answers the school's POST (or its OIDC callback, whose code is spent; or the
    service's request, when an SSO session answered it), so the page names its own address,
    `/notice/<id>`: notice.js puts it in the browser's history in place of that request
    (`history.replaceState`), and a reload or the language switch fetches the notice again
    instead of posting the school's answer once more (which the replay guard would refuse)."""
    b = broker()
    service = b.view.service(pending.record.request.service_id)
    if service is None:
        raise UnknownService("service left the registry during the notice")
    school = b.view.school(pending.identity.school_id)
    if school is None:
        raise UnknownSchool("school left the registry during the notice")
    released = labelled_purposes(service, pending.attributes)
    # Also where "Continue" posts: one rule, whose GET shows the notice and POST continues
    # (`proceed`), so the page needs the URL built once.
    address = url_for("notice.show", notice_id=notice_id)
    page = render_template(
        "notice.html",
        notice_id=notice_id,
        service_name=service.name,
        school=school,
        released=released,
        address=address,
        continue_field=CONTINUE_FIELD,
        # The login was answered from an SSO session already in this browser (no sign-in at
        # the school just now): the page offers "Not you? Then log out first."
        from_session=pending.sso_token is not None,
        lang_switch={code: lang_switch_url(code, address, ()) for code in SUPPORTED_LANGUAGES},
    )
    response = make_response(page)
    no_store(response)
    if service.oidc is not None:
        # "Continue" answers an OIDC client with a redirect to its redirect URI (the query
        # mode; form_post's auto-post page has its own policy), and Chromium holds the
        # redirect after a form POST to the page's `form-action` too.
        origins = sorted({o for o in map(written_origin, service.oidc.redirect_uris) if o})
        response.headers["Content-Security-Policy"] = content_security_policy(" ".join(origins))
    return response


@notice.route("/notice/<notice_id>", methods=["POST"])
def proceed(notice_id: str) -> Response:
    # The id is unguessable and only on the page shown to this browser, and the held login is
    # sealed under this browser's secret: another site cannot make a student continue.
    if request.form.get(CONTINUE_FIELD) != "1":
        return redirect(url_for("notice.show", notice_id=_checked(notice_id)), 303)
    b = broker()
    notice_id, secret = _checked(notice_id), browser_secret(request)
    try:
        pending = b.receipting.take(secret, notice_id)
    except StateExpired:
        # A second "Continue", e.g. a double click that submit-once.js did not stop (no
        # JavaScript); the browser shows this answer, not the first one's. Once the first
        # request's receipt is filed (milliseconds after its take) the mark is there:
        # "already signed in", with the way to the platform. Before that the refusal comes at
        # once, not after waiting for the mark: a hand rarely clicks inside those milliseconds,
        # and a wait would hold a worker thread for every POST of a made-up id to this open,
        # unlimited address (a refusal of ~1 ms would take hundreds); telling a real take in
        # flight from a made-up id would cost the normal path a write at the take.
        return already_answered(secret, notice_id)
    identity, authn_instant = pending.identity, pending.authn_instant
    services = None
    try:
        if pending.sso_token is not None:
            # Answered from an SSO session: it must still stand, and still be this browser's
            # (a notice left open on a shared computer outlives neither a logout nor the
            # session). Its record of services comes in the same round trip (finish needs it).
            # Inside the try: the store failing here is a "try again" as later on.
            live, services = session_and_services(pending.sso_token)
            if live is None or request.cookies.get(SSO_COOKIE) != pending.sso_token:
                raise StateExpired("the SSO session ended while the notice was open")
            identity, authn_instant = live
        return finish(
            pending.record,
            identity,
            authn_instant,
            sso_token=pending.sso_token,
            shown=pending.fingerprint,
            session_services=services,
            # Back from the platform fetches the notice, which then says "already signed in".
            back_address=url_for("notice.show", notice_id=notice_id),
            # Once the receipt committed: Back from the platform to this address finds it.
            also=[
                b.receipting.done_op(
                    secret,
                    notice_id,
                    pending.record.request.service_id,
                    platform_site(
                        b.view.service(pending.record.request.service_id),
                        answer_address(pending.record.request),
                    ),
                )
            ],
        )
    except StoreUnavailable:
        # Not answered (the store or the registry out of reach: the 503 says "try again"):
        # the login is held again under the same id, so the same "Continue" (the page's
        # retry, Back and Continue) finishes it once the store answers.
        _hold_again(secret, notice_id, pending)
        raise


def _hold_again(secret: bytes, notice_id: str, pending: PendingRelease) -> None:
    try:
        broker().receipting.hold(secret, pending, notice_id=notice_id)
    except StoreUnavailable:
        # The store itself is down: the try again then finds the login gone ("start again").
        log.warning("notice not held again reason=store_unavailable")
