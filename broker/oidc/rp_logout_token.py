"""Checking a logout token from a school's OpenID provider (Back-Channel Logout 1.0 §2.6).

The token is judged like the school's ID tokens (rp_id_token.py: the school's algorithm list,
its published keys, the issuer, our client id in the audience), and then as a logout token:
typed `logout+jwt` or plain `JWT` when it says its type, issued recently (its `iat` within the
allowed age and clock skew), not expired when it carries `exp`, an `events` object with the
back-channel logout member, no `nonce` (so an ID token can never pass as one), a `jti`, and a
`sid`. A token with only `sub` is refused: the broker registers with
`backchannel_logout_session_required` and keeps no index of a student's sessions
(docs/oidc-profile.md). Using a `jti` once is the caller's step (the store's replay guard).
Nothing here logs; every failure has a reason code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.core.errors import InvalidMessage
from broker.core.outside_ids import is_usable_id
from broker.login.school_sessions import MAX_SID_LENGTH
from broker.oidc.backchannel import LOGOUT_EVENT, LOGOUT_TOKEN_TYPE
from broker.oidc.rp_id_token import (
    Expected,
    KeyLookup,
    check_audience,
    check_issuer,
    is_usable_subject,
    time_claim,
    verify_signed_token,
)

LOGOUT_TOKEN = "logout token"  # noqa: S105 - the name of a token kind, not a secret
# A logout token without `exp` counts as fresh this long after its `iat` (the spec leaves the
# window to the relying party; a school's server sends it at once). Also how long its jti is
# remembered when it has no `exp`.
MAX_LOGOUT_TOKEN_AGE = 300
MAX_JTI_LENGTH = 255
MALFORMED = "malformed_logout_token"
# The types a logout token may carry (as `_media_type` reads them). §2.4 recommends `logout+jwt`,
# but Keycloak up to version 24 types its tokens `JWT`, and an untyped token is allowed. What
# keeps an ID token or any other JWT from passing is not the type but the claims, checked below
# for every token: `events` with the back-channel member required, `nonce` refused (§2.4, "Cross-
# JWT confusion"). Any other type is some other kind of token and refused.
ACCEPTED_TYPES = frozenset({LOGOUT_TOKEN_TYPE, "jwt"})


@dataclass(frozen=True)
class LogoutClaims:
    """What a valid logout token tells: the school's session id, and the token's own id and
    times for the replay guard."""

    sid: str
    jti: str
    issued_at: float
    expires_at: float


def verify_logout_token(token: str, keys: KeyLookup, expected: Expected) -> LogoutClaims:
    """The logout token's session, after every check; raises `InvalidMessage` with the reason.
    `expected.nonce` is not used (a logout token must have none)."""
    header, claims = verify_signed_token(token, keys, expected.algorithms, LOGOUT_TOKEN)
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or _media_type(typ) not in ACCEPTED_TYPES):
        raise InvalidMessage("logout token typed as something else", code="wrong_token_type")
    check_issuer(claims, expected, LOGOUT_TOKEN)
    check_audience(claims, expected, LOGOUT_TOKEN)
    issued_at, expires_at = _times(claims, expected)
    _check_events(claims)
    if "nonce" in claims:
        raise InvalidMessage("logout token carries a nonce", code="nonce_present")
    jti = claims.get("jti")
    if not is_usable_id(jti, MAX_JTI_LENGTH):
        raise InvalidMessage("logout token without a usable jti", code=MALFORMED)
    sid = claims.get("sid")
    sub = claims.get("sub")
    if sub is not None and not is_usable_subject(sub):
        raise InvalidMessage("logout token sub unusable", code=MALFORMED)
    if sid is None:
        if sub is None:
            raise InvalidMessage("logout token names neither sid nor sub", code=MALFORMED)
        raise InvalidMessage("logout token names no sid (only sub)", code="sid_required")
    if not is_usable_id(sid, MAX_SID_LENGTH):
        raise InvalidMessage("logout token sid unusable", code=MALFORMED)
    return LogoutClaims(sid, jti, issued_at, expires_at)


def _media_type(typ: str) -> str:
    # RFC 7515 4.1.9: "application/" may be left out; media types compare case-insensitively.
    lowered = typ.lower()
    return lowered.removeprefix("application/")


def _times(claims: dict[str, Any], expected: Expected) -> tuple[float, float]:
    iat = time_claim(claims, "iat", LOGOUT_TOKEN)
    if iat is None:
        raise InvalidMessage("logout token without iat", code=MALFORMED)
    if iat - expected.skew > expected.now:
        raise InvalidMessage("logout token issued in the future", code="issued_in_future")
    if iat + MAX_LOGOUT_TOKEN_AGE + expected.skew < expected.now:
        raise InvalidMessage("logout token too old", code="expired")
    exp = time_claim(claims, "exp", LOGOUT_TOKEN)
    if exp is not None and exp + expected.skew <= expected.now:
        raise InvalidMessage("logout token expired", code="expired")
    # The jti is kept for as long as the token would pass these checks.
    until = iat + MAX_LOGOUT_TOKEN_AGE + expected.skew
    if exp is not None:
        until = min(until, exp + expected.skew)
    return iat, until


def _check_events(claims: dict[str, Any]) -> None:
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise InvalidMessage("logout token without the back-channel logout event", code="no_event")
