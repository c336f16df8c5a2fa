"""An identity provider several schools share: which of its students are the chosen school's.

A school board often runs one SAML IdP (ADFS, Entra ID, Shibboleth) for all its schools, and a
hub serves many boards. Each school is still its own BRIN, its own `School.id` and so its own
pseudonym namespace (`school:{id}`), so the board's schools are registered one by one with the
same IdP. That IdP signs in the students of every one of them: the school the student chose on
the discovery page says nothing about which school's student signed in. Were the choice believed,
a student of school B who chose school A would sign in as A's student, with a pseudonym in A's
namespace and A's licences at every publisher.

So a login through an IdP registered for two or more schools must carry the school in the
assertion: nlEduPersonHomeOrganizationId (the catalogue's `school_id`), with the chosen school's
id among its values. Without it (`school_not_asserted`) or with another school's
(`other_school`) the login is refused, and the student may choose again. An IdP of one school is
that school's alone: its answers need no school named, as before.

An account the IdP names several schools for (a student or teacher enrolled at two schools of
the board) signs in at each of them: the IdP vouches that the account is the chosen school's,
and the pseudonym is in the chosen school's namespace. Which of them the student chose decides
the school, as it does for any student; only the chosen school's BRIN is ever passed on
(catalogue.py keeps a school's own BRIN alone).

Pure checks, called by the SAML back (login/school_values.py `check_asserted_school`). The
asserted value is never logged or put in an error: it may be another school's BRIN, which with
the time of the login says where a student goes to school.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.core.model import School

SCHOOL_ATTRIBUTE = "school_id"  # the catalogue's name for nlEduPersonHomeOrganizationId


def is_shared_idp(schools_on_idp: Sequence[School]) -> bool:
    """Whether the schools registered with one IdP entity id (`RegistryReader.schools_by_idp`)
    make it shared: a login through it must then name the chosen school."""
    return len(schools_on_idp) > 1


def names_a_school(asserted: Sequence[str]) -> bool:
    """Whether the IdP's `school_id` values (as sent, trimmed) name any school at all."""
    return any(value for value in asserted)


def asserted_school_matches(asserted: Sequence[str], school_id: str) -> bool:
    """Whether the IdP's `school_id` values name the chosen school: one of them is exactly
    `school_id` (a BRIN's one spelling, as the catalogue checks it)."""
    return school_id in asserted
