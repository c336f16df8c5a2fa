"""The school's login instant against the broker's clock and the time of leaving
(broker/login/authn_instant.py); the flow's use of it is in test_sealed_and_flow.py."""

from __future__ import annotations

import pytest

from broker.core.errors import FreshLoginIgnored, InvalidMessage, StaleAuthentication
from broker.login.authn_instant import check_authn_instant
from broker.login.login_model import LoginRecord, LoginRequest

NOW = 1_700_000_000.0
SKEW = 60
SENT = NOW - 30  # the student left for the school half a minute ago


@pytest.mark.parametrize("fresh_since", [None, SENT])
@pytest.mark.parametrize("instant", [NOW + SKEW + 1, NOW + 3600, 4_102_444_800.0])  # … 2100
def test_an_instant_in_the_future_is_refused(instant: float, fresh_since: float | None) -> None:
    with pytest.raises(InvalidMessage) as refused:
        check_authn_instant(instant, now=NOW, skew=SKEW, fresh_since=fresh_since)
    assert refused.value.code == "authn_instant_in_future"


@pytest.mark.parametrize("instant", [NOW + SKEW, NOW, SENT, SENT - SKEW])
def test_a_fresh_login_within_the_skew_passes(instant: float) -> None:
    check_authn_instant(instant, now=NOW, skew=SKEW, fresh_since=SENT)


@pytest.mark.parametrize("instant", [SENT - SKEW - 1, NOW - 3600, 0.0])
def test_a_login_from_before_the_student_left_is_refused_when_a_fresh_one_was_asked(
    instant: float,
) -> None:
    with pytest.raises(FreshLoginIgnored) as refused:
        check_authn_instant(instant, now=NOW, skew=SKEW, fresh_since=SENT)
    assert refused.value.code == "fresh_login_ignored"
    # A kind of stale login: the service hears login_required / AuthnFailed, a 403 page.
    assert isinstance(refused.value, StaleAuthentication) and refused.value.status == 403


def test_without_a_fresh_login_asked_an_old_login_passes_here() -> None:
    """Its age is for max_age to judge (flow.complete), not this check."""
    check_authn_instant(NOW - 86_400, now=NOW, skew=SKEW, fresh_since=None)


def test_the_time_the_school_was_asked() -> None:
    request = LoginRequest("uitgever", force_authn=True)
    assert LoginRecord("id", request, 10.0).sent_to_school_at is None  # nothing went upstream
    sent = LoginRecord("id", request, 10.0, "99XX00", "_req", upstream_at=25.0)
    assert sent.sent_to_school_at == 25.0
    # A request prepared with the discovery page: no time of leaving, the record's birth bounds it.
    prepared = LoginRecord("id", request, 10.0, "99XX00", "_req", upstream_at=None)
    assert prepared.sent_to_school_at == 10.0
