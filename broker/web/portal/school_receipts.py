"""The school's accounting pages: its receipts (filter, totals, CSV/JSON export; the filter in
POST bodies only, never in an address; a download only by POST, with the CSRF token), the overview
"who receives what from us" built from its current policies, the notice setting per service,
and the privacy contact students see on their data page.

A school sees only its own receipts (`school_id` from the URL is checked against the signed-in
administrator's tenant by `portal_page`). Receipts name no student: the `student` column is the
receipt subject, the same for one student's logins in one chain of platforms (another in each
chain, as the pseudonym is) and meaningless outside the broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext
from werkzeug.wrappers import Response as BaseResponse
from wtforms import SelectChoice

from broker.core.admins import AdminRole
from broker.core.endpoints import privacy_contact_link, privacy_contact_problem
from broker.core.model import School, UpstreamIdentity
from broker.core.receipt_export import csv_lines, json_lines
from broker.core.receipts import protocol_pairing
from broker.core.release import released_declarations, required_not_released
from broker.registry.errors import ServiceSwitchedOff
from broker.registry.receipts import ReceiptQuery
from broker.web.i18n import SUPPORTED_LANGUAGES, lang_switch_url
from broker.web.labels import attribute_label
from broker.web.logs import note_refusal_logged
from broker.web.metrics import student_looked_up
from broker.web.my_data import STUDENT_CODE_SHOWN
from broker.web.no_store import no_store
from broker.web.portal.rights import current_admin, portal_blueprint, portal_page, refuse_unless
from broker.web.portal.school_forms import (
    MAX_STUDENT_CODES,
    PrivacyContactForm,
    ReceiptFilterForm,
    StudentLookupForm,
    student_codes,
)
from broker.web.portal.student_lookup import identifier_wording, lookup_form, lookup_spent
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
school_receipts = portal_blueprint("portal_school_receipts", "/portal/school/<school_id>")
SCHOOL = AdminRole.SCHOOL
SHOWN = 200


# The filter's fields. They travel in POST bodies only (the filter form, the student codes in
# the list, the downloads), never in an address: a proxy that logs addresses would join one
# student's per-chain codes there (docs/security.md, "Receipts and the data page").
FILTERS = ("since", "until", "service", "attribute", "student")


def _query(school_id: str, form: ReceiptFilterForm) -> ReceiptQuery:
    """The filter as a query; the form has validated every field (dates exist)."""

    zone = broker().settings.zone

    def day(text: str | None, after: int = 0) -> int | None:
        """The start of that day (`after` days later) in the broker's time zone, the zone the
        page shows times in: a day is 23 or 25 hours when the clocks change."""
        if not text:
            return None
        start = date.fromisoformat(text) + timedelta(days=after)
        return int(datetime.combine(start, datetime.min.time(), zone).timestamp())

    return ReceiptQuery(
        school_id,
        since=day(form.since.data),
        # "Until 2026-11-28" includes that whole day.
        until=day(form.until.data, after=1),
        service_id=form.service.data or None,
        attribute=form.attribute.data or None,
        students=student_codes(form.student.data),
    )


def _kept(form: ReceiptFilterForm) -> dict[str, str]:
    """The filter's own fields, sent again by the downloads (nothing else is passed on)."""
    return {name: value for name in FILTERS if (value := form[name].data)}


def _filter_form(school_id: str, data: dict[str, str] | None = None) -> ReceiptFilterForm:
    """The filter with its lists: the one POSTed to this request, checked here (its errors on
    the form; a GET has none: every receipt), or `data` filled in (the lookup's codes)."""
    form = ReceiptFilterForm() if data is None else ReceiptFilterForm(formdata=None, data=data)
    services, attributes = _filter_lists(school_id)
    form.service.choices = [SelectChoice("", gettext("All services"))] + [
        SelectChoice(service_id, name) for service_id, name in services
    ]
    form.attribute.choices = [SelectChoice("", gettext("Any attribute"))] + [
        SelectChoice(a, str(attribute_label(a))) for a in attributes
    ]
    if data is None and request.method == "POST":
        form.validate()
    return form


def _filter_lists(school_id: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The services (id, name) and attributes the filter offers: the approved services and what
    they declare, as every school page shows, and whatever the school's own receipts name, so a
    removed or withdrawn service stays findable in its history. Never a service still in review
    (another publisher's plans are not the school's to see)."""
    b = broker()
    approved = b.registry.services()
    named = b.receipts.named(school_id)
    names = b.registry.service_names()  # removed services' too
    shown = {s.id for s in approved} | named.keys()
    attributes = {d.attribute for s in approved for d in s.declarations}
    attributes.update(*named.values())
    return sorted((i, names.get(i, i)) for i in shown), sorted(attributes)


def _chosen_filter(school: School) -> ReceiptFilterForm | tuple[str, int]:
    """The filter this request chose, or the page that refuses it: fields to correct, or a
    filter in the address (a bookmark or link from when the filter was a GET query)."""
    in_address = [name for name in FILTERS if request.args.get(name)]
    if in_address:
        # The field names only: the values are student codes and dates.
        note_refusal_logged()
        log.warning(
            "portal refused status=400 reason=filter_in_address fields=%s school=%s admin=%s",
            ",".join(in_address),
            school.id,
            current_admin().id,
        )
        # No list: every receipt under an address that asked for one student's would be a
        # silent surprise. The language switch leaves the address's query behind.
        switch = _language_switch(".receipts", school_id=school.id)
        return _lookup_page(school, lookup_form(school), 400, address_refused=True, switch=switch)
    form = _filter_form(school.id)
    if form.errors:
        return _lookup_page(school, lookup_form(school), 400, form=form)
    return form


def _language_switch(endpoint: str, **values: Any) -> dict[str, str]:
    """The language switch's links to `endpoint` without the request's query (the route's
    values are Any: url_for's own keywords are typed, `_external: bool`)."""
    path = url_for(endpoint, **values)
    return {code: lang_switch_url(code, path, ()) for code in SUPPORTED_LANGUAGES}


def _own_school(school_id: str) -> School:
    """The administrator's school (portal_page checked the tenant); it must still exist."""
    school = broker().registry.school(school_id)
    refuse_unless(school is not None)
    assert school is not None
    return school


@school_receipts.route("/receipts", methods=["GET", "POST"])
@portal_page(SCHOOL)
def receipts(school_id: str) -> tuple[str, int]:
    """Every receipt (GET), or those of the filter POSTed here: by the filter form, or by a
    student code in the list. Answered directly, so the filter never reaches an address (a
    reload asks to send it again)."""
    school = _own_school(school_id)
    chosen = _chosen_filter(school)
    if not isinstance(chosen, ReceiptFilterForm):
        return chosen
    return _listed(school, chosen)


def _listed(school: School, form: ReceiptFilterForm) -> tuple[str, int]:
    b = broker()
    query = _query(school.id, form)
    names = b.registry.service_names()
    found = b.receipts.find(query, limit=SHOWN)
    totals = sorted(b.receipts.totals(query).items(), key=lambda item: -item[1])
    page = render_template(
        "portal/school_receipts.html",
        school=school,
        form=form,
        receipts=found,
        shown=SHOWN,
        totals=[(names.get(service, service), count) for service, count in totals],
        names=names,
        pairing=protocol_pairing,
        kept=_kept(form),
        code_length=STUDENT_CODE_SHOWN,
        lookup=lookup_form(school, empty=True),
    )
    return page, 200


def _lookup_page(
    school: School,
    lookup: StudentLookupForm,
    status: int,
    *,
    nothing_found: bool = False,
    address_refused: bool = False,
    download_by_address: bool = False,
    limited_until: int | None = None,
    form: ReceiptFilterForm | None = None,
    switch: dict[str, str] | None = None,
) -> tuple[str, int]:
    """The page without a list: a filter or a lookup to correct, a lookup that found no
    receipts (then which identifier to use, and where students see their own), a filter in
    the address refused, a download by address refused, or a lookup over the account's limit
    (`limited_until`: when it may look up again). `form`: the filters, when the caller read
    them already; `switch`: the language switch's links, when the page's own address must not
    be repeated."""
    extra = {"lang_switch": switch} if switch else {}
    page = render_template(
        "portal/school_receipts.html",
        school=school,
        form=form or _filter_form(school.id, {}),
        lookup=lookup,
        nothing_found=nothing_found,
        address_refused=address_refused,
        download_by_address=download_by_address,
        limited_until=limited_until,
        identifier=identifier_wording(school),
        my_data_url=broker().settings.my_data_url,
        **extra,
    )
    return page, status


@school_receipts.route("/receipts/student", methods=["POST"])
@portal_page(SCHOOL)
def find_student(school_id: str) -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    """From a student's identifier to their codes, in memory: the identifier is neither kept,
    logged, nor put in a URL. A student has a code per chain of platforms (a receipt subject is
    per chain, core/receipts.py), so every chain a receipt can name is tried, and the old
    chain-independent subject too (COMPAT(receipt-subject-v1)); the list of the codes that
    found receipts here answers this POST, with the codes in the filter form (no redirect: its
    address would carry them). An identifier without receipts (a name, typically) is answered
    in place, saying which identifier to use. Each administrator's lookups are limited
    (student_lookup.py): one over the limit looks nothing up and is answered 429."""
    b = broker()
    school = _own_school(school_id)
    lookup = lookup_form(school)
    if not lookup.validate_on_submit():
        return _lookup_page(school, lookup, 400)
    admin_id = current_admin().id
    spent = lookup_spent(admin_id)
    if spent is not None:
        return _lookup_limited(school, lookup, admin_id, *spent)
    identifier = (lookup.identifier.data or "").strip()
    student = UpstreamIdentity(school.id, identifier, {"eck_id": (identifier,)})
    subjects = b.receipting.keys.subjects(school, student, b.registry.receipt_chains())
    present = b.receipts.present_subjects(subjects, school_id=school_id)
    codes = sorted({subject[:STUDENT_CODE_SHOWN] for subject in present})[:MAX_STUDENT_CODES]
    found = bool(codes)
    log.info(
        "portal receipts student lookup school=%s found=%s admin=%s",
        school_id,
        "yes" if found else "no",
        admin_id,
    )
    student_looked_up("found" if found else "not_found")
    if not found:
        return _lookup_page(school, lookup, 200, nothing_found=True)
    return _listed(school, _filter_form(school.id, {"student": " ".join(codes)}))


def _lookup_limited(
    school: School, lookup: StudentLookupForm, admin_id: int, window: str, until: int
) -> tuple[str, int, dict[str, str]]:
    """A lookup over the account's limit: nothing looked up, the page says from when again."""
    # The ids only: the identifier is neither logged nor kept.
    note_refusal_logged()
    log.warning(
        "portal refused status=429 reason=student_lookup_limit window=%s school=%s admin=%s",
        window,
        school.id,
        admin_id,
    )
    student_looked_up("limited")
    page, status = _lookup_page(school, lookup, 429, limited_until=until)
    return page, status, {"Retry-After": str(max(1, until - int(time.time())))}


@school_receipts.route("/receipts.<fmt>", methods=["GET", "POST"])
@portal_page(SCHOOL)
def export(
    school_id: str, fmt: str
) -> BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Every receipt of the filter the page's download buttons POST (with only the CSRF token:
    every receipt). A GET downloads nothing: a link on another site would make a signed-in
    administrator's browser save the file (a SameSite=Lax cookie goes along with a top-level
    GET), so an old download address answers the receipts page, saying where downloads start."""
    if fmt not in ("csv", "json"):
        abort(404)
    school = _own_school(school_id)
    if request.method == "GET":
        note_refusal_logged()
        log.warning(
            "portal refused status=405 reason=download_by_get school=%s admin=%s",
            school.id,
            current_admin().id,
        )
        switch = _language_switch(".export", school_id=school.id, fmt=fmt)
        page, status = _lookup_page(
            school, lookup_form(school), 405, download_by_address=True, switch=switch
        )
        return page, status, {"Allow": "POST"}
    chosen = _chosen_filter(school)
    if not isinstance(chosen, ReceiptFilterForm):
        # The receipts page, with the filter's errors or the refusal, as the page answers them.
        return chosen
    rows = broker().receipts.each(_query(school_id, chosen))
    lines: Iterator[str] = iter(csv_lines(rows) if fmt == "csv" else json_lines(rows))
    log.info(
        "portal receipts export school=%s format=%s admin=%s", school_id, fmt, current_admin().id
    )
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    response = Response(stream_with_context(lines), mimetype=mimetype)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="receipts-{school_id}-{stamp}.{fmt}"'
    )
    return no_store(response)


@school_receipts.route("/overview", methods=["GET"])
@portal_page(SCHOOL)
def overview(school_id: str) -> str:
    """Who receives what from us: every approved service and what the next login releases."""
    b = broker()
    school = _own_school(school_id)
    modes = b.receipts.notice_modes(school_id)
    choices = b.registry.choices_of_school(school_id)
    rows = []
    for service in b.registry.services():
        try:
            policy = b.registry.policy(school_id, service.id)
            released = released_declarations(service, policy.attributes)
            # A required attribute not released: the next login is refused, nothing released.
            refused = required_not_released(service, policy.attributes)
            row = (service, False, released, refused, policy.version, modes.get(service.id))
            rows.append(row)
        except ServiceSwitchedOff:
            # The version that switched it off, which the service's history names too.
            choice = choices.get(service.id)
            version = choice.version if choice else 0
            rows.append((service, True, (), (), version, modes.get(service.id)))
    form = PrivacyContactForm(data={"contact": school.privacy_contact})
    return render_template(
        "portal/school_overview.html",
        school=school,
        rows=rows,
        refusing=sum(1 for _, _, _, refused, _, _ in rows if refused),
        chain_names={chain.id: chain.name for chain in b.registry.chains()},
        contact_form=form,
    )


@school_receipts.route("/privacy-contact", methods=["POST"])
@portal_page(SCHOOL)
def privacy_contact(school_id: str) -> BaseResponse | tuple[str, int]:
    b = broker()
    school = b.registry.school(school_id)
    refuse_unless(school is not None)
    form = PrivacyContactForm()
    if form.validate_on_submit():
        # A bare address is stored, and shown back, as the mailto: link students get.
        contact = privacy_contact_link(form.contact.data or "")
        if privacy_contact_problem(contact) is None:
            b.registry.set_privacy_contact(school_id, contact)
            log.info("portal privacy contact school=%s admin=%s", school_id, current_admin().id)
            flash(gettext("Privacy contact saved."))
            return redirect(url_for(".overview", school_id=school_id), code=303)
        form.contact.errors = [_contact_error(contact)]
    return render_template("portal/school_privacy_contact.html", school=school, form=form), 400


def _contact_error(contact: str) -> str:
    if contact.startswith("mailto:"):
        message: str = gettext("Enter one e-mail address, such as privacy@school.nl.")
    else:
        message = gettext(
            "Enter an e-mail address (privacy@school.nl) or a web page starting with https://."
        )
    return message
