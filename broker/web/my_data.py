"""The my-data page: a student (or a parent beside them) signs in through their school and sees
which services received what, how often and when (their receipts, counted in the database: a
card per platform, those of long ago folded under "Earlier"), and what their school currently
releases to each service, with the school's privacy contact for questions and corrections.

The sign-in is an ordinary login with the broker itself as the service (`flow.MY_DATA`): any
school, either protocol, and an SSO session answers it too. What it yields is the student's
receipt subjects only (one per chain their receipts are in; core/receipts.py), kept sealed under
the browser's secret for ten minutes; the page is rebuilt from the receipts on every view and
shows nothing else.

A school laptop is shared: the view opens only in the browser that holds its cookie (one view
per browser, the newest), and its "Close my data" button deletes it and marks that cookie
closed, so the next student finds nothing of the previous one's behind an address in the
history. A view an SSO session opened closes with "Close and log out" instead: the student's
"log out everywhere" too, or the closed page's "Sign in" would reopen it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from babel import Locale
from flask import Blueprint, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from werkzeug.wrappers import Response

from broker.core.errors import MyDataExpired, StateExpired, StoreUnavailable, UnknownSchool
from broker.core.model import Service, UpstreamIdentity
from broker.core.receipts import ReceiptHistory
from broker.core.release import released_declarations
from broker.login.login_model import MY_DATA, LoginRequest
from broker.registry.errors import ServiceSwitchedOff
from broker.web.browser import (
    MY_DATA_COOKIE,
    SSO_COOKIE,
    browser_secret,
    set_my_data_view,
)
from broker.web.labels import labelled_purposes, shown_day
from broker.web.logout_routes import student_logout
from broker.web.no_store import no_store
from broker.web.wiring import Broker

log = logging.getLogger("broker.my_data")
my_data = Blueprint("my_data", __name__)

VIEW = "my-data"
# Long enough to read the page with a parent; the shorter, the sooner a page left open on a
# shared laptop (not closed, the browser not closed) stops showing. Signing in again is one
# tap while the SSO session stands.
VIEW_SECONDS = 10 * 60
# The close form's field: the view's id (unguessable, on the page only: it is the form's token).
VIEW_FIELD = "view"
# The close form's field that asks to log out too ("Close and log out"), with the logout
# form's token (logout_routes.student_logout, whose run it starts).
LOG_OUT_FIELD = "log_out"
# The my-data cookie's value once its view was closed here: the view's address, from the
# history (the back button), then says calmly that the data is closed (`view`), not that
# something went wrong. Never a view id (those are 24 characters).
CLOSED_MARK = "closed"
# A platform whose newest receipt is older than this is folded under "Earlier": the list a
# student reads first on a phone is of the platforms of this school year's last months.
RECENT_SECONDS = 92 * 24 * 3600
MAILTO = "mailto:"
# The view's payload names the SSO session that answered the sign-in by its SHA-256 only.
VIEW_SESSION = "session"
MAX_VIEW_ID = 64
# The start of a receipt subject a student can quote to their school (the school's portal
# finds receipts by it); 16 hex characters are 64 bits: no two students share one. A student
# has one per chain of platforms (a subject is per chain, core/receipts.py).
STUDENT_CODE_SHOWN = 16


def _broker() -> Broker:
    value: Broker = current_app.extensions["ketenbroker"]
    return value


@dataclass(frozen=True)
class ReceiptGroup:
    """The receipts of one platform with one set of attributes: a student who signed in there
    every school day reads one line ("15 times, last on 29 Nov 11:23"), not one per login."""

    released: list[tuple[str, str]]  # (label, why the platform needs it), the catalogue's order
    count: int
    first: str  # the oldest and the newest, as the page shows them
    last: str

    @property
    def summary(self) -> str:
        text: str = ngettext(
            "%(num)d time, on %(when)s",
            "%(num)d times, last on %(when)s",
            self.count,
            when=self.last,
        )
        return text


@dataclass(frozen=True)
class PlatformCard:
    """One platform on the my-data page: what it got (a group per set of attributes, the
    newest first), how often, the first and the last time, and why."""

    service_name: str
    groups: list[ReceiptGroup]
    earlier: bool  # its newest receipt is older than RECENT_SECONDS: under "Earlier"


@dataclass(frozen=True)
class CurrentRelease:
    service_name: str
    switched_off: bool
    released: list[tuple[str, str]]  # (attribute label, the purpose the publisher declared)


@my_data.route("/my-data", methods=["GET"])
def start() -> str:
    return render_template("my_data_start.html")


@my_data.route("/my-data/closed", methods=["GET"])
def closed() -> Response:
    """Where "Close my data" lands: the page is gone; with an SSO session still standing in this
    browser, the way to end that too (the next student would otherwise sign in as this one)."""
    page = render_template(
        "my_data_start.html", closed=True, session_stands=_session_stands(_broker())
    )
    return no_store(make_response(page))


@my_data.route("/my-data/sign-in", methods=["GET"])
def sign_in() -> Response:
    # Imported here: login_finish (below login_upstream) imports this module for
    # `my_data_signed_in`.
    from broker.web.login_upstream import continue_login

    b = _broker()
    secret = browser_secret(request)
    record = b.flow.start(secret, LoginRequest(MY_DATA), save=False)
    return continue_login(secret, record, request.cookies.get(SSO_COOKIE))


def my_data_signed_in(identity: UpstreamIdentity, sso_token: str | None = None) -> Response:
    """The school answered a my-data sign-in: keep the receipt subject, show the page.
    `sso_token`: the SSO session that answered it, if one did; the view then lasts only while
    that session stands in this browser (`_session_ended`)."""
    b = _broker()
    school = b.view.school(identity.school_id)
    if school is None:
        raise UnknownSchool("school left the registry mid-login")
    # The student's subject in every chain a receipt can name, and the old one
    # (COMPAT(receipt-subject-v1)); the view keeps those some receipt carries: a few, not one
    # per registered service. A receipt in a chain new to the student, written in the quarter
    # of an hour the view lasts, shows after the next sign-in.
    subjects = b.receipting.keys.subjects(school, identity, b.registry.receipt_chains())
    secret = browser_secret(request)
    view_id = secrets.token_urlsafe(18)
    payload: dict[str, Any] = {
        "subjects": b.receipts.present_subjects(subjects),
        "school_id": school.id,
        # For a worker of the release before per-chain subjects during a rolling upgrade, which
        # reads this one key (else a 500 there): the old subject. Remove with COMPAT(v1).
        "subject": b.receipting.keys.legacy_subject(school, identity),
    }
    if sso_token:
        payload[VIEW_SESSION] = _digest(sso_token)
    b.flow.sealed.put(secret, VIEW, view_id, payload, VIEW_SECONDS)
    log.info("my-data signed in school=%s", school.id)
    response = redirect(url_for("my_data.view", view_id=view_id), 303)
    set_my_data_view(response, view_id)
    return response


@my_data.route("/my-data/view/<view_id>", methods=["GET"])
def view(view_id: str) -> Response:
    b = _broker()
    secret = browser_secret(request)
    if request.cookies.get(MY_DATA_COOKIE) == CLOSED_MARK:
        # Closed here ("Close my data"), then the back button: no data, and no alarm either.
        log.info("my-data view asked after its close")
        return no_store(make_response(render_template("my_data_start.html", gone=True)))
    if not _is_open_view(view_id):
        # Replaced by a newer view, or the browser was closed: an address in the history
        # opens nothing (no store read either).
        raise MyDataExpired("my-data view not this browser's open one")
    try:
        data = b.flow.sealed.get(secret, VIEW, view_id)
    except StateExpired:
        # Another browser's view (it does not open with this browser's key): the same page.
        data = None
    if data is None:
        raise MyDataExpired("my-data view absent or expired")
    opened_by = data.get(VIEW_SESSION)
    if _session_ended(b, opened_by):
        raise MyDataExpired("my-data view of an SSO session that ended")
    school = b.view.school(str(data["school_id"]))
    if school is None:
        raise UnknownSchool("school left the registry")
    subjects = _view_subjects(data)
    # Counted in the database (per subject, school, platform and attributes): every platform
    # and the true counts, however many receipts (registry/receipts.py `history`).
    history = b.receipts.history(subjects)
    # One look-up per service, not per receipt.
    names = b.registry.service_names()
    cards = _cards(b, names, history)
    page = render_template(
        "my_data.html",
        school=school,
        codes=_codes(names, subjects, history),
        counted_since=_counted_since(b, history),
        recent=[card for card in cards if not card.earlier],
        earlier=[card for card in cards if card.earlier],
        current=_current_releases(b, school.id, history),
        # An SSO session stands (the one that opened the view, checked just now, or another
        # since): the main button closes the data and logs out.
        session_stands=opened_by is not None or _session_stands(b),
        contact_address=_contact_address(school.privacy_contact),
        contact_is_mail=school.privacy_contact.startswith(MAILTO),
        view_id=view_id,
        view_field=VIEW_FIELD,
        log_out_field=LOG_OUT_FIELD,
    )
    return no_store(make_response(page))


@my_data.route("/my-data/close", methods=["POST"])
def close() -> Response:
    """ "Close my data": the view is deleted and the browser forgets it (its cookie then marks
    it closed, `CLOSED_MARK`). The form carries the view's id, which only its page shows
    (another site cannot close it), and it must be this browser's open view, as for showing it:
    a plain close of anything else changes nothing and gets the page of a view that is no longer
    open (closed in another tab, replaced, or never this browser's). A view whose record expired
    closes all the same.

    "Close and log out" (the page's main button while an SSO session stands) is the student's
    own "log out everywhere" as well (logout_routes.student_logout, with the logout form's
    token the page carries), so that the next student at a shared laptop meets the school's
    sign-in, not this one's data. It runs first: a token not made for this browser is refused
    there (400) before anything closes. Pressed in any tab, an older one too (its view replaced
    by a newer one in another tab), it logs out and closes the view this browser's cookie names:
    that press must never leave the session standing behind a "This page has expired"."""
    view_id = request.form.get(VIEW_FIELD, "")
    log_out = bool(request.form.get(LOG_OUT_FIELD))
    cookie = request.cookies.get(MY_DATA_COOKIE, "")
    # A second press (no JavaScript, or the back button to the page): closed already, it goes
    # where the first went (the logout then finds its run, logout_start.py), not to an error.
    again = cookie == CLOSED_MARK
    older_tab = not again and not _is_open_view(view_id)
    if older_tab and not log_out:
        raise MyDataExpired("my-data close of a view that is not this browser's open one")
    response = student_logout() if log_out else redirect(url_for("my_data.closed"), 303)
    if not again and _is_view_id(cookie):
        # The open view, whichever tab's form this is (the cookie's, never the form's id).
        try:
            _broker().flow.sealed.delete(VIEW, cookie)
        except StoreUnavailable:
            # The cookie going is enough for this browser; the record ends at its expiry.
            log.warning("my-data view not deleted: store unavailable")
    log.info(
        "my-data closed log_out=%s again=%s older_tab=%s",
        "yes" if log_out else "no",
        again,
        older_tab,
    )
    set_my_data_view(response, CLOSED_MARK)
    return no_store(response)


def _is_open_view(view_id: str) -> bool:
    """`view_id` is this browser's open view (its my-data cookie). Ids are URL-safe ASCII
    (secrets.token_urlsafe); anything else is no view, and hmac.compare_digest takes only ASCII
    strings."""
    open_view = request.cookies.get(MY_DATA_COOKIE, "")
    if not _is_view_id(open_view) or not _is_view_id(view_id):
        return False
    return hmac.compare_digest(open_view, view_id)


def _is_view_id(value: str) -> bool:
    """Could be a view's id: neither empty nor `CLOSED_MARK`, short, ASCII."""
    return bool(value) and value != CLOSED_MARK and len(value) <= MAX_VIEW_ID and value.isascii()


def _contact_address(contact: str) -> str:
    """The school's privacy contact as a parent reads and copies it: the e-mail address of a
    `mailto:` URL (without a subject or the like), or the https:// page's address."""
    if contact.startswith(MAILTO):
        return unquote(contact.removeprefix(MAILTO).partition("?")[0])
    return contact


def _session_stands(b: Broker) -> bool:
    """A live SSO session in this browser: signing in again would answer at once, as the
    student whose data was shown (the pages then say so, and offer to log out)."""
    token = request.cookies.get(SSO_COOKIE)
    if not token:
        return False
    try:
        return b.flow.session(token) is not None
    except StoreUnavailable:
        # Cannot tell: the cautious words (log out too), not a page that fails.
        log.warning("my-data: SSO session not read: store unavailable")
        return True


def _digest(sso_token: str) -> str:
    return hashlib.sha256(sso_token.encode()).hexdigest()


def _session_ended(b: Broker, session: object) -> bool:
    """A view opened from an SSO session outlives neither that session (log out everywhere, its
    end) nor the browser's cookie of it: on a shared school laptop the next student must not
    find the previous one's page in the history. A view of a fresh school login has none."""
    if session is None:
        return False
    token = request.cookies.get(SSO_COOKIE)
    return not token or _digest(token) != session or b.flow.session(token) is None


def _view_subjects(data: dict[str, Any]) -> list[str]:
    """The subjects a view was opened for. A view sealed by the release before per-chain
    subjects held one `subject` (views last 15 minutes; this read can go with the next
    release)."""
    subjects = data.get("subjects")
    if subjects is None:
        return [str(data["subject"])]
    return [str(subject) for subject in subjects]


@dataclass(frozen=True)
class StudentCode:
    """A code the student can quote to their school, and the platforms whose receipts carry it:
    one per chain of platforms that share a pseudonym (receipts from before 2026-11-30 share
    one older code, COMPAT(receipt-subject-v1))."""

    code: str
    services: list[str]


def _codes(
    names: dict[str, str], subjects: list[str], history: list[ReceiptHistory]
) -> list[StudentCode]:
    """A code per subject that found receipts, with the platforms of its receipts shown."""
    services: dict[str, set[str]] = {subject: set() for subject in subjects}
    for group in history:
        found = services.setdefault(group.subject, set())
        found.add(names.get(group.service_id, group.service_id))
    return [
        StudentCode(subject[:STUDENT_CODE_SHOWN], sorted(shown))
        for subject, shown in sorted(services.items(), key=lambda item: sorted(item[1]))
    ]


def _cards(b: Broker, names: dict[str, str], history: list[ReceiptHistory]) -> list[PlatformCard]:
    """A card per platform, the one used last first; in it a group per set of attributes, the
    newest first (a receipt's subject and school do not part a platform's card: the student
    reads what the platform got). The purposes are those the platform declares now."""
    zone, locale, now = b.settings.zone, get_locale() or Locale("nl"), time.time()
    # Per platform and attributes: (count, first, last). Dicts keep the order of insertion, and
    # `history` comes the newest first: so do the platforms.
    merged: dict[str, dict[tuple[str, ...], tuple[int, int, int]]] = {}
    for group in history:
        groups = merged.setdefault(group.service_id, {})
        was = groups.get(group.attributes)
        groups[group.attributes] = (
            (group.count, group.first, group.last)
            if was is None
            else (was[0] + group.count, min(was[1], group.first), max(was[2], group.last))
        )
    cards = []
    for service_id, groups in merged.items():
        service = b.view.service(service_id)
        shown = sorted(groups.items(), key=lambda item: -item[1][2])
        cards.append(
            PlatformCard(
                service_name=names.get(service_id, service_id),
                groups=[
                    ReceiptGroup(
                        released=labelled_purposes(service, attributes),
                        count=count,
                        first=shown_day(first, zone, locale, now),
                        last=shown_day(last, zone, locale, now),
                    )
                    for attributes, (count, first, last) in shown
                ],
                earlier=now - shown[0][1][2] > RECENT_SECONDS,
            )
        )
    return cards


def _counted_since(b: Broker, history: list[ReceiptHistory]) -> str | None:
    """The oldest receipt the student still has: the counts are of the receipts kept, and
    `receipts prune` removes those older than `receipts.retention_days` (a year by default), so
    the page says since when it counts, not "the first time"."""
    if not history:
        return None
    first = min(group.first for group in history)
    return shown_day(first, b.settings.zone, get_locale() or Locale("nl"), time.time())


def _current_releases(
    b: Broker, school_id: str, history: list[ReceiptHistory]
) -> list[CurrentRelease]:
    """What the school releases today to every service the student used or the school set a
    policy for: the effective release, as the next login would compute it."""
    wanted = {group.service_id for group in history if group.school_id == school_id}
    wanted |= {policy.service_id for policy in b.registry.policies_for_school(school_id)}
    services = [s for s in (b.view.service(i) for i in sorted(wanted)) if s is not None]
    return [_current(b, school_id, service) for service in services]


def _current(b: Broker, school_id: str, service: Service) -> CurrentRelease:
    try:
        policy = b.registry.policy(school_id, service.id)
    except ServiceSwitchedOff:
        return CurrentRelease(service.name, True, [])
    chosen = [d.attribute for d in released_declarations(service, policy.attributes)]
    return CurrentRelease(service.name, False, labelled_purposes(service, chosen))
