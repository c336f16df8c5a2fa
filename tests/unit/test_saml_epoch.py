"""`saml_epoch` reads the common form of a SAML instant itself; it must accept, refuse and mean
exactly what pysaml2's `str_to_time` (its only reader before) did, for every form."""

from __future__ import annotations

import calendar

import pytest
from saml2.time_util import str_to_time

from broker.core.errors import AnswerTimeRefused, InvalidMessage
from broker.saml.response_checks import saml_epoch

SAME_AS_BEFORE = (
    "2026-11-29T02:06:12Z",
    "2026-11-29T02:06:12.5Z",
    "2026-11-29T02:06:12.999999Z",
    "2026-11-29T02:06:12.Z",  # a dot without digits: pysaml2's pattern allows it
    "2024-02-29T23:59:59Z",  # a leap day
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-11-29T23:59:60Z",  # a leap second: strptime took it, datetime does not
    "2026-1-2T3:04:05Z",  # single digits: strptime took them
    "2026-11-29t02:06:12z",  # strptime matched the letters case-blind
)
REFUSED = (
    "2026-02-30T00:00:00Z",
    "2025-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-11-29T24:00:00Z",
    "2026-11-29T02:60:00Z",
    "2026-11-29T02:06:62Z",
    "0000-01-01T00:00:00Z",
    "2026-11-29 02:06:12Z",
    "yesterday",
    "2026-11-29T02:06:12ZZ",
)
# SAML core 1.3.3: UTC, written with 'Z'. pysaml2 read a time without a zone as UTC (an IdP in
# Dutch local time looked an hour off); it had no pattern for an offset. Both are refused now,
# each saying why.
NOT_UTC = {
    "2026-11-29T02:06:12": "has no time zone 'Z' (SAML core 1.3.3)",
    "2026-11-29T02:06:12.123": "has no time zone 'Z' (SAML core 1.3.3)",
    "2026-11-29T02:06:12+01:00": "has the zone offset +01:00, not UTC with 'Z' (SAML core 1.3.3)",
    "2026-11-29T02:06:12-05:00": "has the zone offset -05:00, not UTC with 'Z' (SAML core 1.3.3)",
}


def before(value: str) -> float:
    return float(calendar.timegm(str_to_time(value)))


@pytest.mark.parametrize("value", SAME_AS_BEFORE)
def test_an_instant_means_what_it_meant_before(value: str) -> None:
    assert saml_epoch(value) == before(value)


@pytest.mark.parametrize("value", REFUSED)
def test_an_instant_refused_before_is_still_refused(value: str) -> None:
    # str_to_time fails with AttributeError on forms it has no pattern for; saml_epoch used to
    # let that escape (a server error) and now refuses those too, with the caller's code.
    with pytest.raises((ValueError, AttributeError)):
        before(value)
    with pytest.raises(InvalidMessage) as refused:
        saml_epoch(value, code="stale_request")
    assert refused.value.code == "stale_request"


@pytest.mark.parametrize("value", list(NOT_UTC))
def test_an_instant_not_in_utc_with_z_is_refused_saying_so(value: str) -> None:
    with pytest.raises(AnswerTimeRefused) as refused:
        saml_epoch(value, code="stale_request", what="the IssueInstant")
    assert refused.value.code == "stale_request"
    assert refused.value.explanation == f"the IssueInstant {NOT_UTC[value]}"


def test_no_instant_is_none() -> None:
    assert saml_epoch(None) is None
    assert saml_epoch("") is None
