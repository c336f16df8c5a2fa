"""Which identifier finds one student's receipts at a school, said to its privacy officer.

The receipt subject is made from the same value as the chain pseudonym (core/pseudonym.py,
`subject_input`): the ECK iD for an ECK iD school, otherwise the school's configured subject as
its sign-in system sends it. A name finds nothing, because the broker keeps no names; an officer
who is not told which identifier to type types a name. So the lookup form names this school's
identifier in plain words, with its technical name in brackets for the school's ICT staff.

Each administrator's lookups are limited (`[rate_limits] student_lookup`, 30 a minute and 300 a
day by default): where identifiers can be guessed (student numbers), one account, or a stolen
one, could otherwise link every receipt code to a student in minutes. Every lookup that passed
the form's checks counts, found or not, in the broker's store with the rate limits' counters
(broker/web/rate_limits.py), so every worker counts together in Redis.
"""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from broker.core.catalogue import CATALOGUE
from broker.core.model import Protocol, School
from broker.web.portal.school_forms import StudentLookupForm
from broker.web.rate_limits import RateLimiter, limit_items

LOOKUP_SCOPE = "student_lookup"

# In plain words, per subject; the technical name follows in brackets (`identifier_wording`).
PLAIN_WORDS = {
    "eck_id": _l("the student's ECK iD"),
    "name_id": _l("the student's fixed code in your sign-in system"),
    "sub": _l("the student's code at your OpenID provider"),
    "oid": _l("the student's object id in Entra ID"),
    "username": _l("the student's user name at your school"),
    "student_number": _l("the student's number at your school"),
}


def _technical_name(school: School) -> str:
    """The identifier as ICT staff know it: the attribute or claim the sign-in system sends."""
    subject = school.subject_attribute
    if school.use_eck_id:
        return "ECK iD, eck_id"
    if school.protocol is Protocol.SAML:
        if subject == "name_id":
            return "SAML persistent NameID"
        attribute = CATALOGUE.get(subject)
        return f"{subject}, SAML {attribute.plain_name}" if attribute else subject
    if subject in ("sub", "name_id"):  # an OpenID school's name_id is its `sub` (rp_claims.py)
        return "OpenID Connect sub"
    attribute = CATALOGUE.get(subject)
    return (
        f"{subject}, OpenID Connect {attribute.claim}" if attribute else f"OpenID Connect {subject}"
    )


def subject_key(school: School) -> str:
    """The key a school's subject is shown by: an OpenID school's `name_id` is its `sub`
    (rp_claims.py), an ECK iD school's is `eck_id`."""
    if school.use_eck_id:
        return "eck_id"
    if school.protocol is Protocol.OIDC and school.subject_attribute == "name_id":
        return "sub"
    return school.subject_attribute


def identifier_wording(school: School) -> str:
    """This school's lookup identifier, "plain words (technical name)", in the page's language;
    a claim set from the command line that has no plain words is named by the claim only."""
    plain = PLAIN_WORDS.get(subject_key(school))
    if plain is None:
        said: str = gettext(
            "the value your OpenID provider sends for the student as %(claim)s",
            claim=school.subject_attribute,
        )
        return said
    return f"{plain} ({_technical_name(school)})"


def lookup_form(school: School, *, empty: bool = False) -> StudentLookupForm:
    """The lookup form (the POSTed one, when there is one, unless `empty`: a lookup that found
    the student's receipts does not show the identifier again), telling what to type."""
    form = StudentLookupForm(formdata=None) if empty else StudentLookupForm()
    form.identifier.description = gettext(
        "Your school finds a student's receipts by %(identifier)s. Type it exactly as your "
        "sign-in system sends it: a name finds nothing, because the broker keeps no names. It "
        "is used once to find the student's codes and is not kept.",
        identifier=identifier_wording(school),
    )
    return form


def lookup_spent(admin_id: int) -> tuple[str, int] | None:
    """Count this lookup of the administrator's; when a limit is spent, (its window: "minute",
    "day", ..., the epoch second from which the account may look up again). Counted before
    anything is looked up, so lookups sent at once get no more than the limit between them."""
    limiter: RateLimiter = current_app.extensions["ketenbroker_rate_limiter"]
    items = limit_items(limiter.limits.student_lookup)
    spent = limiter.spent_until(LOOKUP_SCOPE, items, f"admin-{admin_id}")
    if spent is None:
        return None
    item, until = spent
    return item.GRANULARITY.name, until
