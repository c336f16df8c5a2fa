"""When the school says the student logged in (SAML AuthnInstant, OIDC auth_time), held against
the broker's clock and against the moment the student was sent to the school.

The instant is what every later `max_age` decision rests on (the SSO session keeps it), and the
age checks only ask "not too old": an instant in the future would pass them all, and the
session it opened would count as fresh for ever. So an instant later than now (beyond the
clock skew) is refused as a broken message.

A service that forces a fresh login (SAML ForceAuthn, OIDC prompt=login; also a session of
another student than the service named) has the school asked for one: ForceAuthn, or
prompt=login with max_age=0. An instant from before the student was sent there means the school
answered from its own earlier session instead, and the service did not get what it asked for:
`FreshLoginIgnored`, which it hears (SAML AuthnFailed, OIDC login_required). A service's
`max_age` alone is no such demand: a login that recent is what it asked for, wherever it came
from (a SAML school is asked ForceAuthn only because SAML cannot say max_age), and the flow
checks the age against max_age instead.
"""

from __future__ import annotations

from broker.core.errors import FreshLoginIgnored, InvalidMessage


def check_authn_instant(
    instant: float, *, now: float, skew: int, fresh_since: float | None
) -> None:
    """Refuse a school's login `instant` later than `now` + `skew`, and, when a fresh login was
    asked of the school (`fresh_since`: when the student was sent there), one earlier than
    `fresh_since` - `skew`. Times in epoch seconds."""
    if instant > now + skew:
        raise InvalidMessage("school login instant in the future", code="authn_instant_in_future")
    if fresh_since is not None and instant < fresh_since - skew:
        seconds = int(fresh_since - instant)
        raise FreshLoginIgnored(f"school answered a fresh login with one {seconds} s older")
