"""Human names for things the core names by code: attributes, and the errors' public messages.

The core speaks English identifiers and English sentences; a student reads them here, in the
language of the page. The tables hold the English messages (marked with `N_` for extraction) and
translate them with the request's catalogue (`page_translations`, looked up once per request) when
asked: a lazy string would look the catalogue up again through Flask-Babel for every label (about
25 µs each; four or more on every information notice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo

from babel import Locale
from babel.dates import format_datetime
from flask import Flask
from markupsafe import Markup

from broker.config import Organization
from broker.core.errors import N_, BrokerError, Phrase, SchoolSaid
from broker.core.model import Declaration, Service
from broker.web.i18n import current_language, page_translations

# Canonical names from attributes.md, plus the chain pseudonym that every service receives.
_ATTRIBUTE_LABELS = {
    "given_name": N_("First name"),
    "family_name": N_("Last name"),
    "display_name": N_("Full name"),
    "email": N_("E-mail address"),
    "username": N_("User name"),
    "student_number": N_("Student number"),
    "affiliation": N_("Role at school"),
    "school_id": N_("School code (BRIN)"),
    "school_name": N_("School name"),
    "groups": N_("Classes and groups"),
    "eck_id": N_("ECK iD"),
    "pseudonym": N_("Pseudonym"),
    # Released beside the new one during a pseudonym key rotation (pseudonym_rotation.py).
    "previous_pseudonym": N_("Previous pseudonym (during a key change)"),
}

# A refused LogoutRequest (web/logout_refusal.py): whatever the refusal's reason, the page says
# that the student may still be logged in, not that a sign-in failed.
LOGOUT_REFUSED_TITLE = N_("Logging out did not work")
LOGOUT_REFUSED = N_(
    "Logging out did not work: the request to log you out could not be accepted here. "
    "You may still be logged in, here and at learning platforms."
)
# A logout the store was down for that the broker could not check, or that the store was needed
# to go on with (web/errors.py, `logout_not_done_page`): nothing ended, the student may still be
# logged in. The page's steps say to wait and try again (a 503's); this, to close the browser
# on a shared computer.
LOGOUT_NOT_DONE = N_(
    "Logging out did not work just now. You may still be logged in, here and at learning "
    "platforms. Are you on a computer you share with others? Then close every window of your "
    "browser if trying again does not work."
)

# The errors' public messages are class attributes, not `_()` calls, so pybabel cannot see them
# in broker/core/errors.py (or beside the adapters that define more); this list puts them in the
# catalogue. A test checks every BrokerError subclass's message for a Dutch translation, so a new
# error cannot slip through.
ERROR_MESSAGES: tuple[str, ...] = (
    N_("Something went wrong on this website."),
    N_("The request could not be accepted."),
    N_("This learning platform is not known here."),
    N_("This school is not known here."),
    N_("The sign-in message could not be verified."),
    N_("This learning platform asked for a way of signing in that is not offered here."),
    N_(
        "This learning platform's address for receiving sign-ins is not secure (no https), so "
        "you cannot be signed in to it here. Please tell your school."
    ),
    N_("Something went wrong with this request. Tell your school's ICT contact."),
    N_("Your school's sign-in service did not complete the login."),
    N_("Your school's sign-in service did not sign you in."),
    N_("Your school answered a sign-in attempt that is already over."),
    N_(
        "Signing in at your school took too long. Please try again; if it keeps happening, "
        "tell your school."
    ),
    N_("Your school's sign-in service did not answer in time. Please try again in a few minutes."),
    N_("Your school has not released what this platform requires."),
    N_("Your school's sign-in service did not send what is needed to sign you in."),
    N_(
        "Your school's sign-in service sent an identifier for you that may change, and "
        "signing in needs one that stays the same. Only your school can change this."
    ),
    N_(
        "Your school's sign-in service sends your e-mail address as your identifier, and that "
        "can change or pass to someone else. Signing in needs one that stays yours. Only your "
        "school can change this."
    ),
    N_("Your school's sign-in was not strong enough for this platform."),
    N_("This platform asks you to sign in at your school again. Please start again."),
    N_("This sign-in took too long or was already used. Please start again."),
    N_("This page with your data has expired. Open it again to see your data."),
    N_(
        "Your browser did not send back the cookie this sign-in needs: it blocks cookies for "
        "this website, or they were deleted."
    ),
    N_("Signing in is not possible right now. Please try again in a moment."),
    N_("This website is not set up correctly."),
    N_("This platform must first show you what it receives. Please start again."),
    N_(
        "You signed in as a different student than this platform expected. "
        "Please start again at the platform."
    ),
    N_(
        "You signed in with an account that is not your school's. "
        "Please start again and sign in with your school account."
    ),
    N_("Signing in with your school is not fully set up here yet. Please tell your school."),
    N_("You went back to the learning platform without signing in."),
    N_(
        "Your school account does not belong to the school you chose. "
        "Choose the school your account belongs to and sign in again."
    ),
    N_(
        "Your school's sign-in did not say which school your account belongs to, so it cannot "
        "be used for the school you chose. Choose your school again; if it keeps happening, "
        "tell your school."
    ),
    # broker/registry/errors.py
    N_("The request contains a NUL character, which the broker does not accept."),
    N_("A school can only release attributes the platform declared it needs."),
    N_("Schools on one identity provider must have the same metadata."),
    N_("Sign-ins through an identity provider that several schools share must name the school."),
    N_("A school on a school board's identity provider needs its BRIN as id."),
    N_("An entry with this identifier already exists."),
    N_("This service id was used before; choose another."),
    N_("This chain is not known to the broker."),
    # broker/core/chain_ids.py (the portal's id fields say it too)
    N_("Use lower-case letters, digits and hyphens (at most 63)."),
    N_("This publisher is not known to the broker."),
    N_("This invitation link is not valid (any more). Ask for a new invitation."),
    N_("An invitation for this e-mail address is open already."),
    N_("This administrator account does not exist (any more)."),
    N_("The last operator account cannot be removed."),
    N_("Your school has switched this learning platform off."),
    N_("The metadata changed meanwhile."),
    N_("The school's identity provider changed meanwhile."),
    N_("The client changed meanwhile."),
    N_("This publisher still has services."),
    N_("This identity provider is not known to the broker."),
    N_("This chain still has services."),
    N_("This chain is in a pseudonym key migration window."),
    # broker/accounts/passwords.py
    N_("Choose a password of at least 12 characters."),
    # broker/oidc/registration.py
    N_("The OpenID Connect client registration is not usable."),
    # broker/oidc/end_session.py
    N_("This logout request could not be accepted."),
    # broker/core/errors.py (LogoutStoreUnavailable: the student's logout, the store down)
    N_(
        "Logging out did not work just now. This browser no longer "
        "uses your session here, but you may still be logged in at learning platforms and at "
        "your school. Close your browser completely (every window) to be sure you are logged out."
    ),
    # web/logout_refusal.py
    LOGOUT_REFUSED,
    # web/errors.py (a logout with the store down, not checked or not yet started)
    LOGOUT_NOT_DONE,
    # broker/saml/metadata_check.py
    N_("The SAML metadata is not usable."),
    # broker/core/chain_move.py
    N_("The service cannot move now: it or a chain concerned is in a pseudonym migration window."),
    # broker/core/sealed_secrets.py (SecretUnreadable: staff sign-in, invitations)
    N_(
        "The broker cannot open a secret it keeps for this account. "
        "Nothing was changed; please tell the broker's operator."
    ),
    # broker/core/sealed_secrets.py (SecretInClear: staff sign-in, invitations)
    N_(
        "The broker does not accept the secret stored for this account: it was not stored by "
        "the broker. Nothing was changed; please tell the broker's operator."
    ),
    # broker/registry/errors.py (DeclarationsChanged)
    N_(
        "The publisher changed what this platform asks for while you had this page open. "
        "Read it again and save your choice again."
    ),
    # broker/registry/errors.py (PolicyChanged)
    N_(
        "A colleague saved a choice for this platform while you had this page open. Check the "
        "current choice below and save yours again."
    ),
)


# Page titles and messages for errors that do not come from the core (Werkzeug's 404 and 405,
# a failed CSRF check, a rate limit) and titles for every status the error page shows.
_ERROR_TITLES = {
    400: N_("This sign-in cannot continue"),
    403: N_("Your school has not shared enough"),
    404: N_("Page not found"),
    405: N_("This page cannot be opened this way"),
    413: N_("Too much was sent"),
    429: N_("Too many attempts"),
    502: N_("Your school's sign-in did not work"),
    503: N_("Briefly unavailable"),
}
_DEFAULT_ERROR_TITLE = N_("Something went wrong")
# An administrator in a portal signs nobody in and shares nothing: titles of their own.
_PORTAL_ERROR_TITLES = {
    400: N_("This request cannot be carried out"),
    403: N_("No access"),
}
# Errors whose status title would say the wrong thing (a 403 that is not about sharing).
_CODE_TITLES = {
    "cookies_blocked": N_("Allow cookies to sign in"),
    "my_data_expired": N_("This page has expired"),
    "assurance_not_met": N_("Your school's sign-in was not strong enough"),
    "authentication_too_old": N_("Sign in at your school again"),
    "school_timeout": N_("Your school's sign-in did not answer"),
    "unexpected_student": N_("Signed in as another student"),
    "hosted_domain_mismatch": N_("Not your school account"),
    "hosted_domain_missing": N_("Signing in with your school is not set up"),
    "client_secret_unreadable": N_("Signing in with your school is not set up"),
    "school_sso_not_https": N_("Signing in with your school is not set up"),
    "acs_not_https": N_("This learning platform is not set up safely"),
    "sealed_secret_unreadable": N_("A stored secret cannot be opened"),
    "sealed_secret_in_clear": N_("A stored secret is not accepted"),
    "other_school": N_("Your account belongs to another school"),
    "school_not_asserted": N_("Which school does your account belong to?"),
    "unsigned_status": N_("Your school did not sign you in"),
    "upstream_status": N_("Your school did not sign you in"),
    # StaleSchoolAnswer: SAML's code and the OIDC callback's.
    "stale_answer": N_("This sign-in attempt is over"),
    "stale_state": N_("This sign-in attempt is over"),
    "answer_out_of_time": N_("Signing in at your school took too long"),
    "name_id_not_persistent": N_("Your school's sign-in needs a change"),
    "name_id_is_address": N_("Your school's sign-in needs a change"),
    "service_switched_off": N_("This learning platform is switched off"),
    "logout_store_unavailable": N_("You may not be logged out"),
}
# The same, naming the learning platform when the page knows it.
_NAMED_CODE_TITLES = {
    "service_switched_off": N_("Your school has switched %(service)s off"),
}
# What the school answered when it said no (UnsignedSchoolRefusal, unverified; SchoolRefused):
# the page says what the school answered, never that it is so.
_SCHOOL_SAID = {
    "authn_failed": N_("Your school's sign-in service answered that signing in did not succeed."),
    "request_denied": N_(
        "Your school's sign-in service answered that it does not allow this sign-in."
    ),
    "no_authn_context": N_(
        "Your school's sign-in service answered that it cannot sign you in as securely as this "
        "platform requires."
    ),
    "unavailable": N_("Your school's sign-in service answered that it is not available right now."),
    "name_id_policy": N_(
        "Signing in does not work right now: something is not set up right at your school. "
        "Trying again will not help."
    ),
}
# The heading for a "no" that only the school can change (its ICT contact reads the rest).
_SCHOOL_SAID_TITLES = {
    "name_id_policy": N_("Your school needs to change a setting"),
}

_HTTP_ERROR_MESSAGES = {
    400: N_(
        "You waited too long, or the page was opened twice. Start again at your learning platform."
    ),
    404: N_(
        "This page does not exist. Check the address, or start again from the learning platform."
    ),
    405: N_("This page cannot be opened this way. Please start again from the learning platform."),
    413: N_(
        "Your browser sent more than this website accepts. Please start again from the "
        "learning platform."
    ),
    429: N_("There were too many attempts in a short time. Wait a minute, then try again."),
}
# The portals' administrators did not come from a learning platform: their pages say so.
_PORTAL_HTTP_ERROR_MESSAGES = {
    404: N_("This page does not exist. Check the address, or go to the portal's start page."),
    405: N_("This page cannot be opened this way. Go to the portal's start page and try again."),
    # The portal's own pages answer a form with its errors; this is for a request no page of
    # the portal sends (a value none of its fields offers).
    400: N_(
        "The request could not be carried out, and nothing was changed. Go to the portal's start "
        "page and try again."
    ),
    413: N_("You sent more than the portal accepts (512 kB at most). Nothing was changed."),
}


def _translated(message: str) -> str:
    translated: str = page_translations().ugettext(message)
    return translated


def error_title(
    status: int,
    code: str = "",
    *,
    portal: bool = False,
    service_name: str | None = None,
    said: SchoolSaid = "",
) -> str:
    """The heading of the error page for an HTTP status (or, where the status would mislead,
    for the error's reason `code`, or what the school's "no" `said`), in the language of the
    request; `portal`: on a portal page, read by an administrator; `service_name`: the learning
    platform, named where a title says it (a platform switched off)."""
    said_title = _SCHOOL_SAID_TITLES.get(said)
    if said_title is not None:
        return _translated(said_title)
    named = _NAMED_CODE_TITLES.get(code) if service_name else None
    if named is not None:
        return _translated(named) % {"service": service_name}
    portal_title = _PORTAL_ERROR_TITLES.get(status) if portal else None
    title = (
        portal_title or _CODE_TITLES.get(code) or _ERROR_TITLES.get(status, _DEFAULT_ERROR_TITLE)
    )
    return _translated(title)


def http_error_message(status: int, *, portal: bool = False) -> str:
    """The message for an HTTP error that is not a BrokerError (404, 405, CSRF's 400, 429);
    `portal`: on a portal page, which has no learning platform to go back to."""
    message = _PORTAL_HTTP_ERROR_MESSAGES.get(status) if portal else None
    return _translated(message or _HTTP_ERROR_MESSAGES.get(status, BrokerError.public_message))


# The students' pages' name for the site when the operator configured none of its own.
_NEUTRAL_SITE_NAME = N_("Sign in with your school")


def site_name(organization: Organization) -> str:
    """The name in the header and title of the students' pages, in the request's language:
    the operator's display name ([organization] display_name_nl / display_name_en, the other
    language's when one is set), else a neutral "Sign in with your school". Never the product's
    name (students' texts do not say "broker"); the portals name the product themselves."""
    own, other = (
        (organization.display_name_nl, organization.display_name_en)
        if current_language() == "nl"
        else (organization.display_name_en, organization.display_name_nl)
    )
    return own or other or _translated(_NEUTRAL_SITE_NAME)


def install_site_name(app: Flask, organization: Organization) -> None:
    """`site_name()` for the app's templates (base.html), naming `organization`'s site."""
    app.jinja_env.globals["site_name"] = lambda: site_name(organization)


def school_said(said: SchoolSaid) -> str | None:
    """What a school's "no" answered, in the language of the page; None when it said
    nothing the page words (the error's own message then stands)."""
    message = _SCHOOL_SAID.get(said)
    return None if message is None else _translated(message)


def attribute_label(canonical: str) -> str:
    """The localised name of a canonical attribute, for error and notice pages.

    An attribute the core learns before this table does is shown by its code rather than
    breaking the page that explains a refused login.
    """
    label = _ATTRIBUTE_LABELS.get(canonical)
    return canonical if label is None else _translated(label)


# The catalogue's order (attributes.md): lists of released attributes read the same everywhere.
_ORDER = {name: position for position, name in enumerate(_ATTRIBUTE_LABELS)}


def in_catalogue_order(names: Iterable[str]) -> list[str]:
    """Attribute codes in the catalogue's order (unknown codes last)."""
    return sorted(names, key=lambda name: (_ORDER.get(name, len(_ORDER)), name))


def attribute_labels(names: Iterable[str]) -> list[str]:
    """The localised names of attributes in the catalogue's order (unknown codes last), for
    lists a person reads ("First name, Role at school"), never the codes themselves."""
    return [attribute_label(name) for name in in_catalogue_order(names)]


def labelled_purposes(service: Service | None, names: Iterable[str]) -> list[tuple[str, str]]:
    """What a student reads of attributes released to `service` (the notice, the my-data page):
    each one's name and why the platform needs it (its declared purpose; "" when it declares
    none, or the service left the registry), in the catalogue's order on every page."""
    shown: list[tuple[str, str]] = []
    for name in in_catalogue_order(names):
        declaration = service.declaration(name) if service is not None else None
        purpose = declared_purpose(declaration) if declaration is not None else ""
        shown.append((attribute_label(name), purpose))
    return shown


def declared_purpose(declaration: Declaration) -> str:
    """Why the platform needs an attribute, in the language of the page: the publisher's
    English text on English pages when it gave one, else its Dutch text, marked as Dutch
    (markup: `<span lang="nl">`, the text escaped) so that a screen reader reads it as Dutch,
    not as English words (WCAG 3.1.2, language of parts)."""
    language = current_language()
    purpose = declaration.purpose_in(language)
    written_in = declaration.purpose_language(language)
    if written_in == language:
        return purpose
    return Markup('<span lang="{}">{}</span>').format(written_in, purpose)


def localised_problem(message: str, params: Mapping[str, object]) -> str:
    """An English message marked `N_` outside the web layer (an error's `message` and `params`,
    core/errors.py: a metadata check's, a school's OpenID provider check's), in the language of
    the page, its placeholders filled; a value that is a `Phrase` is translated too."""
    text = _translated(message)
    if not params:
        return text
    return text % {
        name: _translated(value) if isinstance(value, Phrase) else value
        for name, value in params.items()
    }


def localised_detail(error: BrokerError) -> str:
    """`localised_problem` of an error's own detail: what went wrong, for an administrator."""
    return localised_problem(error.message, error.params)


def public_message(error: BrokerError) -> str:
    """The error's student-facing message in the language of the current request."""
    return _translated(error.public_message)


def _in_zone(moment: float | datetime, zone: tzinfo) -> datetime:
    """Unix seconds, or a datetime (one without a zone is UTC, as the registry stores them),
    as the time in `zone`."""
    if isinstance(moment, datetime):
        when = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    else:
        when = datetime.fromtimestamp(moment, UTC)
    return when.astimezone(zone)


def shown_time(moment: float | datetime, zone: tzinfo) -> str:
    """A moment as people read it: the date and minute in `zone` (the broker's `time_zone`),
    with the zone's abbreviation (CET, CEST), so it is never mistaken for another zone's. Every
    page of the portals shows times this way."""
    return _in_zone(moment, zone).strftime("%Y-%m-%d %H:%M %Z")


# How a student reads a moment, per language: the month written out (Babel's month names, never
# an abbreviation a child must decode) and the word that joins date and time ("1 december om
# 08:47", "1 December at 08:47"); the second pattern adds the year, for another year's moment.
# The portals keep shown_time's unambiguous form with the zone, the same on every page.
_DAY_PATTERNS = {
    "nl": ("d MMMM 'om' HH:mm", "d MMMM y 'om' HH:mm"),
    "en": ("d MMMM 'at' HH:mm", "d MMMM y 'at' HH:mm"),
}


def shown_day(moment: float | datetime, zone: tzinfo, locale: Locale, now: float) -> str:
    """A moment as a student reads it: day, month name in the page's language and minute in
    `zone` ("1 december om 08:47"), the year only when it is not this year's."""
    when, today = _in_zone(moment, zone), _in_zone(now, zone)
    this_year, other_year = _DAY_PATTERNS.get(locale.language, ("d MMMM HH:mm", "d MMMM y HH:mm"))
    pattern = this_year if when.year == today.year else other_year
    return format_datetime(when, pattern, tzinfo=zone, locale=locale)
