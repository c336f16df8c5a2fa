"""The school's accounting pages: its receipts (filter, totals, CSV/JSON export), the overview
"who receives what from us" built from its current policies, the notice setting per service,
and the privacy contact students see on their data page.

A school sees only its own receipts (`school_id` from the URL is checked against the signed-in
administrator's tenant by `portal_page`). Receipts name no student: the `student` column is the
receipt subject, the same for one student's logins in one chain of platforms (another in each
chain, as the pseudonym is) and meaningless outside the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

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
from broker.registry.errors import ServiceSwitchedOff
from broker.registry.receipts import ReceiptQuery
from broker.web.labels import attribute_label
from broker.web.my_data import STUDENT_CODE_SHOWN
from broker.web.portal.rights import current_admin, portal_blueprint, portal_page, refuse_unless
from broker.web.portal.school_forms import (
    MAX_STUDENT_CODES,
    NoticeForm,
    PrivacyContactForm,
    ReceiptFilterForm,
    StudentLookupForm,
    student_codes,
)
from broker.web.portal.student_lookup import identifier_wording, lookup_form
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
school_receipts = portal_blueprint("portal_school_receipts", "/portal/school/<school_id>")
SCHOOL = AdminRole.SCHOOL
SHOWN = 200


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


def _filters() -> dict[str, str]:
    """The page's own filter parameters, for the export links (nothing else is passed on)."""
    return {name: value for name in FILTERS if (value := request.args.get(name, ""))}


def _filter_form(school_id: str) -> ReceiptFilterForm:
    form = ReceiptFilterForm(request.args)
    services = broker().registry.all_services()
    form.service.choices = [SelectChoice("", gettext("All services"))] + [
        SelectChoice(s.id, s.name) for s in services
    ]
    attributes = sorted({d.attribute for s in services for d in s.declarations})
    form.attribute.choices = [SelectChoice("", gettext("Any attribute"))] + [
        SelectChoice(a, str(attribute_label(a))) for a in attributes
    ]
    form.validate()
    return form


def _own_school(school_id: str) -> School:
    """The administrator's school (portal_page checked the tenant); it must still exist."""
    school = broker().registry.school(school_id)
    refuse_unless(school is not None)
    assert school is not None
    return school


@school_receipts.route("/receipts", methods=["GET"])
@portal_page(SCHOOL)
def receipts(school_id: str) -> tuple[str, int]:
    b = broker()
    school = _own_school(school_id)
    form = _filter_form(school_id)
    if form.errors:
        return _lookup_page(school, lookup_form(school), 400, form=form)
    query = _query(school_id, form)
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
        export_args=_filters(),
        code_length=STUDENT_CODE_SHOWN,
        lookup=lookup_form(school),
    )
    return page, 200


def _lookup_page(
    school: School,
    lookup: StudentLookupForm,
    status: int,
    *,
    nothing_found: bool = False,
    form: ReceiptFilterForm | None = None,
) -> tuple[str, int]:
    """The page without a list: a filter or a lookup to correct, or a lookup that found no
    receipts (then which identifier to use, and where students see their own). `form`: the
    filters, when the caller read them already."""
    page = render_template(
        "portal/school_receipts.html",
        school=school,
        form=form or _filter_form(school.id),
        lookup=lookup,
        nothing_found=nothing_found,
        identifier=identifier_wording(school),
        my_data_url=broker().settings.my_data_url,
    )
    return page, status


@school_receipts.route("/receipts/student", methods=["POST"])
@portal_page(SCHOOL)
def find_student(school_id: str) -> BaseResponse | tuple[str, int]:
    """From a student's identifier to their codes, in memory: the identifier is neither kept,
    logged, nor put in a URL; the redirect carries only the codes. A student has a code per
    chain of platforms (a receipt subject is per chain, core/receipts.py), so every chain a
    receipt can name is tried, and the old chain-independent subject too
    (COMPAT(receipt-subject-v1)); the redirect carries the codes that found receipts here. An
    identifier without receipts (a name, typically) is answered in place, saying which
    identifier to use."""
    b = broker()
    school = _own_school(school_id)
    lookup = lookup_form(school)
    if not lookup.validate_on_submit():
        return _lookup_page(school, lookup, 400)
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
        current_admin().id,
    )
    if not found:
        return _lookup_page(school, lookup, 200, nothing_found=True)
    return redirect(url_for(".receipts", school_id=school_id, student=" ".join(codes)), code=303)


@school_receipts.route("/receipts.<fmt>", methods=["GET"])
@portal_page(SCHOOL)
def export(school_id: str, fmt: str) -> BaseResponse | tuple[str, int]:
    if fmt not in ("csv", "json"):
        abort(404)
    form = _filter_form(school_id)
    if form.errors:
        # The receipts page with the filters' errors, as the page itself answers them.
        school = _own_school(school_id)
        return _lookup_page(school, lookup_form(school), 400, form=form)
    rows = broker().receipts.each(_query(school_id, form))
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
    response.headers["Cache-Control"] = "no-store"
    return response


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
            released = [d for d in service.declarations if d.attribute in policy.attributes]
            rows.append((service, False, released, policy.version, modes.get(service.id)))
        except ServiceSwitchedOff:
            # The version that switched it off, which the service's history names too.
            choice = choices.get(service.id)
            version = choice.version if choice else 0
            rows.append((service, True, [], version, modes.get(service.id)))
    form = PrivacyContactForm(data={"contact": school.privacy_contact})
    return render_template(
        "portal/school_overview.html",
        school=school,
        rows=rows,
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


@school_receipts.route("/services/<service_id>/notice", methods=["POST"])
@portal_page(SCHOOL)
def notice_mode(school_id: str, service_id: str) -> BaseResponse:
    b = broker()
    refuse_unless(b.registry.service(service_id) is not None)
    form = NoticeForm()
    if not form.validate_on_submit():
        abort(400)
    b.receipts.set_notice_mode(school_id, service_id, form.mode.data)
    log.info(
        "portal notice school=%s service=%s mode=%s admin=%s",
        school_id,
        service_id,
        form.mode.data,
        current_admin().id,
    )
    flash(gettext("Notice setting saved."))
    return redirect(
        url_for("portal_school.service", school_id=school_id, service_id=service_id), code=303
    )
