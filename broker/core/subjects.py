"""Which attribute may identify a student, that is: feed the chain pseudonym.

It must be unique and stable per student at one school. Attributes such as affiliation or
school_id would give every student of a school the same pseudonym, so they are refused. A scoped
attribute (username, student_number) needs the school's realms: without one, no value of it is
accepted (catalogue.py), so no student could sign in (`lacks_realms`). The CLI (`school add`),
the registry import and the school's portal all apply these rules, and the operator's attention
report finds a school already in that state.
"""

from __future__ import annotations

import re

from broker.core.catalogue import CATALOGUE, registered_scope, split_scoped
from broker.core.model import Protocol, School

# SAML: the persistent NameID, or one of these attributes.
SAML_SUBJECTS = ("name_id", "username", "student_number")
# OIDC: `sub`, a provider claim such as Entra ID's `oid`, or one of these catalogue attributes.
IDENTIFYING_ATTRIBUTES = ("username", "student_number")
OIDC_SUBJECT_CHOICES = ("sub", "oid", *IDENTIFYING_ATTRIBUTES)
_CLAIM_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9_.:-]{0,63}\Z")
# Google Workspace's SAML IdP (entity id `https://accounts.google.com/o/saml2?idpid=…`): its
# NameID is an e-mail address whichever Format the school picks, PERSISTENT included.
GOOGLE_SAML_IDP = "https://accounts.google.com/o/saml2"
_DOMAIN = re.compile(r"\A[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\Z")


def subject_problem(subject: str, protocol: Protocol) -> str | None:
    """Why `subject` cannot identify a student of a school on `protocol`; None when it can."""
    if protocol is Protocol.SAML:
        if subject in SAML_SUBJECTS:
            return None
        return f"{subject!r} cannot identify a student; choose one of {', '.join(SAML_SUBJECTS)}"
    if subject in CATALOGUE and subject not in IDENTIFYING_ATTRIBUTES:
        return (
            f"{subject!r} cannot identify a student; use sub, a provider claim such as oid, "
            f"or one of {', '.join(IDENTIFYING_ATTRIBUTES)}"
        )
    if not _CLAIM_NAME.match(subject):
        return f"{subject!r} is not a claim name"
    return None


def lacks_realms(school: School) -> bool:
    """Whether the school's subject is a scoped attribute (username, student_number) and the
    school has no realm registered (`School.scopes`): every value of it is dropped at login
    (catalogue.py `accept_values`), so every student's login is refused (missing_subject).
    A school on the ECK iD takes its pseudonyms from that, whatever its subject."""
    attribute = CATALOGUE.get(school.subject_attribute)
    return (
        not school.use_eck_id and attribute is not None and attribute.scoped and not school.scopes
    )


def name_id_is_address(value: str, school: School) -> bool:
    """Whether a persistent NameID is a student's e-mail address: `local@domain` in one of
    the school's realms, or any address from Google's SAML IdP. Such a value changes when the
    student is renamed and may later be given to another student, who would then get the
    first one's pseudonyms, so it cannot feed a pseudonym, whatever Format it came with."""
    scoped = split_scoped(value)
    if scoped is None or not _DOMAIN.match(scoped[1]):
        return False
    if registered_scope(scoped[1], school.scopes) is not None:
        return True
    return school.idp_entity_id.startswith(GOOGLE_SAML_IDP + "?")
