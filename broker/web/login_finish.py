"""Finishing a login once the school (or the SSO session) vouched for the student: the release,
the information notice when it is due, the SSO session and its record of services, and the
receipt as the commit point, in one store round trip on the normal path (and one more after the
receipt for the marks that the login was answered). The answer itself and
a refusal are built by service_answers.py; the way to the school is login_upstream.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import request
from werkzeug.wrappers import Response

from broker.core.errors import InteractionRequired, PolicyRefusal, StoreUnavailable, UpstreamFailure
from broker.core.model import Service, UpstreamIdentity
from broker.core.notice_release import NoticeRelease, notice_release
from broker.core.ports import StoreOp
from broker.core.pseudonym import same_student
from broker.core.receipts import ReceiptContent
from broker.login.login_model import LoginRecord, is_my_data
from broker.login.participants import Participant, SessionServices
from broker.login.participants import session_and_services as read_session_and_services
from broker.login.receipting import LOGIN_DONE, PendingRelease
from broker.login.session_index import session_index
from broker.web import metrics
from broker.web.browser import SSO_COOKIE, browser_secret, set_sso_token
from broker.web.my_data import my_data_signed_in
from broker.web.no_store import no_store
from broker.web.service_answers import (
    answer_address,
    front_protocol,
    platform_site,
    refuse_to_service,
    school_protocol,
    service_answer,
)
from broker.web.wiring import Broker, broker

log = logging.getLogger("broker.login")


def _undo_unanswered(b: Broker, new_token: str | None, identity: UpstreamIdentity) -> None:
    """The session a login that was not answered may have written, taken back; one round trip
    on the failure path only. (The marks that it was answered are written only after the
    receipt: `_mark_answered`.)"""
    try:
        if new_token:
            b.flow.end_session(new_token, identity, also=[b.session_services.forget_op(new_token)])
    except StoreUnavailable:
        # The store is what failed (or fails now): the original error is the one to report;
        # what was written ends at its expiry.
        log.warning("login cleanup skipped reason=store_unavailable")


def _answer_batch(
    b: Broker,
    writes: list[StoreOp],
    token: str | None,
    before: SessionServices,
    participant: Participant,
    new_session: bool,
) -> None:
    """The login's writes in one batch, the `token` session's record of its services (read as
    `before`) last, when this login changes it. When another login of the session (a second
    tab) wrote that record since it was read, this service is added to what it holds now, on its
    own, the rest of the batch standing (participants.py `settle`). A store failure there
    refuses the login as one in the batch would: a service the record does not name would not
    hear of the logout."""
    services_write = None
    if token:
        services_write = b.session_services.record_op(
            token, before, participant, new_session=new_session
        )
    every = [*writes, services_write] if services_write is not None else writes
    replies = b.flow.store.batch(every) if every else []
    if token and services_write is not None:
        b.session_services.settle(token, participant, replies[-1])


def _mark_answered(
    b: Broker, record: LoginRecord, service: Service, also: Sequence[StoreOp], *, school: bool
) -> None:
    """The marks that this login was answered (the caller's `also`; and when a school's answer
    completed it, `school`, at the ACS or callback or through its notice, the login's own, for
    a second answer to it: Back into the school's page), after the receipt committed, in a
    write of their own: a login whose receipt failed, or whose worker died waiting for it,
    leaves none, so neither Back nor a school's second answer hears "already signed in" of a
    login that was never answered. A mark not written costs only that page: Back then says the
    attempt is over ("start again")."""
    marks = [*also, answered_mark(record, service)] if school else list(also)
    if not marks:
        return
    try:
        b.flow.store.batch(marks)
    except StoreUnavailable:
        log.warning("answered mark not written reason=store_unavailable")


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
    caller's own writes (puts of keys of its own: the notice's "answered" mark), for an answered
    login only: written with the school answer's own mark once the receipt committed
    (`_mark_answered`), so none of them tells of an answer that never left.
    `back_address`: where Back from the service should land, when this answers a POST whose
    own address also shows a page (the notice's).
    """
    b = broker()
    if is_my_data(record.request):
        return my_data_signed_in(identity, sso_token)
    try:
        completion = b.flow.complete(
            record.request, identity, authn_instant, sent_at=record.sent_to_school_at
        )
    except (PolicyRefusal, UpstreamFailure) as refusal:
        return refuse_to_service(record, refusal)
    content = b.receipting.content(completion, identity)
    # What the notice tells: the released names with their purposes of record.
    release = notice_release(completion.service, content.attributes)
    # The session's one record of its services: the notice's "seen" marks and what each
    # service was told, for logout (login/participants.py). One read; a write only on change.
    ending: list[StoreOp] = []
    if sso_token:
        replaced = None
        if session_services is None:
            session_services = b.session_services.read(sso_token)
    else:
        replaced, session_services, ending = replaced_session(identity)
    mark = session_services.seen(completion.service.id)
    seen = b.receipting.seen(mark, release, authn_instant)
    # `shown` (the student just continued past this release's notice) ends it in every case:
    # a notice the service asked for (prompt=consent) shows once per login, not again.
    if not b.receipting.seen(shown, release, authn_instant) and b.receipting.notice_due(
        content,
        release,
        school=completion.school,
        identity=identity,
        seen=seen,
        asked=record.request.show_notice,
    ):
        if record.request.front.get("is_passive"):
            return refuse_to_service(record, InteractionRequired("notice due on a passive login"))
        return notice_page(record, identity, authn_instant, sso_token, content, release)
    # A fresh login's session is written with the record of its services, in one batch once
    # the answer is built (a login refused before that leaves nothing to clean up).
    opened = b.flow.new_session(identity, authn_instant) if sso_token is None else None
    new_token, writes = opened if opened is not None else (None, [])
    try:
        # The service's own SessionIndex (OIDC `sid`) for this SSO session: the same on each of
        # its answers, another at every other service (login/session_index.py).
        index = session_index(sso_token or new_token, completion.service.id)
        response, handles, answer_writes = service_answer(record, completion, index, back_address)
        # The answer's writes (an OIDC code's) lead the batch below: the code and the SSO
        # session's records in one round trip, sent before the response leaves.
        writes = [*answer_writes, *writes]
        participant = Participant(
            completion.service.id, front_protocol(record.request), handles, release.fingerprint
        )
        _answer_batch(
            b, writes, sso_token or new_token, session_services, participant, new_token is not None
        )
        # The receipt is the commit point: written last, once everything else stands, so a
        # receipt never names a login that was not answered; without it there is no answer.
        b.receipting.file(content)
    except BaseException:
        # The batch may have been sent: a login not answered leaves no session. One round trip
        # on this failure path only; the normal path has none for it.
        _undo_unanswered(b, new_token, identity)
        raise
    _mark_answered(b, record, completion.service, also, school=sso_token is None)
    if replaced:
        # Its services now belong to the new session (a logout reaches them from there). After
        # the commit point: a login that failed leaves the old session as it was.
        try:
            b.flow.end_session(*replaced, also=ending)
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
    if identity.session_ends is not None and completion.session_ends is None:
        # Not passed on (flow.py `_session_end`): said here, not silently.
        log.info("school session over already school=%s", completion.school.id)
    no_store(response)
    if new_token:
        set_sso_token(response, new_token)
    metrics.login_ended(
        front_protocol(record.request), school_protocol(completion.school), metrics.OK
    )
    return response


def answered_mark(record: LoginRecord, service: Service) -> StoreOp:
    """The mark that `record`'s login was answered, under its id, for this browser only: the
    platform it went to and that platform's site (notice.answered_login reads it)."""
    return broker().receipting.done_op(
        browser_secret(request),
        record.login_id,
        record.request.service_id,
        platform_site(service, answer_address(record.request)),
        kind=LOGIN_DONE,
    )


def replaced_session(
    identity: UpstreamIdentity,
) -> tuple[tuple[str, UpstreamIdentity] | None, SessionServices, list[StoreOp]]:
    """A fresh school login in a browser whose SSO session still stands (a service forced a
    new login, or another school was asked for) replaces that session: the new one takes over
    its services, so a logout still reaches every service this browser was logged in to.
    The notice's marks carry over only for the same student at the same school
    (core/pseudonym.py `same_student`: the pseudonym's input, the ECK iD at an ECK iD school,
    where the school's subject is empty for every student; a session whose student cannot be
    told counts as another student's). Returns the replaced session's token and identity (to
    end it, with its filing under the school's sid), the services, and what replacing it
    writes beside (SingleLogout.replaced: another student's service sessions end, the same
    student's stay)."""
    old = request.cookies.get(SSO_COOKIE)
    held, services = session_and_services(old)
    if not old or held is None:
        return None, SessionServices(), []
    b = broker()
    same = same_student(b.view.school(identity.school_id), held[0], identity)
    writes = b.logout.replaced(old, services, same_student=same)
    return (old, held[0]), services.handed_on(same_student=same), writes


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
    release: NoticeRelease,
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
        release.fingerprint,
        content.attributes,
    )
    notice_id = b.receipting.hold(secret, pending)
    # Imported here: notice imports this module (finish, session_and_services).
    from broker.web.notice import notice_response

    response = notice_response(pending, notice_id)
    log.info("notice school=%s service=%s", content.school_id, content.service_id)
    return response
