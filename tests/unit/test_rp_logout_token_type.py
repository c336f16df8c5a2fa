"""The `typ` a school's logout token may carry (Back-Channel Logout 1.0 §2.4, RFC 7515 §4.1.9):
none, `logout+jwt` (also as `application/logout+jwt`) or plain `JWT` (Keycloak up to 24), in
any case; anything else is another kind of token. A `JWT`-typed ID token still never passes:
the claims (`events` required, `nonce` refused) tell the two apart, not the type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jws, jwt

from broker.core.errors import InvalidMessage
from broker.oidc.rp_logout_token import verify_logout_token

# The fuzz target's school key, expectations and a valid logout token's claims.
from tests.fuzz.test_fuzz_school_backchannel import EXPECTED, GOOD, KEY


def token(typ: str | None, claims: dict[str, Any] | None = None) -> str:
    header: dict[str, Any] = {"alg": "RS256", "kid": "school-key"}
    if typ is None:
        # Untyped: joserfc's jwt.encode would add `typ: JWT`, a JWS of the claims adds nothing.
        payload = json.dumps(claims or GOOD).encode()
        return jws.serialize_compact(header, payload, KEY, algorithms=["RS256"])
    header["typ"] = typ
    return jwt.encode(header, claims or GOOD, KEY, algorithms=["RS256"])


def verify(value: str) -> str:
    return verify_logout_token(value, lambda kid, refetch: (KEY,), EXPECTED).sid


@pytest.mark.parametrize(
    "typ",
    [None, "logout+jwt", "Logout+JWT", "application/logout+jwt", "JWT", "jwt", "application/jwt"],
)
def test_accepted_types(typ: str | None) -> None:
    value = token(typ)
    assert jws.extract_compact(value.encode()).headers().get("typ") == typ
    assert verify(value) == "s1"


@pytest.mark.parametrize(
    "typ", ["at+jwt", "secevent+jwt", "JOSE", "application/JOSE+JSON", "logout", "", "x/jwt"]
)
def test_other_types_are_refused(typ: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        verify(token(typ))
    assert refused.value.code == "wrong_token_type"


def test_an_id_token_typed_jwt_still_never_passes() -> None:
    """What §2.4 relies on against cross-JWT confusion, now that `JWT` is let through."""
    id_token = {k: v for k, v in GOOD.items() if k != "events"}
    with pytest.raises(InvalidMessage) as no_event:
        verify(token("JWT", {**id_token, "sub": "s", "nonce": "n"}))
    assert no_event.value.code == "no_event"
    with pytest.raises(InvalidMessage) as nonce:
        verify(token("JWT", {**GOOD, "nonce": "n"}))
    assert nonce.value.code == "nonce_present"
