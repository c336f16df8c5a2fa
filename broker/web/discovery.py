"""The discovery page: the student chooses their school (searchable, remembered)."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterable
from typing import Protocol
from weakref import WeakKeyDictionary

from flask import Blueprint, current_app, make_response, render_template, request, url_for
from flask_babel import gettext
from markupsafe import escape
from werkzeug.wrappers import Response

from broker.core.errors import (
    BadRequest,
    NotTheChosenSchool,
    StateExpired,
    UnknownSchool,
)
from broker.core.model import School
from broker.core.origins import written_origin
from broker.core.school_search import ABBREVIATIONS, TYPO_MIN_LENGTH, Found, SchoolDirectory
from broker.login.login_model import LoginRecord
from broker.web import metrics
from broker.web.browser import SCHOOL_COOKIE, browser_secret
from broker.web.content_policy import content_security_policy
from broker.web.errors import render_error, without_cookies
from broker.web.i18n import (
    LANGUAGE_PARAM,
    SUPPORTED_LANGUAGES,
    current_language,
    lang_switch_url,
    speak,
)
from broker.web.login_upstream import go_upstream, prepare_upstream, school_failed_page
from broker.web.no_store import no_store
from broker.web.school_retry import (
    LOGIN_FIELD,
    MAX_ID,
    SCHOOL_FIELD,
    SERVICE_FIELD,
    WENT_BACK,
    WHY_FIELD,
    sign_in_origin,
)
from broker.web.service_answers import answer_address, platform_site
from broker.web.static_urls import page_url
from broker.web.wiring import broker

log = logging.getLogger("broker.login")

discovery = Blueprint("discovery", __name__)

MAX_QUERY = 100
# How long the remembered school's prepared link is followed as it is (discovery.js): a SAML
# school may refuse an AuthnRequest issued long ago (Shibboleth's default message lifetime is
# three minutes, plus its clock skew). Later, or a second time (Back to a page the browser
# kept), a tap asks the broker for a fresh request by the form around the link.
PREPARED_FOR_SECONDS = 120
# The search rule's data for discovery.js: one list, the core's (school_search.py).
SEARCH_RULES = {"abbreviations": json.dumps(ABBREVIATIONS), "typo_min": TYPO_MIN_LENGTH}


def _login_id(value: str | None) -> str:
    if not value or len(value) > MAX_ID:
        raise BadRequest("discovery without a login", code="missing_login")
    return value


@discovery.route("/discovery", methods=["GET"])
def choose() -> Response:
    login_id = _login_id(request.args.get("login"))
    secret = browser_secret(request)
    record = broker().flow.load(secret, login_id)
    return discovery_page(record, request.args.get("q", ""))


def first_discovery_page(secret: bytes, record: LoginRecord, *, language: str | None) -> Response:
    """The page in the response to the service's own GET, where `record` is saved for the
    first time. With a remembered school, that school's request is made here and saved with
    the record in the same single write (login_upstream.prepare_upstream), and the "Continue with"
    button is a link straight to the school: a returning student's tap skips `POST /discovery`.
    Pages shown again later (`GET /discovery`: language, search, a login that arrived by POST)
    keep the POST form; the prepared URL is not stored, and a POST makes a fresh request."""
    b = broker()
    remembered = remembered_school(directory_for(record))
    prepared = prepare_upstream(secret, record, remembered.id) if remembered else None
    if prepared is None:
        b.flow.save_new(secret, record)
    return discovery_page(record, language=language, prepared=prepared)


def discovery_page(
    record: LoginRecord,
    query: str = "",
    *,
    language: str | None = None,
    prepared: str | None = None,
) -> Response:
    """The page where the student chooses a school for `record`'s login: at `GET /discovery`,
    and in the very response to a login that arrived by GET (login_upstream.to_discovery).

    Wherever it is shown, its links lead to `/discovery?login=…`: the language switch and the
    search must fetch this page again, never the address of the login's start, which would
    start another login. `language`: the login asked for one (OIDC `ui_locales`); the page
    speaks it and remembers it, as a `?lang=` would. `prepared`: the URL of the remembered
    school's request, made for this page (first_discovery_page): its button links there."""
    b = broker()
    if language:
        speak(language)
    service = b.view.service(record.request.service_id)
    service_name = service.name if service else str(gettext("your data page"))
    query = query[:MAX_QUERY].strip()
    directory = directory_for(record)
    found = directory.find(query)
    remembered = remembered_school(directory)
    page = _page_html(
        record.login_id,
        (service.id if service else "", service_name),
        query,
        found,
        remembered,
        directory,
        prepared if remembered else None,
        # A page of one board's schools is that login's own: rendered, never kept.
        keep=not record.request.school_choices,
    )
    response = make_response(page)
    no_store(response)
    # Choosing a school POSTs here and is redirected to the school's IdP; browsers apply the
    # page's form-action to that redirect, so it must name the shown schools' SSO origins (at
    # most SHOWN_AT_MOST and the remembered one, however large the federation).
    shown = [*found.schools, remembered] if remembered else found.schools
    origins = {o for o in map(sign_in_origin, shown) if o}
    # "Back to <platform>" is answered with a redirect there (an OIDC client's query mode).
    origins.add(written_origin(answer_address(record.request)) or "")
    origins.discard("")
    response.headers["Content-Security-Policy"] = content_security_policy(" ".join(sorted(origins)))
    return response


def remembered_school(directory: SchoolDirectory) -> School | None:
    """The school this browser's cookie remembers, if it is registered. From the directory,
    not the view: an unknown id in a cookie must not make the view look in the database
    again, as a miss there does."""
    return directory.get(request.cookies.get(SCHOOL_COOKIE, ""))


def _render(
    login_id: str,
    service: tuple[str, str],
    query: str,
    found: Found,
    remembered: School | None,
    prepared: str | None,
) -> str:
    """`service`: the login's service's id ("": none, the my-data page) and name."""
    here = page_url("discovery.choose")
    params = [("login", login_id)] + ([("q", query)] if query else [])
    return render_template(
        "discovery.html",
        service_id=service[0],
        service_name=service[1],
        schools=found.schools,
        found=found,
        remembered=remembered,
        prepared=prepared,
        prepared_for=PREPARED_FOR_SECONDS,
        action=page_url("discovery.chosen"),
        # "Back to <platform>" (back_to_platform.py), for a login that has one: the platform
        # hears the student went back without choosing (WENT_BACK).
        back_action=page_url("back_to_platform.tell") if service[0] else None,
        why_field=WHY_FIELD,
        went_back=WENT_BACK,
        search_url=here,
        login=login_id,
        query=query,
        search_rules=SEARCH_RULES,
        # The script's words for "also known as", on a page that lists a school with aliases.
        any_aliases=any(school.aliases for school in found.schools),
        lang_switch={code: lang_switch_url(code, here, params) for code in SUPPORTED_LANGUAGES},
        # The search form's answer (not the language switch's, which names the language).
        focus_results=bool(query) and LANGUAGE_PARAM not in request.args,
    )


# The page without a search is the same for every login of one service, language, mount point
# and remembered school, but for the login id (and the prepared link's URL): made once per
# worker and registry generation with a stand-in id, and the login's own id put in its place.
# The stand-in is random per worker, and, like every login id (`secrets.token_urlsafe`), of
# characters that HTML escaping and URL encoding leave as they are, so it stands exactly where
# the id would. The prepared URL has a stand-in of its own, replaced by the URL escaped as the
# template escapes it (markupsafe's `escape`, what autoescaping applies to an attribute).
_STAND_IN = secrets.token_urlsafe(18)
_URL_STAND_IN = secrets.token_urlsafe(18)
_PLAIN_LOGIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PAGES_AT_MOST = 256
_PAGES = "ketenbroker_discovery_pages"


def _page_html(
    login_id: str,
    service: tuple[str, str],
    query: str,
    found: Found,
    remembered: School | None,
    directory: SchoolDirectory,
    prepared: str | None = None,
    *,
    keep: bool = True,
) -> str:
    app = current_app
    if query or not keep or app.jinja_env.auto_reload or not _PLAIN_LOGIN_ID.fullmatch(login_id):
        # A search is the student's own (not worth keeping); a template that may change on disk
        # (debug) is rendered every time.
        return _render(login_id, service, query, found, remembered, prepared)
    held: tuple[SchoolDirectory, dict[tuple[str, ...], str]] | None = app.extensions.get(_PAGES)
    if held is None or held[0] is not directory:
        held = (directory, {})  # another generation: the schools or their names changed
        app.extensions[_PAGES] = held
    pages = held[1]
    key = (
        current_language(),
        request.script_root,
        *service,
        remembered.id if remembered else "",
        "link" if prepared else "",
    )
    page = pages.get(key)
    if page is None:
        link = _URL_STAND_IN if prepared else None
        page = _render(_STAND_IN, service, query, found, remembered, link)
        if len(pages) >= _PAGES_AT_MOST:
            pages.clear()
        pages[key] = page
    page = page.replace(_STAND_IN, login_id)
    # After the id: the URL carries the login's id itself (RelayState, state), never the stand-in.
    return page.replace(_URL_STAND_IN, str(escape(prepared))) if prepared else page


class SchoolReader(Protocol):
    """What a directory of schools is read from: a worker's registry view (discovery) or the
    registry itself (the operator's list, which must show a school just added)."""

    def generation(self) -> int: ...

    def schools(self) -> Iterable[School]: ...


# Each worker's directories of schools, built again only when their reader's generation moves on.
_DIRECTORIES: WeakKeyDictionary[SchoolReader, tuple[int, SchoolDirectory]] = WeakKeyDictionary()


def directory_for(record: LoginRecord) -> SchoolDirectory:
    """The schools `record`'s login may be at: every school, or the few of the IdP the service
    named (`LoginRequest.school_choices`, a board's), in a directory made for this page."""
    view = broker().view
    choices = record.request.school_choices
    if not choices:
        return school_directory(view)
    return SchoolDirectory(school for school in map(view.school, choices) if school is not None)


def school_directory(reader: SchoolReader) -> SchoolDirectory:
    """Every school `reader` holds, folded for searching once per generation of it (every
    change to a school bumps it, registry/changes.py), not once per page."""
    generation = reader.generation()
    held = _DIRECTORIES.get(reader)
    if held is None or held[0] != generation:
        # Read after the generation: a change in between makes the next page build it again.
        held = (generation, SchoolDirectory(reader.schools()))
        _DIRECTORIES[reader] = held
    return held[1]


@discovery.route("/discovery", methods=["POST"])
def chosen() -> Response:
    """The login id is unguessable and its record opens only with this browser's cookie, so it
    also does the work of a CSRF token here."""
    b = broker()
    login_id = _login_id(request.form.get(LOGIN_FIELD))
    school_id = request.form.get(SCHOOL_FIELD, "")
    secret = browser_secret(request)
    try:
        loaded = b.flow.load(secret, login_id)
    except StateExpired as expired:
        # The student paused on this page longer than a login lives: the page names the
        # platform the form says (its service field) and leads back to it.
        return expired_choice_page(expired, request.form.get(SERVICE_FIELD, ""))
    try:
        # Not saved here: go_upstream saves the record with the school in it (note_upstream),
        # one store write and one sealing fewer per login.
        record = b.flow.with_school(loaded, school_id)
    except UnknownSchool as gone:
        # The school left the registry since this page offered it: the login stays open, its
        # record as it was, with the ways on a school not set up gets.
        return school_failed_page(secret, loaded, gone, stored=True)
    # Not remembered here: only a school whose login succeeds is (remember_school). A school
    # that cannot serve gets its page there (login_upstream.school_failed_page).
    return go_upstream(secret, record)


def expired_choice_page(expired: StateExpired, service_id: str) -> Response:
    """A school chosen for a login that has expired meanwhile: "took too long", naming the
    learning platform (the form's service field; not secret, and only a registered platform's
    name and site are shown) with a link to its site, where a new login starts. Without a
    known platform, or from a browser that sent no cookies (errors.without_cookies), the
    general page."""
    known = 0 < len(service_id) <= MAX_ID
    service = broker().view.service(service_id) if known else None
    error = without_cookies(expired)
    if service is None or not service.approved or error is not expired:
        raise error
    metrics.refused_at(request.endpoint, error)
    return render_error(error, service_name=service.name, return_link=platform_site(service))


def choose_again_page(record: LoginRecord, refusal: NotTheChosenSchool) -> Response:
    """The student chose a school their account is not of, at an IdP several schools share
    (core/shared_idp.py): a 403 page that says so, with the way back to this login's school
    choice. No SSO session, no receipt, no remembered school is written. The SAML ACS leaves
    the login record as it was; the OIDC callback has taken it and saved it back without the
    refused request (`flow.reopen`). Either way choosing again (`POST /discovery`) makes a new
    request and an answer to the refused one is stale. (A passive request never reaches a
    school: it is answered NoPassive or login_required before, login_upstream.continue_login.)
    Counted as a setback (`ketenbroker_login_setbacks_total`: the login goes on), so a board
    IdP that sends no school shows on the dashboards."""
    metrics.refused_at(request.endpoint, refusal, login_open=True)
    # Which school's logins fail, for the operator (render_error's line has the error id):
    # the chosen school and the reason only, never the school the IdP named.
    log.warning("refused school=%s code=%s: choose again", record.school_id, refusal.code)
    return render_error(refusal, choose_again=url_for("discovery.choose", login=record.login_id))
