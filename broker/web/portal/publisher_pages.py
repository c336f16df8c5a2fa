"""The publisher's portal: register SAML services (checked metadata, declared attributes with a
purpose), see which schools switched each on and which attribute names each releases.

Changing the declarations makes a new declaration version. Only a change that needs it (an
attribute added, required-ness changed: core/declarations.py) sets every school's earlier choice
back to the pseudonym alone until that school confirms it (reading.py, `policy`); a new purpose
(core/purposes.py) stops that attribute at every school that shares it until the school shares
it again (registry/purpose_drops.py). The page says how many schools either affects before it
saves such a change. New texts for the same purpose keep every choice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext, ngettext
from werkzeug.wrappers import Response

from broker.core.admins import AdminRole
from broker.core.catalogue import CATALOGUE
from broker.core.chain_move import open_moves
from broker.core.declarations import compare_declarations
from broker.core.errors import BadRequest
from broker.core.model import Declaration, NamingProfile, Service
from broker.core.pseudonym_rotation import open_windows
from broker.core.release import released_declarations
from broker.oidc.provider import DISCOVERY_PATH
from broker.registry.errors import ServiceIdUsedBefore
from broker.saml.entities import IDP_SLO_PATH, SSO_PATH
from broker.saml.metadata_check import MetadataInvalid, RefusedEndpoint
from broker.saml.metadata_report import refused_endpoints, sp_metadata_problems
from broker.web.labels import localised_detail, shown_time
from broker.web.logs import note_refusal_logged
from broker.web.portal.authors import recorded_author, shown_authors
from broker.web.portal.declaration_forms import (
    ChangeImpact,
    change_impact,
    counting_choices,
    declarations_of,
    history_lines,
    prefill,
)
from broker.web.portal.rights import current_admin, portal_blueprint, portal_page, refuse_unless
from broker.web.portal.service_forms import EmptyForm, ServiceForm, service_form_class
from broker.web.portal.uploads import fetched_text, metadata_source, uploaded_text
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
publisher_pages = portal_blueprint("portal_publisher", "/portal/publisher/<publisher_id>")
PUBLISHER = AdminRole.PUBLISHER


def key_windows(services: list[Service]) -> list[tuple[str, str]]:
    """(what is being re-keyed, the window's end as the pages show times) for every pseudonym key
    window open for these services: their engineers must re-key accounts before it ends
    (docs/portals.md).
    A service in no chain is named itself; a chain by its name."""
    registry = broker().registry
    own = {s.pseudonym_chain: s.name for s in services if not s.chain_id}
    windows = []
    zone = broker().settings.zone
    for record in open_windows(registry.pseudonym_keys.all(), services, datetime.now(UTC)):
        chain = registry.chain(record.chain)
        label = own.get(record.chain) or (chain.name if chain else record.chain)
        assert record.window_ends is not None  # an open window has an end
        windows.append((label, shown_time(record.window_ends, zone)))
    # A service moved to another chain with a window (core/chain_move.py): its platform
    # re-keys the same way, from the pseudonym it received in the chain it left.
    moved = {s.id: s.name for s in services}
    for move in open_moves(registry.chain_moves(), datetime.now(UTC)):
        if move.service_id in moved:
            windows.append((moved[move.service_id], shown_time(move.window_ends, zone)))
    return windows


def refused_registration(form: ServiceForm, error: BadRequest, publisher_id: str) -> None:
    """A registration (SAML or OIDC) the registry refused, said beside the service id: a taken
    service or entity id with the taken value, the publisher's own input; an id a removed
    service had with the message alone, which never says whose it was (registry/id_reuse.py),
    and the log line names the id only."""
    message = gettext(error.public_message)
    if isinstance(error, ServiceIdUsedBefore):
        log.warning(
            "portal refused status=400 reason=%s service=%s publisher=%s admin=%s",
            error.code,
            error.service_id,
            publisher_id,
            current_admin().id,
        )
        note_refusal_logged()
        form["service_id"].errors = [message]
    else:
        form["service_id"].errors = [f"{message} ({error.detail})"]


def own_service(publisher_id: str, service_id: str) -> Service:
    service = broker().registry.any_service(service_id)
    refuse_unless(service is not None and service.publisher_id == publisher_id)
    assert service is not None
    return service


@publisher_pages.route("/services", methods=["GET"])
@portal_page(PUBLISHER)
def services(publisher_id: str) -> str:
    registry = broker().registry
    publisher = registry.accounts.publisher(publisher_id)
    refuse_unless(publisher is not None)
    listed = registry.all_services(publisher_id)
    return render_template(
        "portal/publisher_services.html",
        publisher=publisher,
        services=listed,
        key_windows=key_windows(listed),
    )


def _metadata(form: ServiceForm) -> tuple[str | None, str, list[str], str | None]:
    """(entity id, metadata text, localised problems, the address it was fetched from) of the
    registration form's metadata: an uploaded file, else what its address serves (kept, so
    `metadata refresh` fetches it again), else the pasted text. An upload's text goes back into
    the form's text field, so a page that asks to correct another field does not ask for the
    file again."""
    address = form["metadata_url"]
    url = (address.data or "").strip() or None
    try:
        xml = uploaded_text(form["metadata_file"].data)
        if xml is None and url is not None:
            xml = fetched_text(address)
        else:
            xml, url = xml or form["metadata_xml"].data or "", None
            form["metadata_xml"].data = xml
    except MetadataInvalid as error:
        # Said beside the field it came from: the address when it was fetched.
        return None, "", [localised_detail(error)], url
    if not xml.strip():
        return (
            None,
            "",
            [gettext("Upload the service's SAML metadata, paste it, or give its address.")],
            None,
        )
    entity_id, problems = sp_metadata_problems(xml)
    return entity_id, xml, [localised_detail(problem) for problem in problems], url


@publisher_pages.route("/services/new", methods=["GET", "POST"])
@portal_page(PUBLISHER)
def register(publisher_id: str) -> Response | tuple[str, int]:
    form = service_form_class(registering=True)()
    if form.is_submitted():
        # Every field in one round: the metadata is checked whether or not the others pass.
        valid = form.validate()
        entity_id, xml, problems, url = _metadata(form)
        form["metadata_url" if url else "metadata_file"].errors = problems
        if valid and entity_id is not None:
            service = Service(
                form["service_id"].data,
                form["name"].data,
                entity_id,
                None,
                NamingProfile(form.naming.data),
                declarations_of(form),
                approved=False,
                publisher_id=publisher_id,
            )
            try:
                broker().registry.add_service(service, xml, url=url)
            except BadRequest as error:
                refused_registration(form, error, publisher_id)
            else:
                log.info(
                    "portal service registered service=%s publisher=%s admin=%s",
                    service.id,
                    publisher_id,
                    current_admin().id,
                )
                flash(gettext("Registered. An operator will review it before schools see it."))
                return redirect(
                    url_for(".service", publisher_id=publisher_id, service_id=service.id), code=303
                )
    page = render_template(
        "portal/publisher_register.html",
        publisher_id=publisher_id,
        form=form,
        attributes=list(CATALOGUE),
    )
    return page, 400 if form.is_submitted() else 200


@publisher_pages.route("/services/<service_id>", methods=["GET", "POST"])
@portal_page(PUBLISHER)
def service(publisher_id: str, service_id: str) -> Response | tuple[str, int]:
    registry = broker().registry
    found = own_service(publisher_id, service_id)
    form = service_form_class(registering=False)(data=prefill(found))
    choices = registry.choices_for_service(service_id)
    impact: ChangeImpact | None = None
    if form.validate_on_submit():
        declarations = declarations_of(form)
        diff = compare_declarations(found.declarations, declarations)
        impact = change_impact(choices, diff, declarations)
        if not (impact.asks and form["confirmed"].data != "1"):
            if not diff.empty:
                _save_declarations(service_id, declarations, diff.needs_confirmation)
            return redirect(
                url_for(".service", publisher_id=publisher_id, service_id=service_id), code=303
            )
        # Otherwise said before anything is saved: which schools stop sharing what, or fall
        # back to the pseudonym; the form asks to save once more.
    schools = {s.id: s for s in registry.schools()}
    history = registry.declaration_history(service_id)
    page = render_template(
        "portal/publisher_service.html",
        publisher_id=publisher_id,
        service=found,
        form=form,
        attributes=list(CATALOGUE),
        # What each school shares now: a choice may still name an attribute the service no
        # longer declares, which no login releases (core/release.py).
        choices=[
            (
                schools.get(c.school_id),
                c,
                [d.attribute for d in released_declarations(found, c.attributes)],
            )
            for c in choices
        ],
        counting=counting_choices(choices),
        impact=impact,
        history=history_lines(history),
        authors=shown_authors((c.changed_by for c in history), PUBLISHER, publisher_id),
        rotate=EmptyForm(),
        settings=broker().settings,
        idp_sso_url=broker().settings.url(SSO_PATH),
        idp_slo_url=broker().settings.url(IDP_SLO_PATH),
        oidc_discovery_url=broker().settings.url(DISCOVERY_PATH),
        key_windows=key_windows([found]),
        refused_endpoints=_refused_endpoints(found),
        metadata_source=None if found.oidc else metadata_source("sp", found.id, found.entity_id),
    )
    return page, 400 if form.is_submitted() and impact is None else 200


def _refused_endpoints(service: Service) -> list[RefusedEndpoint]:
    """What the login and logout paths refuse to send to in the service's SAML metadata in force
    (a copy from before intake checked ACS and SLO URLs): `publisher list`'s marks, which the
    page says in words its publisher acts on, as the school portal does for an IdP
    (school_idp.py). One service's copy read, approved or not yet."""
    if service.oidc is not None:
        return []
    copies = broker().registry.service_metadata(approved_only=False, entity_id=service.entity_id)
    return refused_endpoints(copies.get(service.entity_id), "sp")


def _save_declarations(
    service_id: str, declarations: tuple[Declaration, ...], reconfirm: bool
) -> None:
    replaced = broker().registry.set_declarations(
        service_id, declarations, recorded_author(current_admin())
    )
    log.info(
        # Which purposes changed is logged by set_declarations, for every writer; this line adds
        # who saved.
        "portal declarations service=%s version=%s reconfirm=%s admin=%s",
        service_id,
        replaced.version,
        reconfirm,
        current_admin().id,
    )
    flash(gettext("Saved as declaration version %(version)d.", version=replaced.version))
    if replaced.dropped:
        flash(
            ngettext(
                "%(num)d school no longer shares what got a new purpose, until it shares it again.",
                "%(num)d schools no longer share what got a new purpose, until each shares it "
                "again.",
                len(replaced.dropped),
            )
        )
