"""What the checks of a school's Response expect and yield, and SAML instants read fast.

The checks themselves are assertion_reader.py's: `Expectations` is what they hold a Response to
(this broker's ACS and entity id, this login's request, now, the skew, the maximum age), `Window`
what they hand back for the replay cache. `saml_epoch` reads every SAML instant the broker
checks, in school Responses and in logout messages (logout_messages.py). `check_issuer_format`
holds every inbound message's Issuer to the entity format.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from saml2.time_util import str_to_time

from broker.core.errors import InvalidMessage

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
# The one Issuer Format a Response or Assertion of the Web Browser SSO profile may name (SAML
# profiles 4.1.4.2); an Issuer without Format means the same (SAML core 2.2.5).
ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
# xs:dateTime in UTC as SAML stacks write it; ASCII digits only, the fraction not captured.
_PLAIN_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]*)?Z"
)


def check_issuer_format(issuer: etree._Element | None) -> None:
    """Refuse an Issuer of another Format than entity (SAML profiles 4.1.4.1 for an
    AuthnRequest, 4.1.4.2 for a Response and its Assertion, 4.4.4.1 and 4.4.4.2 for logout
    messages): a persistent or unspecified name that happens to equal an entity id is not that
    entity. No Issuer is left to the caller."""
    if issuer is not None and issuer.get("Format", ENTITY_FORMAT) != ENTITY_FORMAT:
        raise InvalidMessage("issuer of another format than entity", code="issuer_format")


@dataclass(frozen=True)
class Expectations:
    acs_url: str
    sp_entity_id: str
    request_id: str
    now: float
    skew: int
    max_age: int  # how old an assertion may be when it arrives


def saml_epoch(value: str | None, *, code: str = "time_window") -> float | None:
    """A SAML dateTime as epoch seconds (None when absent); unreadable is a refusal.

    The form every SAML stack sends (`2026-11-29T02:06:12Z`, with or without a fraction) is
    read directly, about ten times faster than pysaml2's `str_to_time` (`time.strptime`; an
    ACS reads eight instants). It yields the same value: the fraction dropped, the date and
    time checked by `datetime`. Anything else, or a value `datetime` refuses (a leap second
    `strptime` accepted), is left to `str_to_time` as before, so what is accepted and what it
    means do not change (tests/unit/test_saml_epoch.py compares the two)."""
    if not value:
        return None
    plain = _PLAIN_INSTANT.fullmatch(value)
    if plain is not None:
        try:
            year, month, day, hour, minute, second = map(int, plain.groups())
            # The range checks strptime made (month, day of that month, hour …).
            datetime(year, month, day, hour, minute, second)
            return float(calendar.timegm((year, month, day, hour, minute, second)))
        except ValueError:
            pass
    try:
        return float(calendar.timegm(str_to_time(value)))
    except (TypeError, ValueError, AttributeError):
        # AttributeError: what str_to_time raises for a form it has no pattern for (a zone
        # offset such as +01:00, a space for the T); a refusal, not a crash.
        raise InvalidMessage("unreadable time in a SAML message", code=code) from None


@dataclass(frozen=True)
class Window:
    issued: float  # the assertion's IssueInstant (the store epoch rule compares it)
    accept_until: float  # when it stops being acceptable (the replay cache keeps its id so long)
