"""The my-data page: a student (or a parent beside them) signs in through their school and sees
which services received what, and when (their receipts), and what their school currently
releases to each service, with the school's privacy contact for questions and corrections.

The sign-in is an ordinary login with the broker itself as the service (`flow.MY_DATA`): any
school, either protocol, and an SSO session answers it too. What it yields is the student's
receipt subjects only (one per chain their receipts are in; core/receipts.py), kept sealed under
the browser's secret for ten minutes; the page is rebuilt from the receipts on every view and
shows nothing else.

A school laptop is shared: the view opens only in the browser that holds its cookie (one view
per browser, the newest), and its "Close my data" button deletes it and clears that cookie, so
the next student finds nothing of the previous one's behind an address in the history.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from babel import Locale
from flask import Blueprint, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from werkzeug.wrappers import Response

from broker.core.errors import MyDataExpired, StateExpired, StoreUnavailable, UnknownSchool
from broker.core.model import Service, UpstreamIdentity
from broker.core.receipts import Receipt
from broker.core.release import released_declarations
from broker.login.login_model import MY_DATA, LoginRequest
from broker.registry.errors import ServiceSwitchedOff
from broker.web.browser import (
    MY_DATA_COOKIE,
    SSO_COOKIE,
    browser_secret,
    clear_my_data_view,
    set_my_data_view,
)
from broker.web.labels import (
    attribute_label,
    attribute_labels,
    declared_purpose,
    shown_day,
)
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
    every school day reads one line ("6 times, last on 29 Nov 11:23"), not one row per login."""

    service_name: str
    attributes: list[str]  # labels in the page's language, in the catalogue's order
    count: int
    last: str  # the newest, as the page shows it

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
class CurrentRelease:
    service_name: str
    switched_off: bool
    released: list[tuple[str, str]]  # (attribute label, the purpose the publisher declared)


@my_data.route("/my-data", methods=["GET"])
def start() -> str:
    return render_template("my_data_start.html")


@my_data.route("/my-data/closed", methods=["GET"])
def closed() -> str:
    """Where "Close my data" lands: the page is gone; with an SSO session still standing in this
    browser, the way to end that too (the next student would otherwise sign in as this one)."""
    return render_template(
        "my_data_start.html", closed=True, session_stands=bool(request.cookies.get(SSO_COOKIE))
    )


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
    if not _is_open_view(view_id):
        # Closed, replaced by a newer view, or the browser was closed: an address in the
        # history opens nothing (no store read either).
        raise MyDataExpired("my-data view not this browser's open one")
    try:
        data = b.flow.sealed.get(secret, VIEW, view_id)
    except StateExpired:
        # Another browser's view (it does not open with this browser's key): the same page.
        data = None
    if data is None:
        raise MyDataExpired("my-data view absent or expired")
    if _session_ended(b, data.get(VIEW_SESSION)):
        raise MyDataExpired("my-data view of an SSO session that ended")
    school = b.view.school(str(data["school_id"]))
    if school is None:
        raise UnknownSchool("school left the registry")
    subjects = _view_subjects(data)
    receipts = b.receipts.for_subjects(subjects)
    # One look-up per service, not per receipt: a page can list hundreds of receipts.
    names = b.registry.service_names()
    page = render_template(
        "my_data.html",
        school=school,
        codes=_codes(names, subjects, receipts),
        groups=_groups(names, receipts, b.settings.zone),
        current=_current_releases(b, school.id, receipts),
        # An SSO session stands: the page offers "log out everywhere" (logout_routes.py).
        session_stands=bool(request.cookies.get(SSO_COOKIE)),
        view_id=view_id,
        view_field=VIEW_FIELD,
    )
    response = make_response(page)
    response.headers["Cache-Control"] = "no-store"
    return response


@my_data.route("/my-data/close", methods=["POST"])
def close() -> Response:
    """ "Close my data": the view is deleted and the browser forgets it. The form carries the
    view's id, which only its page shows (another site cannot close it), and it must be this
    browser's open view, as for showing it: anything else changes nothing and gets the page of
    a view that is no longer open (closed in another tab, replaced, or never this browser's). A
    view whose record expired closes all the same."""
    view_id = request.form.get(VIEW_FIELD, "")
    if not _is_open_view(view_id):
        raise MyDataExpired("my-data close of a view that is not this browser's open one")
    try:
        _broker().flow.sealed.delete(VIEW, view_id)
    except StoreUnavailable:
        # The cookie going is enough for this browser; the record ends at its expiry.
        log.warning("my-data view not deleted: store unavailable")
    log.info("my-data closed")
    response = redirect(url_for("my_data.closed"), 303)
    clear_my_data_view(response)
    response.headers["Cache-Control"] = "no-store"
    return response


def _is_open_view(view_id: str) -> bool:
    """`view_id` is this browser's open view (its my-data cookie). Ids are URL-safe ASCII
    (secrets.token_urlsafe); anything else is no view, and hmac.compare_digest takes only ASCII
    strings."""
    open_view = request.cookies.get(MY_DATA_COOKIE, "")
    if (
        not view_id
        or len(view_id) > MAX_VIEW_ID
        or not view_id.isascii()
        or not open_view.isascii()
    ):
        return False
    return hmac.compare_digest(open_view, view_id)


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
    names: dict[str, str], subjects: list[str], receipts: list[Receipt]
) -> list[StudentCode]:
    """A code per subject that found receipts, with the platforms of its receipts shown."""
    services: dict[str, set[str]] = {subject: set() for subject in subjects}
    for receipt in receipts:
        found = services.setdefault(receipt.content.subject, set())
        found.add(names.get(receipt.content.service_id, receipt.content.service_id))
    return [
        StudentCode(subject[:STUDENT_CODE_SHOWN], sorted(shown))
        for subject, shown in sorted(services.items(), key=lambda item: sorted(item[1]))
    ]


def _groups(names: dict[str, str], receipts: list[Receipt], zone: tzinfo) -> list[ReceiptGroup]:
    """The receipts (newest first) grouped by platform and released attributes, the group with
    the newest receipt first."""
    grouped: dict[tuple[str, frozenset[str]], list[Receipt]] = {}
    for receipt in receipts:
        key = (receipt.content.service_id, frozenset(receipt.content.attributes))
        grouped.setdefault(key, []).append(receipt)
    locale, now = get_locale() or Locale("nl"), time.time()
    return [
        ReceiptGroup(
            service_name=names.get(service_id, service_id),
            attributes=attribute_labels(attributes),
            count=len(members),
            last=shown_day(members[0].content.issued_at, zone, locale, now),
        )
        for (service_id, attributes), members in grouped.items()
    ]


def _current_releases(b: Broker, school_id: str, receipts: list[Receipt]) -> list[CurrentRelease]:
    """What the school releases today to every service the student used or the school set a
    policy for: the effective release, as the next login would compute it."""
    wanted = {r.content.service_id for r in receipts if r.content.school_id == school_id}
    wanted |= {policy.service_id for policy in b.registry.policies_for_school(school_id)}
    services = [s for s in (b.view.service(i) for i in sorted(wanted)) if s is not None]
    return [_current(b, school_id, service) for service in services]


def _current(b: Broker, school_id: str, service: Service) -> CurrentRelease:
    try:
        policy = b.registry.policy(school_id, service.id)
    except ServiceSwitchedOff:
        return CurrentRelease(service.name, True, [])
    released = [
        (str(attribute_label(d.attribute)), declared_purpose(d))
        for d in released_declarations(service, policy.attributes)
    ]
    return CurrentRelease(service.name, False, released)
