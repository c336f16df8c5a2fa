"""What the checks of a school's Response expect and yield, its times held to the broker's
clock, and SAML instants read fast.

The checks themselves are assertion_reader.py's: `Expectations` is what they hold a Response to
(this broker's ACS and entity id, this login's request, now, the skew, the maximum age), `Window`
what they hand back for the replay cache. `check_issue_instant`, `check_not_before` and
`check_not_on_or_after` hold each time of the answer to the broker's clock, with the skew either
way, and refuse one out of bounds as `SchoolAnswerOutOfTime` (the clock page). `saml_epoch` reads
every SAML instant the broker checks, in school Responses and in logout messages
(logout_messages.py). `check_issuer_format` holds every inbound message's Issuer to the entity
format, `issuer_of` reads it as pysaml2 does. `check_destination` holds a message's
Destination to the endpoint it reached, `destination_of` reads it.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree
from saml2 import saml
from saml2.time_util import str_to_time

from broker.core.errors import (
    AnswerTimeRefused,
    InvalidMessage,
    SchoolAnswerOutOfTime,
    offset_words,
)

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
# The one Issuer Format a Response or Assertion of the Web Browser SSO profile may name (SAML
# profiles 4.1.4.2); an Issuer without Format means the same (SAML core 2.2.5).
ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
# xs:dateTime in UTC as SAML stacks write it; ASCII digits only, the fraction not captured.
_PLAIN_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]*)?Z"
)
# An xs:dateTime zone offset at the end (digits only, so the log line quotes nothing else).
_ZONE_OFFSET = re.compile(r"[+-][0-9]{2}:[0-9]{2}$")


def check_issuer_format(issuer: etree._Element | None) -> None:
    """Refuse an Issuer of another Format than entity (SAML profiles 4.1.4.1 for an
    AuthnRequest, 4.1.4.2 for a Response and its Assertion, 4.4.4.1 and 4.4.4.2 for logout
    messages): a persistent or unspecified name that happens to equal an entity id is not that
    entity. No Issuer is left to the caller."""
    if issuer is not None and issuer.get("Format", ENTITY_FORMAT) != ENTITY_FORMAT:
        raise InvalidMessage("issuer of another format than entity", code="issuer_format")


def issuer_of(doc: etree._Element) -> str:
    """The entity id `doc`'s own Issuer names ("" without one): the one reading of an inbound
    message's Issuer that every lookup and check after it uses. Refused: an Issuer of another
    Format (`check_issuer_format`), and one with anything but text in it (a comment, a
    processing instruction, an element; `issuer_not_text`): lxml's `.text` stops at a comment
    where pysaml2 joins the text around it, so `https://idp.a<!---->.evil` would name
    `https://idp.a` to the broker's lookups and `https://idp.a.evil` to the signature check."""
    issuer = doc.find(f"{{{saml.NAMESPACE}}}Issuer")
    check_issuer_format(issuer)
    if issuer is None:
        return ""
    if len(issuer):
        raise InvalidMessage("Issuer with more than text in it", code="issuer_not_text")
    return element_text(issuer).strip()


def destination_of(doc: etree._Element) -> str | None:
    """The Destination `doc` names, None when it names none: no attribute, or an empty one.
    An empty one names no endpoint, and SAML stacks write it so: pysaml2 answers a
    LogoutRequest over SOAP with `Destination=""` (its `response_args`), and fills in the
    endpoint its metadata lists for a binding, "" when it lists none. pysaml2 reads it the same
    way when it checks one (`if destination and …`)."""
    return doc.get("Destination") or None


def check_destination(doc: etree._Element, kind: str, destination: str, *, required: bool) -> None:
    """The Destination `doc` names must be `destination`; `required`: it must name one. SAML
    core 3.2.1 and 3.2.2 hold only a Destination that is present to the endpoint; the Redirect
    and POST bindings require one of a signed message (3.4.5.2, 3.5.5.2), SOAP does not."""
    named = destination_of(doc)
    if named != destination and (required or named is not None):
        raise InvalidMessage(f"{kind} for another Destination", code="wrong_destination")


def check_parsed_issuer(parsed: Any, issuer: str) -> None:
    """pysaml2 chose the keys it verified with by the Issuer as it read it: the message counts
    only if that is the issuer the broker's own checks used (`issuer_of`)."""
    read = parsed.issuer.text if parsed.issuer is not None else None
    if str(read or "").strip() != issuer:
        raise InvalidMessage("Issuer read two ways", code="issuer_mismatch")


def element_text(element: etree._Element) -> str:
    """An element's text as pysaml2 read it: comments dropped and the text around them joined
    (`victim<!---->.attacker` is one value, never `victim`), up to the first child element."""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            break
        parts.append(child.tail or "")
    return "".join(parts)


@dataclass(frozen=True)
class Expectations:
    acs_url: str
    sp_entity_id: str
    request_id: str
    now: float
    skew: int
    max_age: int  # how old an answer may be when it arrives: the login record's lifetime


def check_issue_instant(
    value: str | None, expect: Expectations, what: str, *, signed: bool = True
) -> float:
    """An IssueInstant (the Response's or the Assertion's) within the login's lifetime plus the
    skew before now, and at most the skew ahead; returns it. The record that holds this login's
    request lives `max_age` at most, so an answer issued longer ago (by the broker's clock, less
    the skew) was issued before the request it answers: the school's clock is off. pysaml2 took
    a day either way.

    `signed`: whether the school's signature covers it. One it does not cover (an unsigned
    Response's, beside a signed Assertion) is anybody's to set, so out of bounds it says nothing
    of the school's clock: a plain `time_window` refusal whose log line says so."""
    issued = saml_epoch(value, what=what)
    if issued is None:  # the schema requires it; never read as "now"
        raise InvalidMessage(f"{what} missing", code="time_window")
    if not expect.now - expect.max_age - expect.skew <= issued <= expect.now + expect.skew:
        accepted = f"{expect.max_age + expect.skew} s behind to {expect.skew} s ahead"
        if not signed:
            raise AnswerTimeRefused(
                f"{offset_words(what, issued - expect.now, accepted)}; response_signed=no: "
                "not covered by the school's signature, so nothing is said of its clock"
            )
        raise SchoolAnswerOutOfTime(what, issued - expect.now, accepted)
    return issued


def check_not_before(not_before: float | None, expect: Expectations, what: str) -> None:
    """A NotBefore, when given, not later than now plus the skew."""
    if not_before is not None and not_before > expect.now + expect.skew:
        raise SchoolAnswerOutOfTime(what, not_before - expect.now, f"at most {expect.skew} s ahead")


def check_not_on_or_after(expires: float, expect: Expectations, what: str) -> None:
    """A NotOnOrAfter not passed: later than now less the skew."""
    if expect.now >= expires + expect.skew:
        raise SchoolAnswerOutOfTime(
            what, expires - expect.now, f"later than {expect.skew} s behind"
        )


def saml_epoch(
    value: str | None, *, code: str = "time_window", what: str = "a time"
) -> float | None:
    """A SAML dateTime as epoch seconds (None when absent); unreadable is a refusal, with
    `code` and, for the operator's log line, which time (`what`) and why.

    SAML core 1.3.3: every SAML time is in UTC, written with 'Z'. One without a zone
    designator is refused, not read as UTC (pysaml2's `str_to_time` did: an IdP writing Dutch
    local time then looked an hour off, and the log blamed its clock); one with an offset
    ("+01:00") is refused naming the offset (pysaml2 had no pattern for it).

    The form every SAML stack sends (`2026-11-29T02:06:12Z`, with or without a fraction) is
    read directly, about ten times faster than `str_to_time` (`time.strptime`; an ACS reads
    eight instants). It yields the same value: the fraction dropped, the date and time checked
    by `datetime`. Anything else with a 'Z', or a value `datetime` refuses (a leap second
    `strptime` accepted), is left to `str_to_time` as before, so what it means does not change
    (tests/unit/test_saml_epoch.py compares the two)."""
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
    if not value.endswith(("Z", "z")):  # strptime matched the letter case-blind
        offset = _ZONE_OFFSET.search(value)
        raise AnswerTimeRefused(
            f"{what} has the zone offset {offset.group(0)}, not UTC with 'Z' (SAML core 1.3.3)"
            if offset is not None
            else f"{what} has no time zone 'Z' (SAML core 1.3.3)",
            code=code,
        )
    try:
        return float(calendar.timegm(str_to_time(value)))
    except (TypeError, ValueError, AttributeError):
        # AttributeError: what str_to_time raises for a form it has no pattern for (a space
        # for the T); a refusal, not a crash.
        raise InvalidMessage("unreadable time in a SAML message", code=code) from None


@dataclass(frozen=True)
class Window:
    issued: float  # the assertion's IssueInstant (the store epoch rule compares it)
    accept_until: float  # when it stops being acceptable (the replay cache keeps its id so long)
