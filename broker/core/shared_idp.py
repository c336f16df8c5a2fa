"""An identity provider several schools share: which of its students are the chosen school's.

A school board often runs one SAML IdP (ADFS, Entra ID, Shibboleth) for all its schools, and a
hub serves many boards. Each school is still its own BRIN, its own `School.id` and so its own
pseudonym namespace (`school:{id}`), so the board's schools are registered one by one with the
same IdP. That IdP signs in the students of every one of them: the school the student chose on
the discovery page says nothing about which school's student signed in. Were the choice believed,
a student of school B who chose school A would sign in as A's student, with a pseudonym in A's
namespace and A's licences at every publisher.

So a login through such an IdP must carry the school in the assertion:
nlEduPersonHomeOrganizationId (the catalogue's `school_id`), with the chosen school's id among
its values. Without it (`school_not_asserted`) or with another school's (`other_school`) the
login is refused, and the student may choose again.

Whether an IdP is such an IdP is a property of the IdP the registry keeps (revision 0015,
registry/shared_idps.py), not today's count of its schools: the registry sets it when a second
school joins the IdP and never clears it when schools leave (the board's IdP still signs in the
students of a school removed from the broker, and of its schools never registered), and the
operator may set it for a board IdP registered for one school so far, or clear it for an IdP of
one school. An IdP registered for several schools requires it whatever the flag says (fail
closed: a registry written by hand). Every such school's id must be a BRIN: the asserted value
is compared with it exactly, so another spelling could never sign in.

An SSO session answers only as it would be answered now: at a school whose IdP requires the
school named, a session whose login did not name it (opened before the rule applied) does not
answer, and the student signs in at the school again (login/flow.py `session_serves`).

An account the IdP names several schools for (a student or teacher enrolled at two schools of
the board) signs in at each of them: the IdP vouches that the account is the chosen school's,
and the pseudonym is in the chosen school's namespace. Which of them the student chose decides
the school, as it does for any student; only the chosen school's BRIN is ever passed on
(catalogue.py keeps a school's own BRIN alone).

The same holds for an OpenID provider several schools share (a board's Entra ID tenant or
Keycloak realm, by its issuer, which is the school's `idp_entity_id`): its `school_id` claim (the
catalogue's mapping of the same attribute) must name the chosen school, with the same refusals,
the same registry flag and the same BRIN rule; a back-channel logout token it sends finds the
session under each school that shares the token's client (`sharing_client`).

Pure checks, called by the SAML and the OIDC backs (login/school_values.py
`check_asserted_school`). The
asserted value is never logged or put in an error: it may be another school's BRIN, which with
the time of the login says where a student goes to school.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.core.catalogue import is_brin
from broker.core.hosted_domain import needs_hosted_domain
from broker.core.model import School, UpstreamIdentity

SCHOOL_ATTRIBUTE = "school_id"  # the catalogue's name for nlEduPersonHomeOrganizationId


def is_shared_idp(schools_on_idp: Sequence[School]) -> bool:
    """Whether the schools registered with one IdP entity id (`RegistryReader.schools_by_idp`)
    are several: no one of them is the IdP's school (an `IDPList` naming it names none)."""
    return len(schools_on_idp) > 1


def sharing_client(school: School, schools_on_idp: Sequence[School]) -> tuple[str, ...]:
    """The ids of the schools a logout token sent to `school`'s back-channel URI may concern:
    `school` first, then every other school on its issuer (`schools_on_idp`) that holds the same
    client id. A board may register one client for all its schools (one app registration in
    Entra ID, one Keycloak client, with a redirect URI per school); the provider then knows one
    back-channel logout URI for all of them, and the session it ends may be any of theirs. The
    token's audience is that client, so a school with a client of its own is not among them (its
    provider tells it at its own URI). Which school's session it is, the session's filing says
    (login/school_sessions.py `find_any`): it is never guessed from the issuer."""
    upstream = school.oidc
    if upstream is None:
        return (school.id,)
    others = (
        other.id
        for other in schools_on_idp
        if other.id != school.id
        and other.oidc is not None
        and other.oidc.issuer == upstream.issuer
        and other.oidc.client_id == upstream.client_id
    )
    return (school.id, *others)


def must_name_school(names_school: bool, schools_on_idp: Sequence[School]) -> bool:
    """Whether a login through an IdP must name the chosen school: the registry's flag for the
    IdP (`RegistryReader.idp_names_school`), or several schools on it (fail closed)."""
    return names_school or is_shared_idp(schools_on_idp)


def school_was_named(identity: UpstreamIdentity) -> bool:
    """Whether the login that opened an SSO session named its school: the catalogue keeps a
    `school_id` value only when it is exactly the school's own id and a BRIN (catalogue.py), so
    the school's id among the accepted values is what `asserted_school_matches` checked."""
    return identity.school_id in identity.attributes.get(SCHOOL_ATTRIBUTE, ())


def brin_problem(school_id: str) -> str | None:
    """Why a school cannot be on an IdP that must name its school, or None: its id must be a
    BRIN, as the IdP's `school_id` value is compared with it exactly."""
    if is_brin(school_id):
        return None
    return (
        f"school id {school_id!r} is not a BRIN (two digits and two capitals, and two digits "
        "for a location: 12AB, 12AB01), and logins through an IdP that must name the school "
        "compare the BRIN it sends with the school's id exactly: register the school with its "
        "BRIN as id"
    )


def naming_problem(entity_id: str) -> str | None:
    """Why logins through `entity_id` cannot be made to name their school, or None: Google's
    issuer sends no `school_id` claim, so every login of its school would be refused (its
    schools are told apart by hosted domain, core/hosted_domain.py)."""
    if not needs_hosted_domain(entity_id):
        return None
    return (
        f"{entity_id} sends no school_id claim, so its logins cannot name their school: a "
        "Google school is told apart by its hosted domain"
    )


def names_a_school(asserted: Sequence[str]) -> bool:
    """Whether the IdP's `school_id` values (as sent, trimmed) name any school at all."""
    return any(value for value in asserted)


def asserted_school_matches(asserted: Sequence[str], school_id: str) -> bool:
    """Whether the IdP's `school_id` values name the chosen school: one of them is exactly
    `school_id` (a BRIN's one spelling, as the catalogue checks it)."""
    return school_id in asserted
