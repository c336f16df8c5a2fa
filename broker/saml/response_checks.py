"""The broker's own checks of a school's verified Response, on top of pysaml2's.

pysaml2 accepts a bearer confirmation for any Recipient unless handed conversation data, an
assertion without AudienceRestriction, a signed Response without Destination, and lifetimes of
any length (pitfalls.md: do not rely on the peer library). Each rule here refuses with its own
reason code; together they bind the assertion to this broker, this login and a short window.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from saml2.time_util import str_to_time

from broker.core.errors import InvalidMessage

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
# xs:dateTime in UTC as SAML stacks write it; ASCII digits only, the fraction not captured.
_PLAIN_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]*)?Z"
)


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


def check_response(response: Any, assertion: Any, expect: Expectations) -> Window:
    """Refuse what pysaml2 let through; return the assertion's time window."""
    _check_destination(response, expect)
    _check_audience(assertion, expect)
    _check_bearer_confirmation(assertion, expect)
    issued = saml_epoch(assertion.issue_instant)
    if issued is None or not expect.now - expect.max_age - expect.skew <= issued:
        raise InvalidMessage("assertion issued too long ago", code="time_window")
    if issued > expect.now + expect.skew:
        raise InvalidMessage("assertion issued in the future", code="time_window")
    conditions = assertion.conditions
    expires = saml_epoch(conditions.not_on_or_after if conditions is not None else None)
    if expires is None:
        raise InvalidMessage("assertion without NotOnOrAfter", code="time_window")
    # Whatever NotOnOrAfter says, the broker stops accepting the assertion when it is older
    # than max_age; a ten-year lifetime must not mean a ten-year replay-cache entry.
    return Window(issued, min(expires, issued + expect.max_age) + expect.skew)


def _check_destination(response: Any, expect: Expectations) -> None:
    destination = response.destination
    if destination is None:
        if response.signature is not None:
            # SAML bindings 3.5.5.2: a signed message must say where it is going.
            raise InvalidMessage("signed response without Destination", code="wrong_destination")
        return
    if destination != expect.acs_url:
        raise InvalidMessage("response for another destination", code="wrong_destination")


def _check_audience(assertion: Any, expect: Expectations) -> None:
    conditions = assertion.conditions
    restrictions = conditions.audience_restriction if conditions is not None else []
    if not restrictions:
        raise InvalidMessage("assertion without AudienceRestriction", code="wrong_audience")
    for restriction in restrictions:
        audiences = {(a.text or "").strip() for a in restriction.audience}
        if expect.sp_entity_id not in audiences:
            raise InvalidMessage("assertion for another audience", code="wrong_audience")


def _check_bearer_confirmation(assertion: Any, expect: Expectations) -> None:
    subject = assertion.subject
    confirmations = subject.subject_confirmation if subject is not None else []
    for confirmation in confirmations:
        data = confirmation.subject_confirmation_data
        if confirmation.method != BEARER or data is None:
            continue  # other methods prove nothing for a browser login
        expires = saml_epoch(data.not_on_or_after)
        if (
            data.recipient == expect.acs_url
            and data.in_response_to == expect.request_id
            and expires is not None
            and expect.now < expires + expect.skew
        ):
            return
    raise InvalidMessage("no valid bearer confirmation for this login", code="wrong_recipient")
