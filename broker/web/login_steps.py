"""The login steps shared by every front: send the student on to the school (or to discovery),
and finish a login into the front's response. Routes stay a few lines each."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, overload
from urllib.parse import urlsplit

from flask import current_app, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from broker.core.errors import (
    AssuranceNotMet,
    BrokerError,
    ConfigurationError,
    InteractionRequired,
    PolicyRefusal,
    StoreUnavailable,
    UnknownSchool,
    UpstreamFailure,
)
from broker.core.model import Protocol, School, UpstreamIdentity
from broker.core.ports import StoreOp
from broker.core.receipts import ReceiptContent
from broker.login.flow import Completion, LoginRecord, LoginRequest, is_my_data
from broker.login.participants import Participant, SessionServices
from broker.login.participants import session_and_services as read_session_and_services
from broker.login.receipting import PendingRelease
from broker.oidc.oauth_errors import NONE_PROMPT_OTHER_STUDENT, NONE_PROMPT_SIGN_IN
from broker.oidc.oauth_errors import refusal as oauth_refusal
from broker.oidc.provider import OidcProvider
from broker.saml.front import (
    STATUS_AUTHN_FAILED,
    STATUS_NO_AUTHN_CONTEXT,
    STATUS_NO_PASSIVE,
    STATUS_REQUEST_DENIED,
    AnswerableRefusal,
    PostMessage,
)
from broker.web import metrics
from broker.web.browser import SSO_COOKIE, browser_secret, set_sso_token
from broker.web.errors import render_error
from broker.web.i18n import LANGUAGE_PARAM, SUPPORTED_LANGUAGES
from broker.web.my_data import my_data_signed_in
from broker.web.wiring import Broker

log = logging.getLogger("broker.login")


def broker() -> Broker:
    value: Broker = current_app.extensions["ketenbroker"]
    return value


def continue_login(
    secret: bytes,
    record: LoginRecord,
    sso_token: str | None,
    *,
    known: tuple[tuple[UpstreamIdentity, float] | None, SessionServices] | None = None,
) -> Response:
    """After a request arrived: answer from the SSO session, go to the school, or to discovery.

    `record` was made with `flow.start(..., save=False)`: it is saved here only if the login
    goes on (to the school, or to discovery); answered from the SSO session, it is never
    written. `known`: the SSO session and its services record, if the route read them already
    (`session_and_services`)."""
    b = broker()
    # The session and its record of services in one round trip: finish needs both.
    sso, services = known if known is not None else session_and_services(sso_token)
    # The service named the student it expects (OIDC id_token_hint, a requested sub) and the
    # session is someone else's: it may not answer, and the school is not guessed from it.
    # No work when the service named no one (is_expected_student answers at once).
    someone_else = sso is not None and not b.flow.is_expected_student(record.request, sso[0])
    if sso is not None and sso_token and not someone_else and b.flow.session_serves(record, *sso):
        return finish(record, sso[0], sso[1], sso_token=sso_token, session_services=services)
    if record.request.front.get("is_passive"):
        # IsPassive / prompt=none mean "do not show the student anything": the service hears
        # at once that a login is needed, and decides itself what to do next.
        metrics.login_ended(front_protocol(record.request), metrics.UNKNOWN, "login_required")
        if is_oidc(record.request):
            location = oidc_front().error_location(
                record.request,
                "login_required",
                NONE_PROMPT_OTHER_STUDENT if someone_else else NONE_PROMPT_SIGN_IN,
            )
            return redirect(location, 303)
        service = b.view.service(record.request.service_id)
        message = b.saml_front.error_for(record.request, STATUS_NO_PASSIVE, "no_passive")
        return autopost(message, service.name if service else "")
    if someone_else:
        # A fresh login, forced (the school's own session may be the same someone else's), at
        # the school the service hinted or one the student chooses, never the session's. If it
        # is still not the expected student, flow.complete refuses it (login_required).
        record = replace(record, request=replace(record.request, force_authn=True))
    elif sso is not None and not record.school_id and not record.request.choose_school:
        # A session that may not answer (a fresh login or a stronger one is asked for): the
        # student logs in again at the school they logged in at, without choosing it again.
        record = b.flow.with_school(record, sso[0].school_id)
    if record.school_id:
        return go_upstream(secret, record, first_save=True)  # saves the record
    return to_discovery(secret, record)


def to_discovery(secret: bytes, record: LoginRecord) -> Response:
    """The student chooses a school; the record is saved here for the first time. A login that
    arrived by GET gets the discovery page in this very response (with the remembered school's
    request prepared for it: discovery.first_discovery_page): a redirect to it would cost the
    student a round trip and the broker a request. One that arrived by POST (SAML HTTP-POST
    binding, OIDC authorize by POST) is redirected to `GET /discovery` (Post/Redirect/Get): a
    reload or the back button must fetch the page, never post the service's request again."""
    language = requested_ui_language(record.request)
    if request.method in ("GET", "HEAD"):
        # Imported here: discovery imports this module (broker, go_upstream).
        from broker.web.discovery import first_discovery_page

        return first_discovery_page(secret, record, language=language)
    broker().flow.save_new(secret, record)
    target = url_for("discovery.choose", login=record.login_id)
    if language:
        target += f"&{LANGUAGE_PARAM}={language}"
    return redirect(target, 303)


def go_upstream(secret: bytes, record: LoginRecord, *, first_save: bool = False) -> Response:
    """Send the student to the school's identity provider, in the school's protocol.
    Saves the record with the upstream request (`first_save`: for the first time)."""
    url = upstream_request(secret, record, first_save=first_save)
    # Only here: the student is on the way to the school now. A prepared link logs "prepared"
    # instead; whether the student followed it, the school's answer shows.
    log.info("upstream school=%s service=%s", record.school_id, record.request.service_id)
    return redirect(url, 303)


def prepare_upstream(secret: bytes, record: LoginRecord, school_id: str) -> str | None:
    """The remembered school's request, made with the discovery page that offers it, before
    the student chose: the record is saved (for the first time) with that school and request,
    and the URL returned is the page's link straight to the school. The student who follows
    it saves a request to the broker and a round trip; one who chooses otherwise POSTs to
    `/discovery` as always, and go_upstream overwrites the record with the new request (an
    answer to the prepared one is then refused, as any stale answer is).

    None, with nothing saved (the caller saves the record as before, and the page keeps its
    POST form): the school's OpenID provider is not held fresh by this worker (preparing would
    mean a network call while the page waits), or the school's request cannot be made (its
    metadata lacks what is needed: the POST then shows the student that error, as today)."""
    try:
        chosen = broker().flow.with_school(record, school_id)
        url = upstream_request(secret, chosen, first_save=True, prepared=True)
    except (UnknownSchool, UpstreamFailure) as failure:
        log.info("not prepared school=%s code=%s", school_id, failure.code)
        return None
    if url is not None:
        log.info("prepared school=%s service=%s", school_id, record.request.service_id)
    return url


@overload
def upstream_request(
    secret: bytes, record: LoginRecord, *, first_save: bool = ..., prepared: Literal[False] = ...
) -> str: ...
@overload
def upstream_request(
    secret: bytes, record: LoginRecord, *, first_save: bool = ..., prepared: Literal[True]
) -> str | None: ...
def upstream_request(
    secret: bytes, record: LoginRecord, *, first_save: bool = False, prepared: bool = False
) -> str | None:
    """Make the request to `record`'s school in its protocol and save the record with it (one
    store write; `first_save`: the record's first, with the store epoch). Returns the URL that
    takes the browser to the school. The service's wishes go along alike on either path:
    ForceAuthn or OIDC `max_age` (a fresh login at the school), the assurance levels asked.

    `prepared` (prepare_upstream): made ahead of the student's choice, so no network call (an
    OIDC provider whose document this worker does not hold fresh gives None, nothing saved)
    and no time of leaving in the record (flow.note_upstream)."""
    b = broker()
    school = b.view.school(record.school_id or "")
    if school is None:
        raise UnknownSchool("chosen school vanished")
    request = record.request
    assurance = b.settings.assurance
    if school.oidc is not None:
        provider = b.oidc_back.current_provider(school) if prepared else None
        if prepared and provider is None:
            return None
        acr_values = tuple(v for n in request.acr if (v := assurance.oidc_value(n)) is not None)
        oidc = b.oidc_back.authorization_redirect(
            school,
            record.login_id,
            force_login=request.force_authn,
            max_age=request.max_age,
            acr_values=acr_values,
            acr_essential=request.acr_required,
            metadata=provider,
        )
        request_id, kept, url = oidc.request_id, oidc.kept, oidc.redirect_url
    else:
        contexts = tuple(
            ref for n in request.acr if (ref := assurance.saml_reference(n)) is not None
        )
        saml = b.saml_back.authn_request(
            school,
            relay_state=record.login_id,
            # A SAML school says how old its login is only afterwards: with max_age the broker
            # asks for a fresh one, and the flow still checks the AuthnInstant it gets.
            force_authn=request.force_authn or request.max_age is not None,
            authn_contexts=contexts,
            proxy_count=request.proxy_count,
        )
        request_id, kept, url = saml.request_id, None, saml.redirect_url
    b.flow.note_upstream(secret, record, request_id, kept, first_save=first_save, prepared=prepared)
    return url


def _undo_unanswered(
    b: Broker, new_token: str | None, identity: UpstreamIdentity, also: Sequence[StoreOp]
) -> None:
    """What a login that was not answered may have written (its new session, the caller's
    marks), taken back; one round trip on the failure path only."""
    undone = [StoreOp.delete(op.key) for op in also]
    try:
        if new_token:
            forget = b.session_services.forget_op(new_token)
            b.flow.end_session(new_token, identity, also=[forget, *undone])
        elif undone:
            b.flow.store.batch(undone)
    except StoreUnavailable:
        # The store is what failed (or fails now): the original error is the one to report;
        # what was written ends at its expiry.
        log.warning("login cleanup skipped reason=store_unavailable")


def finish(
    record: LoginRecord,
    identity: UpstreamIdentity,
    authn_instant: float,
    *,
    sso_token: str | None = None,
    shown: str | None = None,
    session_services: SessionServices | None = None,
    also: Sequence[StoreOp] = (),
    back_address: str | None = None,
) -> Response:
    """Release and answer the service; a refusal goes to the student and the service.

    Without `sso_token` (a fresh school login) the SSO session is opened only once the release
    succeeded, so a login the broker refused leaves no session behind. The receipt is written
    last, after the answer is built: a login that cannot be accounted for is not answered, and
    a receipt never names one that was not. `shown` is the release the student just saw on the
    information notice. `session_services`: the `sso_token` session's record of its services,
    when the caller read it already (with the session, in one round trip). `also`: the
    caller's own writes (puts of keys of its own), for an answered login only, sent in the same
    batch (the notice's "answered" mark); deleted again when the login is not answered after
    all (the receipt could not be filed), so none of them tells of an answer that never left.
    `back_address`: where Back from the service should land, when this answers a POST whose
    own address also shows a page (the notice's).
    """
    b = broker()
    if is_my_data(record.request):
        return my_data_signed_in(identity)
    try:
        completion = b.flow.complete(record.request, identity, authn_instant)
    except (PolicyRefusal, UpstreamFailure) as refusal:
        return refuse_to_service(record, refusal)
    content = b.receipting.content(completion, identity)
    # The session's one record of its services: the notice's "seen" marks and what each
    # service was told, for logout (login/participants.py). One read; a write only on change.
    if sso_token:
        replaced = None
        if session_services is None:
            session_services = b.session_services.read(sso_token)
    else:
        replaced, session_services = replaced_session(identity)
    seen = session_services.seen(completion.service.id) == content.release_fingerprint
    # `shown` (the student just continued past this release's notice) ends it in every case:
    # a notice the service asked for (prompt=consent) shows once per login, not again.
    if shown != content.release_fingerprint and b.receipting.notice_due(
        content, seen=seen, asked=record.request.show_notice
    ):
        if record.request.front.get("is_passive"):
            return refuse_to_service(record, InteractionRequired("notice due on a passive login"))
        return notice_page(record, identity, authn_instant, sso_token, content)
    # A fresh login's session is written with the record of its services, in one batch once
    # the answer is built (a login refused before that leaves nothing to clean up).
    opened = b.flow.new_session(identity, authn_instant) if sso_token is None else None
    new_token, writes = opened if opened is not None else (None, [])
    try:
        # One SessionIndex (OIDC `sid`) for every service of one SSO session: logout goes by it.
        session_index = b.flow.session_index(sso_token or new_token)
        response, handles, answer_writes = service_answer(
            record, completion, session_index, back_address
        )
        # The answer's writes (an OIDC code's) lead the batch below: the code and the SSO
        # session's records in one round trip, sent before the response leaves.
        writes = [*answer_writes, *writes, *also]
        if sso_token or new_token:
            participant = Participant(
                completion.service.id,
                front_protocol(record.request),
                handles,
                content.release_fingerprint,
            )
            services_write = b.session_services.record_op(
                sso_token or new_token or "",
                session_services,
                participant,
                new_session=new_token is not None,
            )
            if services_write is not None:
                writes.append(services_write)
        if writes:
            b.flow.store.batch(writes)
        # The receipt is the commit point: written last, once everything else stands, so a
        # receipt never names a login that was not answered; without it there is no answer.
        b.receipting.file(content)
    except BaseException:
        # The batch may have been sent: a login not answered leaves neither its session nor
        # the caller's marks (Back to the notice would say "already signed in"). One round trip
        # on this failure path only; the normal path has none for it.
        _undo_unanswered(b, new_token, identity, also)
        raise
    if replaced:
        # Its services now belong to the new session (a logout reaches them from there). After
        # the commit point: a login that failed leaves the old session as it was.
        try:
            b.flow.end_session(*replaced, also=[b.session_services.forget_op(replaced[0])])
        except StoreUnavailable:
            # The login stands; the old session then ends only at its expiry (its services are
            # in the new record too, so a logout still reaches them).
            log.warning("replaced session not ended: store unavailable")
    log.info(
        "released school=%s service=%s policy_version=%s attributes=%s",
        completion.school.id,
        completion.service.id,
        completion.release.policy_version,
        ",".join(sorted(completion.release.attributes)),
    )
    response.headers["Cache-Control"] = "no-store"
    if new_token:
        set_sso_token(response, new_token, b.settings.sso_session_seconds)
    metrics.login_ended(
        front_protocol(record.request), school_protocol(completion.school), metrics.OK
    )
    return response


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
        }
        return redirect(answer.location, 303), handles, answer.writes
    message = broker().saml_front.response_for(completion, session_index=session_index)
    page = autopost(message, completion.service.name, back_address=back_address)
    return page, dict(message.logout_handles), []


def replaced_session(
    identity: UpstreamIdentity,
) -> tuple[tuple[str, UpstreamIdentity] | None, SessionServices]:
    """A fresh school login in a browser whose SSO session still stands (a service forced a
    new login, or another school was asked for) replaces that session: the new one takes over
    its services, so a logout still reaches every service this browser was logged in to.
    The notice's marks carry over only for the same student at the same school. Returns the
    replaced session's token and identity (to end it, with its filing under the school's sid)."""
    old = request.cookies.get(SSO_COOKIE)
    held, services = session_and_services(old)
    if not old or held is None:
        return None, SessionServices()
    same = held[0].school_id == identity.school_id and held[0].subject == identity.subject
    return (old, held[0]), services if same else services.without_seen()


def session_and_services(
    token: str | None,
) -> tuple[tuple[UpstreamIdentity, float] | None, SessionServices]:
    """The SSO session `token` names and its record of services, in one round trip."""
    b = broker()
    return read_session_and_services(b.flow, b.session_services, token)


def notice_page(
    record: LoginRecord,
    identity: UpstreamIdentity,
    authn_instant: float,
    sso_token: str | None,
    content: ReceiptContent,
) -> Response:
    """Hold the login, sealed, and show the student the information notice (docs/receipts.md)
    in this response. The page names its own address, `/notice/<id>`, which it puts in the
    browser's history in place of the school's one-time answer (notice.notice_response), so a
    reload or the language switch fetches the notice again and never repeats that answer."""
    b = broker()
    secret = browser_secret(request)
    pending = PendingRelease(
        record,
        identity,
        authn_instant,
        sso_token,
        content.release_fingerprint,
        content.attributes,
    )
    notice_id = b.receipting.hold(secret, pending)
    # Imported here: notice imports this module (broker, finish).
    from broker.web.notice import notice_response

    response = notice_response(pending, notice_id)
    log.info("notice school=%s service=%s", content.school_id, content.service_id)
    return response


def refuse_to_service(record: LoginRecord, cause: BrokerError) -> Response:
    """The login ends with an answer the service understands, carried by the student's page."""
    if is_my_data(record.request):
        # The broker's own page: no service to tell, only the student.
        page, status = render_error(cause)
        return make_response(page, status)
    school = broker().view.school(record.school_id or "")
    back = school_protocol(school) if school is not None else metrics.UNKNOWN
    refusal = AnswerableRefusal(cause, record.request, saml_status(cause))
    return answerable_refusal_page(refusal, school_side=back)


def saml_status(cause: BrokerError) -> str:
    if isinstance(cause, InteractionRequired):
        return STATUS_NO_PASSIVE
    if isinstance(cause, AssuranceNotMet):
        return STATUS_NO_AUTHN_CONTEXT
    if isinstance(cause, PolicyRefusal):
        return STATUS_REQUEST_DENIED
    return STATUS_AUTHN_FAILED


def requested_ui_language(request: LoginRequest) -> str | None:
    return ui_language(request.front.get("ui_locales", ""))


def ui_language(ui_locales: str) -> str | None:
    """OIDC `ui_locales` (BCP 47 tags, preferred first): the first the broker speaks."""
    for tag in ui_locales[:64].split():
        language = tag.split("-")[0].lower()
        if language in SUPPORTED_LANGUAGES:
            return language
    return None


def is_oidc(request: LoginRequest) -> bool:
    return request.front.get("protocol") == Protocol.OIDC.value


def front_protocol(request: LoginRequest) -> str:
    """The publisher's side of the pairing, as the metrics name it."""
    return metrics.protocol_name(is_oidc(request))


def school_protocol(school: School) -> str:
    """The school's side of the pairing, as the metrics name it."""
    return metrics.protocol_name(school.oidc is not None)


def oidc_front() -> OidcProvider:
    provider = broker().oidc_front
    if provider is None:
        raise ConfigurationError("OpenID Connect keys are not configured")
    return provider


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
    at_once = bool(refusal.request.front.get("is_passive")) or refusal.at_once
    if at_once:
        # No page, so no error id: the reason code is what the log keeps.
        log.warning("refused code=%s status=%s sent=at_once", refusal.code, refusal.status)
    if is_oidc(refusal.request):
        link = oidc_front().error_location(refusal.request, *oauth_refusal(refusal.cause))
        if at_once:
            return redirect(link, 303)
        page, status = render_error(refusal, service_name=service_name, return_link=link)
        return make_response(page, status)
    message = b.saml_front.error_for(refusal.request, refusal.saml_status, refusal.code)
    if at_once:
        return autopost(message, service_name or "")
    page, status = render_error(refusal, service_name=service_name, return_form=message)
    response = make_response(page, status)
    _allow_form_target(response, message.action)
    return response


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
    response.headers["Cache-Control"] = "no-store"
    return response


def _allow_form_target(response: Response, action: str) -> None:
    response.headers["Content-Security-Policy"] = content_security_policy(origin_of(action))


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url`, as CSP source expressions name a site."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(form_target: str = "") -> str:
    extra = f" {form_target}" if form_target else ""
    return (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        f"form-action 'self'{extra}"
    )
