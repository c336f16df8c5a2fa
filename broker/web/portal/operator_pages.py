"""The operator's portal: see what needs their attention (read only), approve services and put
them in chains, define chains, onboard schools and change their name, town and other names,
invite administrators of schools and publishers, and remove one administrator (a colleague who
left)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from broker.accounts.tokens import new_token, token_hash
from broker.core.admins import AdminRole, Invitation, Publisher
from broker.core.attention import SHOWN
from broker.core.chain_move import MoveRefused
from broker.core.errors import BadRequest, UnknownSchool
from broker.core.model import Chain, School
from broker.operations.attention import gather_attention_report
from broker.registry.errors import ClientChanged, InvitationOpen, LastOperator, UnknownAdmin
from broker.web.attention_words import KIND_WORDS, advice_of, reason_words
from broker.web.labels import shown_time
from broker.web.logs import note_refusal_logged
from broker.web.metadata_metrics import attention_memo
from broker.web.portal.account_forms import InviteForm
from broker.web.portal.authors import recorded_author
from broker.web.portal.operator_forms import (
    ChainForm,
    PublisherForm,
    SchoolDetailsForm,
    SchoolForm,
)
from broker.web.portal.operator_lists import (
    NO_CHAIN,
    asked_page,
    back_to_services,
    chain_form,
    school_page,
    services_page,
)
from broker.web.portal.rights import (
    current_admin,
    portal_blueprint,
    portal_page,
    stale_page_refused,
)
from broker.web.portal.uploads import fetched_url, idp_metadata
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
operator_pages = portal_blueprint("portal_operator", "/portal/operator")
OPERATOR = AdminRole.OPERATOR
INVITATION_DAYS = 7
# An id beyond `admins.id`'s INTEGER is no route's (404), never a query PostgreSQL refuses.
ADMIN_ID = "<int(min=1, max=2147483647):admin_id>"
# Entries the page lists per kind; the count says how many there are in all.
ATTENTION_SHOWN: int | None = SHOWN


@operator_pages.route("/attention", methods=["GET"])
@portal_page(OPERATOR)
def attention() -> str:
    """What needs the operator's attention (core/attention.py), as `registry problems` says
    it; links to the pages where each entry is mended. Changes nothing."""
    b = broker()
    # The app's memo: the registry's facts of its generation, and the parsed copies.
    report = gather_attention_report(
        b.settings, b.registry, datetime.now(UTC), attention_memo(), shown=ATTENTION_SHOWN
    )
    return render_template(
        "portal/operator_attention.html",
        report=report,
        kinds=KIND_WORDS,
        reason_words=reason_words,
        advice_of=advice_of,
    )


@operator_pages.route("/services", methods=["GET"])
@portal_page(OPERATOR)
def services() -> tuple[str, int]:
    asked = asked_page("services")
    return services_page(asked), 400 if asked.refused else 200


@operator_pages.route("/services/<service_id>/approve", methods=["POST"])
@portal_page(OPERATOR)
def approve(service_id: str) -> Response | tuple[str, int]:
    asked = asked_page("services")
    if asked.refused:  # a form's address no page makes: nothing is done
        return services_page(asked), 400
    try:
        # The fingerprint of the addresses the page showed, compared under the service row's
        # lock: a publisher's save since (or a form from elsewhere) approves nothing, so the
        # operator approves the addresses they saw, never others.
        broker().registry.approve_service(service_id, addresses=request.form.get("addresses", ""))
    except ClientChanged:
        stale_page_refused("addresses_changed", service=service_id)
        flash(
            gettext(
                "The addresses of %(service)s changed after this page was shown. Check them "
                "and approve again.",
                service=service_id,
            ),
            "error",
        )
        return services_page(asked), 400
    log.info("portal service approved service=%s admin=%s", service_id, current_admin().id)
    flash(gettext("Service %(service)s is approved.", service=service_id))
    return back_to_services(service_id, asked)


@operator_pages.route("/services/<service_id>/chain", methods=["POST"])
@portal_page(OPERATOR)
def put_in_chain(service_id: str) -> Response | tuple[str, int]:
    asked = asked_page("services")
    if asked.refused:  # a form's address no page makes: nothing is done
        return services_page(asked), 400
    form = chain_form(shown=False)
    if not form.validate_on_submit():
        # The list again with the reason and a 400, not a redirect: nothing was saved.
        if form.window.errors:
            flash(gettext("A migration window is 1 to 366 days, or empty for none."), "error")
        else:
            flash(gettext("Choose one of the listed chains."), "error")
        return services_page(asked), 400
    chain_id = None if form.chain.data == NO_CHAIN else form.chain.data
    window = form.window.data
    try:
        move = broker().registry.set_service_chain(
            service_id,
            chain_id,
            window_days=window,
            keys=broker().flow.keys.key_set() if window is not None else None,
            changed_by=f"portal:{current_admin().id}",
        )
    except MoveRefused as refused:
        # Which window stands in the way is in the log line (ids and dates only).
        log.warning(
            "portal refused status=400 reason=%s service=%s admin=%s detail=%s",
            refused.code,
            service_id,
            current_admin().id,
            refused.detail,
        )
        note_refusal_logged()
        flash(gettext(refused.public_message), "error")
        return services_page(asked), 400
    log.info(
        "portal service chain service=%s chain=%s window_days=%s admin=%s",
        service_id,
        chain_id,
        window,
        current_admin().id,
    )
    if move is None:
        flash(
            gettext(
                "Service %(service)s moved, without a migration window: its platform sees its"
                " students as new students.",
                service=service_id,
            )
        )
    else:
        flash(
            gettext(
                "Service %(service)s moved. Until %(end)s it also receives the pseudonym it"
                " used to receive, as the previous pseudonym.",
                service=service_id,
                end=shown_time(move.window_ends, broker().settings.zone),
            )
        )
    return back_to_services(service_id, asked)


@operator_pages.route("/chains", methods=["GET", "POST"])
@portal_page(OPERATOR)
def chains() -> Response | tuple[str, int]:
    form = ChainForm()
    registry = broker().registry
    if form.validate_on_submit():
        try:
            registry.add_chain(Chain(form.chain_id.data or "", form.name.data or ""))
        except BadRequest as error:
            form.chain_id.errors = [gettext(error.public_message)]
        else:
            flash(gettext("Chain %(chain)s added.", chain=form.chain_id.data))
            return redirect(url_for(".chains"), code=303)
    status = 400 if form.is_submitted() else 200
    return render_template(
        "portal/operator_chains.html", form=form, chains=registry.chains()
    ), status


@operator_pages.route("/schools", methods=["GET", "POST"])
@portal_page(OPERATOR)
def schools() -> Response | tuple[str, int]:
    form = SchoolForm()
    registry = broker().registry
    if form.validate_on_submit():
        entity_id, xml, given = idp_metadata(form.metadata_file, form.metadata_url)
        school_id, name = form.school_id.data or "", form.name.data or ""
        town, aliases = form.town.data or "", form.alias_list()
        if entity_id is not None:
            school = School(school_id, name, entity_id, town=town, aliases=aliases)
            try:
                registry.add_school(school, xml, fetched_url(given, form.metadata_url))
            except BadRequest as error:
                given.errors = [f"{gettext(error.public_message)} ({error.detail})"]
            else:
                log.info("portal school added school=%s admin=%s", school_id, current_admin().id)
                flash(gettext("School %(school)s added.", school=school_id))
                return redirect(url_for(".schools"), code=303)
    asked = asked_page("schools")
    status = 400 if form.is_submitted() or asked.refused else 200
    page = school_page(registry, asked)
    return render_template("portal/operator_schools.html", form=form, page=page), status


@operator_pages.route("/schools/<school_id>", methods=["GET", "POST"])
@portal_page(OPERATOR)
def school_details(school_id: str) -> Response | tuple[str, int]:
    """A school's name, town and other names as students see them (and search them) when
    choosing their school."""
    registry = broker().registry
    school = registry.school(school_id)
    if school is None:
        raise UnknownSchool(f"no school with id {school_id!r}")
    form = SchoolDetailsForm(
        data={"name": school.name, "town": school.town, "aliases": "\n".join(school.aliases)}
    )
    if form.validate_on_submit():
        name, town, aliases = form.name.data or "", form.town.data or "", form.alias_list()
        changed = [
            field
            for field, old, new in (
                ("name", school.name, name),
                ("town", school.town, town),
                ("aliases", school.aliases, aliases),
            )
            if old != new
        ]
        if changed:  # one write, one generation bump (every worker's discovery page reloads)
            registry.set_school_details(school_id, name, town, aliases)
        # Which fields, never their values.
        log.info(
            "portal school details school=%s changed=%s admin=%s",
            school_id,
            ",".join(changed) or "-",
            current_admin().id,
        )
        flash(gettext("School %(school)s saved.", school=school_id))
        return redirect(url_for(".schools"), code=303)
    status = 400 if form.is_submitted() else 200
    return render_template("portal/operator_school.html", form=form, school=school), status


def _admins_page(invite: InviteForm, publisher: PublisherForm, link: str | None = None) -> str:
    accounts = broker().registry.accounts
    return render_template(
        "portal/operator_admins.html",
        invite=invite,
        publisher=publisher,
        admins=accounts.admins(),
        invitations=accounts.open_invitations(),
        publishers=accounts.publishers(),
        invite_link=link,
    )


@operator_pages.route("/admins", methods=["GET"])
@portal_page(OPERATOR)
def admins() -> str:
    return _admins_page(InviteForm(), PublisherForm())


@operator_pages.route("/admins/invite", methods=["POST"])
@portal_page(OPERATOR)
def invite() -> tuple[str, int]:
    """The link is shown once, in this answer (it carries the secret; only its hash is kept), so
    there is no redirect to a page that could show it: the answer is never stored (no-store, as
    every portal page: rights.py), and the form sent again (a reload) makes no second link, as
    one is open for the address (`add_invitation`: one open invitation per address, replaced
    only when the operator asks for it on the page that says one is open, docs/portals.md)."""
    form = InviteForm()
    link = None
    if form.validate_on_submit():
        token = new_token()
        role = AdminRole(form.role.data)
        tenant = (form.tenant_id.data or "").strip() or None
        try:
            broker().registry.accounts.add_invitation(
                token_hash(token),
                form.email.data or "",
                role,
                tenant,
                datetime.now(UTC) + timedelta(days=INVITATION_DAYS),
                current_admin().id,
                replaces=form.replaces.data or "",
            )
        except InvitationOpen as already:
            _say_open(form, already.invitation)
        except BadRequest as error:
            form.tenant_id.errors = [gettext(error.public_message)]
        else:
            log.info(
                "portal invitation role=%s tenant=%s admin=%s",
                role.value,
                tenant,
                current_admin().id,
            )
            # Shown once, to the operator, who sends it to the invitee; only its hash is kept.
            link = broker().settings.url(url_for("portal_sign_in.accept_invitation", token=token))
    status = 200 if link else 400
    return _admins_page(form if not link else InviteForm(), PublisherForm(), link), status


def _say_open(form: InviteForm, open_invitation: Invitation) -> None:
    """The form again, saying an invitation for the address is open and until when, and
    naming it: sent as it is now, it makes a new one that replaces it."""
    log.warning(
        "portal refused status=400 reason=invitation_open invitation=%s admin=%s",
        open_invitation.token_hash[:8],
        current_admin().id,
    )
    note_refusal_logged()
    form.replaces.data = open_invitation.token_hash
    form.email.errors = [
        gettext(
            "An invitation for this e-mail address is open until %(expires)s. Its link was "
            "shown when it was made: send that one. Lost it? Then make a new invitation with "
            "the button below: it replaces the open one, whose link then stops working.",
            expires=shown_time(open_invitation.expires_at, broker().settings.zone),
        )
    ]


@operator_pages.route("/admins/invitations/<token_hash>/withdraw", methods=["POST"])
@portal_page(OPERATOR)
def withdraw_invitation(token_hash: str) -> Response | tuple[str, int]:
    # A link sent to the wrong address, or to someone who left: it stops working at once.
    if len(token_hash) == 64 and broker().registry.accounts.withdraw_invitation(token_hash):
        log.info("portal invitation withdrawn admin=%s", current_admin().id)
        flash(gettext("The invitation is withdrawn; its link no longer works."))
        return redirect(url_for(".admins"), code=303)
    # Accepted, expired or withdrawn meanwhile (a second click), or never one: say so.
    log.warning("portal refused status=404 reason=no_open_invitation admin=%s", current_admin().id)
    note_refusal_logged()
    flash(
        gettext("This invitation is not open any more: it was accepted, withdrawn or expired."),
        "error",
    )
    return _admins_page(InviteForm(), PublisherForm()), 404


@operator_pages.route("/admins/publishers", methods=["POST"])
@portal_page(OPERATOR)
def add_publisher() -> Response | tuple[str, int]:
    form = PublisherForm()
    if form.validate_on_submit():
        try:
            broker().registry.accounts.add_publisher(
                Publisher(form.publisher_id.data or "", form.name.data or "")
            )
        except BadRequest as error:
            form.publisher_id.errors = [gettext(error.public_message)]
        else:
            flash(gettext("Publisher %(publisher)s added.", publisher=form.publisher_id.data))
            return redirect(url_for(".admins"), code=303)
    return _admins_page(InviteForm(), form), 400


@operator_pages.route(f"/admins/{ADMIN_ID}/remove", methods=["GET", "POST"])
@portal_page(OPERATOR)
def remove_admin(admin_id: int) -> Response | tuple[str, int]:
    """GET: who would go and what happens, changing nothing; POST (the page's button): remove
    the account (registry/admin_removal.py). Never the operator's own account: a slip would
    lock them out at once, so another operator (or `ketenbroker admin remove`) does it."""
    me = current_admin()
    accounts = broker().registry.accounts
    if admin_id == me.id:
        return _admin_refused(400, "own_account"), 400
    try:
        if request.method == "POST":
            removal = accounts.remove_admin(admin_id, removed_by=recorded_author(me))
        else:
            removal = accounts.admin_removal(admin_id)
    except UnknownAdmin:
        # Removed meanwhile (a second click, another operator) or never an account: say so.
        flash(gettext("This administrator account does not exist (any more)."), "error")
        return _admin_refused(404, "unknown_admin", listed=True), 404
    except LastOperator:
        flash(gettext("The last operator account cannot be removed."), "error")
        return _admin_refused(400, "last_operator", listed=True), 400
    if request.method == "POST":
        flash(
            gettext(
                "The account of %(email)s is removed: it can no longer sign in.",
                email=removal.admin.email,
            )
        )
        return redirect(url_for(".admins"), code=303)
    return render_template(
        "portal/operator_admin_remove.html", target=removal.admin, invitations=removal.invitations
    ), 200


def _admin_refused(status: int, reason: str, *, listed: bool = False) -> str:
    """The refusal logged (ids only) and its page: the Administrators page with the flashed
    reason (`listed`), or the page that explains why one's own account is not removed here."""
    log.warning("portal refused status=%d reason=%s admin=%s", status, reason, current_admin().id)
    note_refusal_logged()
    if listed:
        return _admins_page(InviteForm(), PublisherForm())
    return render_template("portal/operator_admin_remove.html", target=None, invitations=0)
