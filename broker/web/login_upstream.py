"""From the service's request to the school: answer at once from the SSO session, or send the
student on to the school's identity provider (choosing it on the discovery page first), with the
service's wishes in the school's protocol. The front routes call `continue_login` after a request
arrived; discovery calls `go_upstream` and `prepare_upstream`. Finishing the login is
login_finish.py; what goes back to the service is service_answers.py."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal, overload

from flask import redirect, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from broker.core.errors import (
    SchoolSetupIncomplete,
    SchoolTimeout,
    SchoolUnreachable,
    UnknownSchool,
    UpstreamFailure,
)
from broker.core.model import UpstreamIdentity
from broker.login.login_model import LoginRecord, LoginRequest, is_my_data
from broker.login.participants import SessionServices
from broker.oidc.oauth_errors import NONE_PROMPT_OTHER_STUDENT, NONE_PROMPT_SIGN_IN
from broker.registry.errors import ServiceSwitchedOff
from broker.saml.front import STATUS_NO_PASSIVE
from broker.web import metrics
from broker.web.errors import render_error
from broker.web.i18n import LANGUAGE_PARAM, chosen_language, speak, ui_language
from broker.web.login_finish import finish, session_and_services
from broker.web.school_retry import NO_SCHOOL, retry_at_school
from broker.web.service_answers import (
    autopost,
    front_protocol,
    is_oidc,
    refuse_to_service,
    to_client,
    ways_to_platform,
)
from broker.web.wiring import broker, oidc_front

log = logging.getLogger("broker.login")


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
    # The login's own language (OIDC `ui_locales`) for every page of this request, and for its
    # record: the school's answer comes back in it (upstream_request).
    speak(requested_ui_language(record.request))
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
        service = b.view.service(record.request.service_id)
        service_name = service.name if service else ""
        if is_oidc(record.request):
            answer = oidc_front().error_response(
                record.request,
                "login_required",
                NONE_PROMPT_OTHER_STUDENT if someone_else else NONE_PROMPT_SIGN_IN,
            )
            return to_client(answer, service_name)
        message = b.saml_front.error_for(record.request, STATUS_NO_PASSIVE, "no_passive")
        return autopost(message, service_name)
    if someone_else:
        # A fresh login, forced (the school's own session may be the same someone else's), at
        # the school the service hinted or one the student chooses, never the session's. If it
        # is still not the expected student, flow.complete refuses it (login_required).
        record = replace(record, request=replace(record.request, force_authn=True))
    elif sso is not None and not record.school_id and _may_go_back(record, sso[0]):
        # A session that may not answer (a fresh login or a stronger one is asked for, or its
        # login did not name a board IdP's school): the student logs in again at the school
        # they logged in at, without choosing it again, and that login is checked as any.
        record = b.flow.with_school(record, sso[0].school_id)
    if record.school_id:
        return go_upstream(secret, record, stored=False)  # saves the record
    return to_discovery(secret, record)


def _may_go_back(record: LoginRecord, identity: UpstreamIdentity) -> bool:
    """Whether a login the session may not answer goes to the session's school: not when the
    student is to choose, nor when the service named an IdP that is not that school's (a
    board's IdP: the student chooses among its schools)."""
    request = record.request
    if request.choose_school:
        return False
    return not request.school_choices or identity.school_id in request.school_choices


def to_discovery(secret: bytes, record: LoginRecord) -> Response:
    """The student chooses a school; the record is saved here for the first time. A login that
    arrived by GET gets the discovery page in this very response (with the remembered school's
    request prepared for it: discovery.first_discovery_page): a redirect to it would cost the
    student a round trip and the broker a request. One that arrived by POST (SAML HTTP-POST
    binding, OIDC authorize by POST) is redirected to `GET /discovery` (Post/Redirect/Get): a
    reload or the back button must fetch the page, never post the service's request again."""
    language = requested_ui_language(record.request)
    if request.method in ("GET", "HEAD"):
        # Imported here: discovery imports this module (go_upstream, prepare_upstream).
        from broker.web.discovery import first_discovery_page

        return first_discovery_page(secret, record, language=language)
    broker().flow.save_new(secret, record)
    target = url_for("discovery.choose", login=record.login_id)
    if language:
        target += f"&{LANGUAGE_PARAM}={language}"
    return redirect(target, 303)


def go_upstream(secret: bytes, record: LoginRecord, *, stored: bool = True) -> Response:
    """Send the student to the school's identity provider, in the school's protocol.
    Saves the record with the upstream request (for the first time, or over a saved one).
    `stored`: a record of this login is saved already (the school choice's); False for one
    that arrived naming its school (`Scoping/IDPList`, the session's school), saved only here.

    Not when the school cannot serve (its sign-in cannot be reached, or is not set up, or it
    left the registry since it was chosen): the student's page says so, with the ways on
    (`school_failed_page`).

    Not when the school switched the service off: the login is refused before the student
    signs in at the school for nothing, and the service hears so (refuse_to_service), as it
    would at the school's answer. The worker's cached registry view answers (its per-pair
    cache, which the release at the answer reads again): no database query more per login."""
    switched_off = service_switched_off(record)
    if switched_off is not None:
        return refuse_to_service(record, switched_off)
    try:
        url = upstream_request(secret, record)
    except (UpstreamFailure, UnknownSchool) as failure:
        return school_failed_page(secret, record, failure, stored=stored)
    # Only here: the student is on the way to the school now. A prepared link logs "prepared"
    # instead; whether the student followed it, the school's answer shows.
    log.info("upstream school=%s service=%s", record.school_id, record.request.service_id)
    return redirect(url, 303)


def school_failed_page(
    secret: bytes, record: LoginRecord, failure: UpstreamFailure | UnknownSchool, *, stored: bool
) -> Response:
    """The login cannot go on at `record`'s school: its sign-in page cannot be reached for now
    (`SchoolUnreachable`: "Try again" is offered), or it is not set up to sign students in
    here (its metadata or provider missing, its setup incomplete, or `UnknownSchool`: it left
    the registry between the student's choice and the send; trying again cannot help).
    Either page offers the school choice again and "Back to <platform>", which ends the login
    and tells the platform NoAvailableIDP / access_denied (back_to_platform.py): SAML profiles
    4.1.4.1 and core 3.4.1.4 want a Response to every request, an error status when it cannot
    be satisfied, and the student must not be left on a page with no way on.

    The login's record stays as it was (the school choice's), or, for a login that named its
    school (`stored` False), is saved now for those ways on to find. A passive request never
    comes here: it is answered NoPassive / login_required before (`continue_login`)."""
    b = broker()
    if not stored:
        b.flow.save_new(secret, record)
    # Not over yet: it ends when the student goes back (tell_platform counts it then), or
    # completes at another school.
    metrics.refused_at(request.endpoint, failure, login_open=True)
    ways_on = ways_to_platform(record, NO_SCHOOL)
    school = b.view.school(record.school_id or "")
    if isinstance(failure, SchoolUnreachable) and school is not None:
        # Which school's sign-in page fails, for the operator (render_error's line has the
        # error id).
        log.warning("refused school=%s code=%s: school not reached", school.id, failure.code)
        # A timeout in its own words (it did not answer in time); else "cannot be reached".
        timed_out = isinstance(failure, SchoolTimeout)
        return render_error(
            failure,
            title=None
            if timed_out
            else lambda: gettext("Your school's sign-in page cannot be reached"),
            message=None
            if timed_out
            else lambda: gettext("Your school's sign-in page cannot be reached right now."),
            retry=retry_at_school(record, school),
            **ways_on,
        )
    if isinstance(failure, UnknownSchool):
        # From the discovery page the record holds no school yet (the choice named none in the
        # registry, and the posted id is unchecked input); on the way to a school chosen
        # before, it left the registry since. One line for both, without an id.
        log.warning("refused code=%s: chosen school not in the registry", failure.code)
    else:
        log.warning("refused school=%s code=%s: school not set up", record.school_id, failure.code)
    return render_error(
        failure,
        title=lambda: gettext("Signing in with your school is not set up"),
        message=lambda: gettext(SchoolSetupIncomplete.public_message),
        choose_again=url_for("discovery.choose", login=record.login_id),
        cannot_serve=True,
        **ways_on,
    )


def service_switched_off(record: LoginRecord) -> ServiceSwitchedOff | None:
    """The refusal of a login whose school switched its service off, if it did."""
    if is_my_data(record.request) or not record.school_id:
        return None
    try:
        broker().view.policy(record.school_id, record.request.service_id)
    except ServiceSwitchedOff as switched_off:
        return switched_off
    return None


def prepare_upstream(secret: bytes, record: LoginRecord, school_id: str) -> str | None:
    """The remembered school's request, made with the discovery page that offers it, before
    the student chose: the record is saved (for the first time) with that school and request,
    and the URL returned is the page's link straight to the school. The student who follows
    it saves a request to the broker and a round trip; one who chooses otherwise POSTs to
    `/discovery` as always, and go_upstream overwrites the record with the new request (an
    answer to the prepared one is then refused, as any stale answer is).

    None, with nothing saved (the caller saves the record as before, and the page keeps its
    POST form): the school switched the service off (the POST is refused then, before the
    student signs in at the school: go_upstream), the school's OpenID provider is not held
    fresh by this worker (preparing would mean a network call while the page waits), or the
    school's request cannot be made (its metadata lacks what is needed: the POST then shows
    the student that error, as today)."""
    try:
        chosen = broker().flow.with_school(record, school_id)
        refusal = service_switched_off(chosen)
        if refusal is not None:
            raise refusal
        url = upstream_request(secret, chosen, prepared=True)
    except (UnknownSchool, ServiceSwitchedOff, UpstreamFailure) as failure:
        log.info("not prepared school=%s code=%s", school_id, failure.code)
        return None
    if url is not None:
        log.info("prepared school=%s service=%s", school_id, record.request.service_id)
    return url


@overload
def upstream_request(
    secret: bytes, record: LoginRecord, *, prepared: Literal[False] = ...
) -> str: ...
@overload
def upstream_request(
    secret: bytes, record: LoginRecord, *, prepared: Literal[True]
) -> str | None: ...
def upstream_request(secret: bytes, record: LoginRecord, *, prepared: bool = False) -> str | None:
    """Make the request to `record`'s school in its protocol and save the record with it (one
    store round trip, with the epoch of the answer's replay bucket). Returns the URL that
    takes the browser to the school. The service's wishes go along alike on either path:
    ForceAuthn or OIDC `max_age` (a fresh login at the school), the assurance levels asked.

    `prepared` (prepare_upstream): made ahead of the student's choice, so no network call (an
    OIDC provider whose document this worker does not hold fresh gives None, nothing saved)
    and no time of leaving in the record (flow.note_upstream)."""
    b = broker()
    school = b.view.school(record.school_id or "")
    if school is None:
        raise UnknownSchool("chosen school vanished")
    # The language the student chose, for the pages of the school's answer (i18n.py): kept in
    # the record this function saves anyway, so no write of its own.
    record = replace(record, language=chosen_language())
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
            select_account=record.wrong_account_at == school.idp_entity_id,
            metadata=provider,
        )
        request_id, kept, url = oidc.request_id, oidc.kept, oidc.redirect_url
    else:
        contexts = assurance.school_request(request.acr, required=request.acr_required)
        saml = b.saml_back.authn_request(
            school,
            relay_state=record.login_id,
            # A SAML school says how old its login is only afterwards: with max_age the broker
            # asks for a fresh one, and the flow still checks the AuthnInstant it gets. After
            # the school's "no" to this login (`wrong_account_at`), "Try again" asks for a fresh
            # one too: the school's own session would answer with the same account again (an
            # OpenID provider is asked which account instead, above).
            force_authn=request.force_authn
            or request.max_age is not None
            or record.wrong_account_at == school.idp_entity_id,
            authn_contexts=contexts,
            proxy_count=request.proxy_count,
            idp_list=request.idp_list,
            idp_list_get_complete=request.idp_list_get_complete,
        )
        request_id, kept, url = saml.request_id, None, saml.redirect_url
    b.flow.note_upstream(secret, record, request_id, kept, prepared=prepared)
    return url


def requested_ui_language(request: LoginRequest) -> str | None:
    return ui_language(request.front.get("ui_locales", ""))
