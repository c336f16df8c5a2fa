"""The school's portal: its identity provider and the attribute that identifies a student.

SAML metadata goes through the same check as the operator's onboarding (`idp_metadata`: every
problem at once); an OpenID provider through the same check as `school add --oidc-issuer`
(`check_school_provider`: discovery document, algorithms, key set) and the hosted domain Google's
shared issuer needs (core/hosted_domain.py), before anything is saved.
What is wrong is said in the page's language (the checks' messages are marked for translation,
core/errors.py), next to the field it concerns, with every field's problems in one round. The
change bumps the registry's generation, so every worker uses it on the next login; the OIDC back
caches providers by issuer, so a new issuer is simply a new entry.

The provider's client secret is typed into a password field, stored, and never shown again.

A school whose pseudonyms come from the ECK iD (`School.use_eck_id`) cannot change its provider
here: the ECK iD namespace is sector-wide, so a provider of the school's own choosing could assert
any student's ECK iD and be that student at every publisher. The page shows the provider read-only
and a POST is refused (403); the federation operator changes it (`registry import`, docs/cli.md).

Nor can a school on a school board's SAML IdP or OpenID issuer (core/shared_idp.py): one other
schools share, or one whose logins must name the school (`idps_naming_school`: set by the
operator for a board IdP registered for one school so far, or kept after the board's other
schools left). Its metadata is the IdP's, and a change would change the sign-in of the board's
other schools, registered or not yet: the next school added must bring the IdP's metadata as
stored (registry/shared_idps.py); a board's issuer's client may be its schools' one client. The
page shows it read-only, saying whose it is (with, for an OpenID provider, the school's own
redirect, post-logout redirect and back-channel logout URIs, which the board's ICT registers per
school), and a POST is refused (403); the federation operator manages it (`school update
--saml-metadata` updates every school on the IdP, docs/operations.md). The rule is
`must_name_school`'s, the same the login checks: a board's IdP is one whose logins must name the
school.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal

from flask import flash, redirect, render_template, url_for
from flask_babel import LazyString, gettext
from werkzeug.wrappers import Response
from wtforms import SelectField

from broker.core.admins import AdminRole
from broker.core.errors import BadRequest, UpstreamFailure
from broker.core.hosted_domain import checked_hosted_domain, lacks_hosted_domain
from broker.core.model import OidcUpstream, School
from broker.core.provider_version import provider_version
from broker.core.shared_idp import is_shared_idp, must_name_school
from broker.core.subjects import lacks_realms
from broker.oidc.rp_discovery import ProviderDirectory, check_school_provider
from broker.oidc.rp_http import SchoolSession
from broker.registry.errors import ProviderChanged
from broker.saml.metadata_check import RefusedEndpoint
from broker.saml.metadata_report import refused_endpoints
from broker.web.labels import localised_detail, localised_problem
from broker.web.portal.oidc_forms import (
    SECRET_KEPT_HINT,
    SECRET_NEEDED_HINT,
    SECRET_UNREADABLE_HINT,
    SUBJECT_LABELS,
    OidcProviderForm,
    SamlIdpForm,
)
from broker.web.portal.rights import (
    PortalForbidden,
    current_admin,
    portal_blueprint,
    portal_page,
    refuse_unless,
    stale_page_refused,
)
from broker.web.portal.student_lookup import subject_key
from broker.web.portal.uploads import fetched_url, idp_metadata, metadata_source
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
school_idp_pages = portal_blueprint("portal_school_idp", "/portal/school/<school_id>")
SCHOOL = AdminRole.SCHOOL
DEFAULT_TIMEOUT = 5.0
# Why a school's administrators may not change its identity provider themselves.
Locked = Literal["eck_id", "shared_idp", "board_idp"]
_REFUSED: dict[Locked, str] = {
    "eck_id": "identity provider of an ECK iD school",
    "shared_idp": "identity provider other schools share",
    "board_idp": "identity provider whose logins must name the school",
}


def _school(school_id: str) -> School:
    school = broker().registry.school(school_id)
    refuse_unless(school is not None)
    assert school is not None
    return school


def _changeable(school: School) -> School:
    """The school, if its administrators may change its identity provider themselves."""
    locked = _locked(school)
    if locked is not None:
        log.warning(
            "portal school idp refused school=%s reason=%s admin=%s",
            school.id,
            locked,
            current_admin().id,
        )
        raise PortalForbidden(_REFUSED[locked])
    return school


def _locked(school: School) -> Locked | None:
    """Why the school's identity provider is the federation operator's to change, or None: the
    ECK iD school's (`eck_id`); a board's SAML IdP or OpenID issuer, whose logins must name the
    school, with other schools on it (`shared_idp`) or with this school alone so far
    (`board_idp`)."""
    if school.use_eck_id:
        return "eck_id"
    registry = broker().registry
    on_idp = registry.schools_by_idp(school.idp_entity_id)
    if not must_name_school(registry.idp_names_school(school.idp_entity_id), on_idp):
        return None
    return "shared_idp" if is_shared_idp(on_idp) else "board_idp"


def _forms(school: School, *, stored: bool = False) -> tuple[SamlIdpForm, OidcProviderForm]:
    """Both forms with the school's settings as stored. `stored`: never what a POST sent (a
    page whose save was refused because a colleague's came first shows theirs)."""
    # WTForms reads the request's form unless given `formdata=None`.
    formdata: dict[str, None] = {"formdata": None} if stored else {}
    version = provider_version(school)
    saml = SamlIdpForm(
        **formdata,
        data={
            "saml_subject": school.subject_attribute if school.oidc is None else "name_id",
            "provider_seen": version,
        },
    )
    oidc = OidcProviderForm(
        **formdata,
        data={
            "provider_seen": version,
            "issuer": school.oidc.issuer if school.oidc else "",
            "client_id": school.oidc.client_id if school.oidc else "",
            "algorithm": school.oidc.algorithms[0] if school.oidc else "RS256",
            "oidc_subject": school.subject_attribute if school.oidc else "sub",
            "hosted_domain": school.oidc.hosted_domain if school.oidc else "",
        },
    )
    return saml, oidc


def _page(
    school: School,
    saml: SamlIdpForm,
    oidc: OidcProviderForm,
    status: int,
    *,
    changed_meanwhile: bool = False,
) -> tuple[str, int]:
    settings = broker().settings
    oidc.client_secret.description = secret_hint(school)
    page = render_template(
        "portal/school_idp.html",
        school=school,
        # A claim set from the command line may have no label: the page shows its name then.
        subject_label=SUBJECT_LABELS.get(subject_key(school)),
        saml=saml,
        oidc=oidc,
        callback=settings.oidc_callback_url(school.id),
        logout_callback=settings.oidc_logout_callback_url(school.id),
        backchannel_logout=settings.oidc_backchannel_logout_url(school.id),
        # The SP metadata a SAML IdP reads to know the broker (also its entity id).
        sp_metadata=settings.sp_entity_id,
        hosted_domain_missing=lacks_hosted_domain(school.oidc),
        refused_endpoints=_refused_endpoints(school),
        locked=_locked(school),
        changed_meanwhile=changed_meanwhile,
        metadata_source=None
        if school.oidc
        else metadata_source("idp", school.id, school.idp_entity_id),
    )
    return page, status


def secret_hint(school: School) -> LazyString:
    """The secret field's hint: "leave empty to keep" only when there is a secret to keep (a
    school on SAML has none: leaving it empty is refused, so the hint says it is required)."""
    if school.oidc is None:
        return SECRET_NEEDED_HINT
    if school.oidc.secret_problem:
        return SECRET_UNREADABLE_HINT
    return SECRET_KEPT_HINT


def _seen_current(school: School, form: SamlIdpForm | OidcProviderForm) -> bool:
    """Whether the page showed the school's settings as they are: a colleague's save since
    would be silently undone by this one (a subject put back changes every pseudonym)."""
    return bool(form.provider_seen.data == provider_version(school))


def _changed_meanwhile(school_id: str) -> tuple[str, int]:
    """Nothing saved: the page again with the settings as stored now, saying why. The log line
    names the school and the administrator only."""
    stale_page_refused(ProviderChanged.code, school=school_id)
    school = _school(school_id)
    saml, oidc = _forms(school, stored=True)
    return _page(school, saml, oidc, 400, changed_meanwhile=True)


def _refused_endpoints(school: School) -> list[RefusedEndpoint]:
    """What the login and logout paths refuse to send to in the school's SAML metadata in force
    (a copy from before intake checked SSO and SLO URLs): `school list`'s marks, which the page
    says in words its administrator acts on. One IdP's copy read, not every school's."""
    if school.oidc is not None:
        return []
    copies = broker().registry.school_metadata(idp_entity_id=school.idp_entity_id)
    return refused_endpoints(copies.get(school.idp_entity_id), "idp")


def _saved(school: School, what: str) -> Response:
    log.info(
        "portal school idp school=%s protocol=%s admin=%s", school.id, what, current_admin().id
    )
    flash(gettext("Saved. The next login uses it."))
    return redirect(url_for(".identity_provider", school_id=school.id), code=303)


@school_idp_pages.route("/identity-provider", methods=["GET"])
@portal_page(SCHOOL)
def identity_provider(school_id: str) -> tuple[str, int]:
    school = _school(school_id)
    saml, oidc = _forms(school)
    return _page(school, saml, oidc, 200)


@school_idp_pages.route("/identity-provider/saml", methods=["POST"])
@portal_page(SCHOOL)
def saml_provider(school_id: str) -> Response | tuple[str, int]:
    school = _changeable(_school(school_id))
    saml, oidc = SamlIdpForm(), _forms(school)[1]
    if not _seen_current(school, saml):
        return _changed_meanwhile(school_id)
    valid = saml.validate_on_submit()  # first: validating clears the fields' errors
    subject_usable = _has_realms(school, saml.saml_subject)
    if valid:
        entity_id, xml, given = idp_metadata(saml.metadata_file, saml.metadata_url)
        if entity_id is not None and subject_usable:
            changed = replace(
                school, idp_entity_id=entity_id, subject_attribute=saml.saml_subject.data, oidc=None
            )
            try:
                broker().registry.update_school_idp(
                    changed,
                    xml,
                    seen=saml.provider_seen.data,
                    url=fetched_url(given, saml.metadata_url),
                )
            except ProviderChanged:
                return _changed_meanwhile(school_id)
            except BadRequest as error:
                # Another school's identity provider already (a taken entity id).
                given.errors = [f"{gettext(error.public_message)} ({error.detail})"]
            else:
                return _saved(school, "saml")
    return _page(school, saml, oidc, 400)


@school_idp_pages.route("/identity-provider/oidc", methods=["POST"])
@portal_page(SCHOOL)
def oidc_provider(school_id: str) -> Response | tuple[str, int]:
    school = _changeable(_school(school_id))
    saml, oidc = _forms(school)[0], OidcProviderForm()
    if not _seen_current(school, oidc):
        return _changed_meanwhile(school_id)
    # Every problem of the form in one round: the field checks (a missing client id, say) do not
    # stop the checks that need the view (the secret, the hosted domain, the provider itself),
    # so a second submit never brings a problem the first could have said (docs/portals.md).
    fields_valid = oidc.validate()  # CSRF was checked before the view (rights.check_csrf)
    secret = (oidc.client_secret.data or "").strip()
    issuer, algorithms = oidc.issuer.data or "", (oidc.algorithm.data,)
    current = school.oidc
    if not secret and current and current.issuer == issuer.strip() and not current.secret_problem:
        # Left empty: keep the current one, but only for the provider it was issued by. Kept
        # for a new issuer, it would go to that issuer's token endpoint: anyone who may edit
        # this page could receive the real provider's secret at a server of their own. One the
        # broker cannot open (core/sealed_secrets.py) is no secret to keep: give it again
        # (`secret_hint` says which the page's school has).
        secret = current.client_secret
    if not secret:
        oidc.client_secret.errors = [*oidc.client_secret.errors, gettext("Give the client secret.")]
    domain = _hosted_domain(oidc, issuer)
    subject_usable = _has_realms(school, oidc.oidc_subject)
    # An issuer its field already refuses (empty, too long) is not fetched.
    usable = not oidc.issuer.errors and _usable_provider(oidc, issuer, algorithms)
    if fields_valid and usable and secret and domain is not None and subject_usable:
        client_id = (oidc.client_id.data or "").strip()
        upstream = OidcUpstream(issuer, client_id, secret, algorithms, domain)
        changed = replace(
            school,
            idp_entity_id=issuer,
            subject_attribute=oidc.oidc_subject.data,
            oidc=upstream,
        )
        try:
            broker().registry.update_school_idp(changed, "", seen=oidc.provider_seen.data)
        except ProviderChanged:
            return _changed_meanwhile(school_id)
        except BadRequest as error:
            oidc.issuer.errors = [f"{gettext(error.public_message)} ({error.detail})"]
        else:
            return _saved(school, "oidc")
    return _page(school, saml, oidc, 400)


def _has_realms(school: School, subject: SelectField) -> bool:
    """Whether the chosen subject can identify the school's students with the realms it has
    (core/subjects.py `lacks_realms`, the CLI's rule too); if not, why and what to do next to
    the field. A user name or student number is passed on only with one of the school's realms,
    which the operator registers (`school add --scope`, `registry import`)."""
    if not lacks_realms(replace(school, subject_attribute=subject.data or "")):
        return True
    subject.errors = [
        *subject.errors,
        gettext(
            "No realms are registered for your school: the part after the @ that your "
            "students' user names and student numbers end in (such as @school.nl). Without "
            "one, the broker passes on no user name or student number, so no student could "
            "sign in. Ask the broker's operator to register your school's realms, and choose "
            "this again then; until then, choose another attribute."
        ),
    ]
    return False


def _hosted_domain(form: OidcProviderForm, issuer: str) -> str | None:
    """The hosted domain as stored ("" for none), or None with what is wrong next to the field:
    not a domain, or none for Google's issuer (core/hosted_domain.py)."""
    domain, problem = checked_hosted_domain(issuer, form.hosted_domain.data or "")
    if problem:
        form.hosted_domain.errors = [*form.hosted_domain.errors, localised_problem(problem, {})]
        return None
    return domain


def _usable_provider(form: OidcProviderForm, issuer: str, algorithms: tuple[str, ...]) -> bool:
    """Whether the provider passes `school add --oidc-issuer`'s check; if not, what is wrong goes
    next to the issuer, in the page's language (the CLI says it in English)."""
    settings = broker().settings
    timeout = settings.oidc.http_timeout_seconds if settings.oidc else DEFAULT_TIMEOUT
    loopback = settings.peers_on_loopback
    try:
        check_school_provider(
            ProviderDirectory(lambda: SchoolSession(timeout, allow_loopback=loopback)),
            issuer,
            algorithms,
        )
    except UpstreamFailure as error:
        unusable = gettext("The OpenID provider cannot be used:")
        form.issuer.errors = [
            f"{unusable} {localised_detail(error) if error.detail else error.code}"
        ]
        return False
    return True
