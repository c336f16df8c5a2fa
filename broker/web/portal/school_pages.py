"""The school's portal: which approved services its students may use, and what each receives.

A school sees approved services only. Each choice is a new, numbered version of its release
policy (`SqlRegistry.set_policy`), with who and when; the page shows that history. When the
broker took an attribute out of the choice because the publisher gave it a new purpose
(registry/purpose_drops.py), the page says which and why until the school chooses again. Both
pages say when the school's students cannot sign in to a platform now (`_refused_logins`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from broker.core.admins import AdminRole
from broker.core.model import Declaration, Service
from broker.core.release import released_declarations, required_not_released
from broker.registry.errors import DeclarationsChanged, PolicyChanged
from broker.registry.policy_change import PolicyChange
from broker.registry.portal_reading import SchoolChoice
from broker.registry.purpose_drops import PurposeDrop, purpose_drops
from broker.web.labels import attribute_label, declared_purpose
from broker.web.portal.authors import recorded_author, shown_authors
from broker.web.portal.preview import preview_release
from broker.web.portal.rights import (
    current_admin,
    portal_blueprint,
    portal_page,
    refuse_unless,
    stale_page_refused,
)
from broker.web.portal.school_forms import PolicyForm
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
school_pages = portal_blueprint("portal_school", "/portal/school/<school_id>")
SCHOOL = AdminRole.SCHOOL


@school_pages.route("/services", methods=["GET"])
@portal_page(SCHOOL)
def services(school_id: str) -> str:
    registry = broker().registry
    school = registry.school(school_id)
    refuse_unless(school is not None)
    choices = registry.choices_of_school(school_id)
    rows = []
    for found in registry.services():
        choice = choices.get(found.id)
        refused = _refused_logins(found, choice)
        withheld = [] if refused else _withheld(found, choice)
        rows.append((found, choice, _shared(found, choice), refused, withheld))
    refusing = sum(1 for _, _, _, refused, _ in rows if refused)
    return render_template(
        "portal/school_services.html", school=school, rows=rows, refusing=refusing
    )


def _approved_service(service_id: str) -> Service:
    service = broker().registry.service(service_id)  # the login view: approved services only
    refuse_unless(service is not None)
    assert service is not None
    return service


def _policy_form(
    found: Service, choice: SchoolChoice | None, notice: str, *, from_post: bool = True
) -> PolicyForm:
    """The page's form: what a POST sent (`from_post`), else the stored choice and notice
    setting; and the declaration and policy versions the page shows. A POST must carry the
    versions its page showed: one without them (a script, a page from before the field) counts
    as made on others. A POST without the notice setting keeps it."""
    data: dict[str, object] = {
        "active": choice.active if choice else True,
        "attributes": sorted(choice.attributes) if choice else [],
        "mode": notice,
        "notice_seen": notice,
    }
    if not (from_post and request.method == "POST"):
        data["declarations_seen"] = str(found.declaration_version)
        data["policy_seen"] = str(_policy_version(choice))
    form = PolicyForm(data=data) if from_post else PolicyForm(formdata=None, data=data)
    form.attributes.choices = [
        SelectChoice(d.attribute, str(attribute_label(d.attribute))) for d in found.declarations
    ]
    return form


def _policy_version(choice: SchoolChoice | None) -> int:
    """The version of the school's choice a page shows (0: none made yet), as `set_policy`
    compares it."""
    return choice.version if choice is not None else 0


def _changed_meanwhile(
    found: Service, choice: SchoolChoice | None, school_id: str, reason: str, notice: str
) -> PolicyForm:
    """Nothing saved: the page comes back with what the platform asks for now, the stored
    choice, and why: the publisher changed what it asks for (`declarations_changed`), or a
    colleague saved a choice (`policy_changed`). The log line names the route's ids, never
    what was ticked."""
    stale_page_refused(reason, school=school_id, service=found.id)
    form = _policy_form(found, choice, notice, from_post=False)
    if reason == PolicyChanged.code:
        said = gettext(
            "A colleague saved a choice for this platform while you had this page open. Check "
            "the current choice below and save yours again."
        )
    else:
        said = gettext(
            "The publisher changed what this platform asks for while you had this page "
            "open. Read it again and save your choice again."
        )
    form.attributes.errors = [said]
    return form


@dataclass(frozen=True)
class ShownDrop:
    """An attribute taken out of the school's choice because its purpose changed, as the page
    says it: the Dutch purposes (the purpose of record, core/purposes.py) before and after."""

    drop: PurposeDrop
    before: str | None
    after: str


def _purpose_drops(history: list[PolicyChange], found: Service) -> list[ShownDrop]:
    """What the broker took out since the school last chose, of what the platform still
    declares (an attribute removed since cannot be ticked again, so it is not named)."""
    versions = {c.version: c.declarations for c in broker().registry.declaration_history(found.id)}
    declared = {d.attribute: d for d in found.declarations}
    shown = []
    for drop in purpose_drops(history, versions):
        if drop.attribute in declared:
            after = drop.after or declared[drop.attribute]
            shown.append(
                ShownDrop(
                    drop,
                    _of_record(drop.before) if drop.before is not None else None,
                    _of_record(after),
                )
            )
    return shown


def _shared(found: Service, choice: SchoolChoice | None) -> list[str]:
    """What the school's choice releases to the platform now, besides the pseudonym, once it
    is confirmed: what it ticked (a new purpose took out of it what it no longer releases) and
    the platform still declares (core/release.py, the release rule's one reading)."""
    if choice is None:
        return []
    return [d.attribute for d in released_declarations(found, choice.attributes)]


def _released(found: Service, choice: SchoolChoice | None) -> frozenset[str]:
    """What a login releases now under the school's choice (registry/reading.py `policy`):
    nothing besides the pseudonym before the school first chooses, or while its choice waits
    for it to confirm a publisher's change; else what it shares (`_shared`)."""
    if choice is None or choice.needs_confirmation:
        return frozenset()
    return frozenset(_shared(found, choice))


def _refused_logins(found: Service, choice: SchoolChoice | None) -> list[str]:
    """The required attributes the school does not release now, so the login path refuses its
    students' logins to the platform (core/release.py, one rule), which its pages say, naming
    what to tick. Switched off, its students are refused anyway: the pages say that instead."""
    if choice is not None and not choice.active:
        return []
    return list(required_not_released(found, _released(found, choice)))


def _withheld(found: Service, choice: SchoolChoice | None) -> list[str]:
    """What the school chose that the platform does not receive until the school confirms its
    choice again: all of it (registry/reading.py `policy`); only what it still declares, as
    the login path releases nothing else anyway."""
    if choice is None or not choice.active or not choice.needs_confirmation:
        return []
    return _shared(found, choice)


def _of_record(declaration: Declaration) -> str:
    # The Dutch text, marked as Dutch on an English page (labels.declared_purpose).
    return declared_purpose(replace(declaration, purpose_en=""))


@school_pages.route("/services/<service_id>", methods=["GET", "POST"])
@portal_page(SCHOOL)
def service(school_id: str, service_id: str) -> Response | tuple[str, int]:
    registry = broker().registry
    found = _approved_service(service_id)
    choice = registry.choices_of_school(school_id).get(service_id)
    notice = broker().receipts.notice_mode(school_id, service_id)
    form = _policy_form(found, choice, notice)
    if form.is_submitted():
        refused = _overtaken(form, found, choice)
        if refused is None and form.validate():
            try:
                return _save(form, found, choice, school_id, notice)
            except (DeclarationsChanged, PolicyChanged) as changed:
                # Both read again: the change may have taken attributes out of the stored
                # choice (a new purpose), and a page that still ticked them would release them
                # again on the next save without the school ticking them for the new purpose.
                found = _approved_service(service_id)
                choice = registry.choices_of_school(school_id).get(service_id)
                refused = changed.code
        if refused is not None:
            form = _changed_meanwhile(found, choice, school_id, refused, notice)
    released = _released(found, choice)
    history = registry.policy_history(school_id, service_id)
    drops = _purpose_drops(history, found) if choice and choice.purpose_dropped else []
    page = render_template(
        "portal/school_service.html",
        school_id=school_id,
        service=found,
        # Who offers it (the processor in the school's register) and its chain, by name.
        publisher=registry.accounts.publisher(found.publisher_id) if found.publisher_id else None,
        chain=registry.chain(found.chain_id) if found.chain_id else None,
        choice=choice,
        form=form,
        history=history,
        purpose_drops=drops,
        refused_logins=_refused_logins(found, choice),
        authors=shown_authors((c.changed_by for c in history), SCHOOL, school_id),
        preview=preview_release(released),
    )
    return page, 400 if form.is_submitted() else 200


def _overtaken(form: PolicyForm, found: Service, choice: SchoolChoice | None) -> str | None:
    """Why the page the form was sent from is out of date (`declarations_changed`: the
    publisher changed what the platform asks for; `policy_changed`: a colleague saved a
    choice), or None."""
    if form.declarations_seen.data != str(found.declaration_version):
        return DeclarationsChanged.code
    if form.policy_seen.data != str(_policy_version(choice)):
        return PolicyChanged.code
    return None


def _save(
    form: PolicyForm, found: Service, choice: SchoolChoice | None, school_id: str, notice: str
) -> Response:
    """Save what the administrator changed on the page: the release choice as a new version
    (also when nothing in it changed and the notice setting did not either: saving it again
    confirms it, core/declarations.py), and the notice setting when they changed it (the page
    showed `notice_seen`), which alone makes no new policy version."""
    registry, author = broker().registry, current_admin()
    chosen, active = frozenset(form.attributes.data or []), bool(form.active.data)
    mode = form.mode.data or notice
    notice_changed = mode != form.notice_seen.data
    shown = (choice.active, choice.attributes) if choice else (True, frozenset[str]())
    confirming = choice is not None and choice.needs_confirmation
    if (active, chosen) != shown or confirming or not notice_changed:
        # The versions seen are checked again under the rows' locks: a publisher's change or a
        # colleague's choice between this page's read and the write is refused too.
        policy = registry.set_policy(
            school_id,
            found.id,
            chosen,
            recorded_author(author),
            active=active,
            declarations_seen=found.declaration_version,
            policy_seen=_policy_version(choice),
        )
        log.info(
            "portal policy school=%s service=%s version=%s active=%s admin=%s",
            school_id,
            found.id,
            policy.version,
            active,
            author.id,
        )
        flash(gettext("Saved as version %(version)d.", version=policy.version))
    if notice_changed:
        if mode != notice:
            broker().receipts.set_notice_mode(school_id, found.id, mode)
        log.info(
            "portal notice school=%s service=%s mode=%s admin=%s",
            school_id,
            found.id,
            mode,
            author.id,
        )
        flash(gettext("Notice setting saved."))
    return redirect(url_for(".service", school_id=school_id, service_id=found.id), code=303)
