"""Checking a school's ID token (OIDC Core §3.1.3.7), one small named check at a time.

The order matters: the header is judged (algorithm allow-list, key id) before any signature
work, the signature before any claim is believed, and every failure is an `InvalidMessage` with
a reason code of its own. Nothing here logs; the caller logs the code, never the token.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from joserfc import jws, jwt
from joserfc.errors import InvalidPayloadError, JoseError
from joserfc.jwk import RSAKey

from broker.core.errors import InvalidMessage
from broker.oidc.rp_discovery import ASYMMETRIC_ALGORITHMS, PublicKey

MAX_ID_TOKEN_LENGTH = 16 * 1024
ID_TOKEN = "ID token"  # noqa: S105 - the name of a token kind, not a secret
# joserfc only warns about short RSA keys; below this the broker does not believe a signature.
MIN_RSA_BITS = 2048
# Time claims are seconds since 1970: anything outside this is not a time but an attack or a bug
# (2**40 s is some 35,000 years; a negative or huge value must not reach a comparison).
MAX_TIME = 2**40
MAX_SUBJECT_LENGTH = 255


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


class StrictJSONDecoder(json.JSONDecoder):
    """JSON without NaN, Infinity and -Infinity (Python's json module accepts them by default)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["parse_constant"] = _refuse_constant
        super().__init__(**kwargs)


@dataclass(frozen=True)
class Expected:
    issuer: str
    client_id: str
    nonce: str
    algorithms: tuple[str, ...]
    now: float
    skew: int
    max_age: int | None = None


# Looks up the provider's keys for a kid; the bool asks for a refetch when none matches.
KeyLookup = Callable[[str | None, bool], tuple[PublicKey, ...]]


def allowed_algorithms(configured: tuple[str, ...]) -> tuple[str, ...]:
    """The school's configured list, without anything that is not an asymmetric signature."""
    return tuple(alg for alg in configured if alg in ASYMMETRIC_ALGORITHMS)


def verify_id_token(token: str, keys: KeyLookup, expected: Expected) -> dict[str, Any]:
    """The ID token's claims, after every check; raises `InvalidMessage` with the reason."""
    claims = verify_signed_token(token, keys, expected.algorithms)[1]
    check_issuer(claims, expected)
    check_audience(claims, expected)
    _check_times(claims, expected)
    _check_nonce(claims, expected)
    if not is_usable_subject(claims.get("sub")):
        raise InvalidMessage("ID token without a usable sub", code="malformed_id_token")
    return claims


def is_usable_subject(sub: Any) -> bool:
    """OIDC Core 2: `sub` is at most 255 ASCII characters. Control characters (NUL among them)
    are refused as well: no provider's identifier has one, and none may reach a log or the
    database by way of a subject."""
    return (
        isinstance(sub, str)
        and 0 < len(sub) <= MAX_SUBJECT_LENGTH
        and sub.isascii()
        and sub.isprintable()
    )


def verify_signed_token(
    token: str, keys: KeyLookup, algorithms: tuple[str, ...], what: str = ID_TOKEN
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWS from the school's provider (an ID token, a logout token),
    with its header judged and its signature checked against the provider's keys; nothing in
    the claims is checked yet. `what` names the token in the reasons."""
    malformed = _malformed(what)
    if not token or len(token) > MAX_ID_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidMessage(f"{what} missing or not a compact JWS", code=malformed)
    header = _header(token, what)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed_algorithms(algorithms):
        raise InvalidMessage(
            f"{what} algorithm not allowed for this school", code="alg_not_allowed"
        )
    if "crit" in header:
        raise InvalidMessage(f"{what} with critical header extensions", code=malformed)
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidMessage(f"{what} kid is not a string", code=malformed)
    return header, _verified_claims(token, alg, kid, keys, what)


def _malformed(what: str) -> str:
    return "malformed_" + what.lower().replace(" ", "_")


def _header(token: str, what: str) -> dict[str, Any]:
    try:
        segment = jws.extract_compact(token.encode("ascii")).segments["header"]
        # Read again with the strict decoder: joserfc's own parse lets NaN and Infinity through.
        header = json.loads(_b64url_decode(segment), cls=StrictJSONDecoder)
    except (JoseError, ValueError, UnicodeError, KeyError):
        raise InvalidMessage(f"{what} header unreadable", code=_malformed(what)) from None
    if not isinstance(header, dict):
        raise InvalidMessage(f"{what} header is not an object", code=_malformed(what))
    return header


def _b64url_decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def _candidates(keys: tuple[PublicKey, ...], kid: str | None) -> list[PublicKey]:
    if kid is not None:
        return [k for k in keys if k.kid == kid]
    # No kid: acceptable only when the choice is unambiguous (a provider with one key).
    return list(keys) if len(keys) == 1 else []


def _strong_enough(key: PublicKey) -> bool:
    return not isinstance(key, RSAKey) or key.raw_value.key_size >= MIN_RSA_BITS


def _verified_claims(
    token: str, alg: str, kid: str | None, keys: KeyLookup, what: str
) -> dict[str, Any]:
    candidates = _candidates(keys(kid, False), kid)
    if not candidates:
        candidates = _candidates(keys(kid, True), kid)
    if not candidates:
        raise InvalidMessage(
            f"{what} signed with a key the provider does not publish", code="unknown_kid"
        )
    strong = [key for key in candidates if _strong_enough(key)]
    if not strong:
        raise InvalidMessage(
            f"{what} key is an RSA key shorter than {MIN_RSA_BITS} bits", code="weak_key"
        )
    for key in strong:
        try:
            decoded = jwt.decode(token, key, algorithms=[alg], decoder_cls=StrictJSONDecoder)
        except InvalidPayloadError:
            # The signature held; the payload is not a JSON object (or has NaN/Infinity in it).
            raise InvalidMessage(f"{what} payload unreadable", code=_malformed(what)) from None
        except (JoseError, ValueError, TypeError):
            continue
        return dict(decoded.claims)
    raise InvalidMessage(f"{what} signature invalid", code="bad_signature")


# OIDC Core 3.1.3.7 item 2: the `iss` must match the issuer exactly. Google documents that its
# ID tokens' `iss` is `https://accounts.google.com` *or* `accounts.google.com`, the old form
# without a scheme; so for that one issuer exactly that bare spelling is the same issuer. No
# other issuer gets any such leeway (a trailing slash, capitals, another scheme stay refused).
GOOGLE_ISSUER = "https://accounts.google.com"
_SAME_ISSUER = {GOOGLE_ISSUER: frozenset({GOOGLE_ISSUER, "accounts.google.com"})}


def check_issuer(claims: dict[str, Any], expected: Expected, what: str = ID_TOKEN) -> None:
    issuer = claims.get("iss")
    accepted = _SAME_ISSUER.get(expected.issuer, frozenset({expected.issuer}))
    if not isinstance(issuer, str) or issuer not in accepted:  # a list is no issuer (nor hashable)
        raise InvalidMessage(f"{what} issuer is not the school's provider", code="issuer_mismatch")


def check_audience(claims: dict[str, Any], expected: Expected, what: str = ID_TOKEN) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or expected.client_id not in audiences:
        raise InvalidMessage(f"{what} is not meant for the broker", code="wrong_audience")
    if what != ID_TOKEN:
        return  # azp is an ID token's claim (a logout token's audience is all it says)
    azp = claims.get("azp")
    # With several audiences the token must say it was issued to us; when azp is there at all
    # it must name us (OIDC Core §3.1.3.7 items 4 and 5).
    if (len(audiences) > 1 or azp is not None) and azp != expected.client_id:
        raise InvalidMessage("ID token azp is not the broker", code="wrong_audience")


def time_claim(claims: dict[str, Any], name: str, what: str = ID_TOKEN) -> float | None:
    """A time claim as seconds, checked before any comparison: NaN compares false to everything
    (a NaN `exp` would never expire) and a huge integer overflows `float`."""
    if name not in claims:
        return None
    value = claims[name]
    # bool is an int subclass; strings, null, lists and objects are not times either.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"{what} {name} is not a number", code=_malformed(what))
    if isinstance(value, int):
        if not 0 <= value <= MAX_TIME:  # compared as int: no float conversion can overflow
            raise InvalidMessage(f"{what} {name} out of range", code=_malformed(what))
        return float(value)
    if not math.isfinite(value) or not 0 <= value <= MAX_TIME:
        raise InvalidMessage(f"{what} {name} out of range", code=_malformed(what))
    return value


# What the broker asked a provider for that obliges it to send `auth_time`, and the reason code
# of an ID token without it: a service's max_age, or a forced login (prompt=login, max_age=0).
AUTH_TIME_REASONS = {"max_age": "auth_too_old", "prompt=login": "no_auth_time"}


def require_auth_time(auth_time: float | None, asked: Literal["max_age", "prompt=login"]) -> float:
    """The ID token's `auth_time` (`time_claim`), which a provider asked for a login of bounded
    age must send (OIDC Core 2 and 3.1.2.1): its `iat` instead would pass any login off as
    fresh. Required for a service's max_age here (`_check_times`) and for a forced login by
    the back (back.py)."""
    if auth_time is None:
        raise InvalidMessage(
            f"ID token without auth_time after {asked}", code=AUTH_TIME_REASONS[asked]
        )
    return auth_time


def _check_times(claims: dict[str, Any], expected: Expected) -> None:
    exp, iat = time_claim(claims, "exp"), time_claim(claims, "iat")
    if exp is None or iat is None:
        raise InvalidMessage("ID token without exp or iat", code="malformed_id_token")
    if exp + expected.skew <= expected.now:
        raise InvalidMessage("ID token expired", code="expired")
    if iat - expected.skew > expected.now:
        raise InvalidMessage("ID token issued in the future", code="issued_in_future")
    nbf = time_claim(claims, "nbf")
    if nbf is not None and nbf - expected.skew > expected.now:
        raise InvalidMessage("ID token not yet valid", code="issued_in_future")
    auth_time = time_claim(claims, "auth_time")  # refused when malformed, asked for or not
    if expected.max_age is not None:
        auth_time = require_auth_time(auth_time, "max_age")
        if auth_time + expected.max_age + expected.skew < expected.now:
            raise InvalidMessage("school login older than max_age", code="auth_too_old")


def _check_nonce(claims: dict[str, Any], expected: Expected) -> None:
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not expected.nonce or nonce != expected.nonce:
        raise InvalidMessage("ID token nonce is not this login's", code="nonce_mismatch")
