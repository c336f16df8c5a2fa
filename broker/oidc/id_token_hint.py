"""`id_token_hint`: an ID token this provider issued, handed back by a platform (Core 3.1.2.1 at
the authorization endpoint, RP-Initiated Logout 1.0 at end_session).

What makes one acceptable: a compact JWS signed by one of the provider's own published keys
(the JWKS's, so a token signed before a key rotation still counts), `iss` the broker, a `sub`,
and no logout token (the same keys sign those). Expiry is not held against it: a hint only
names a student and a client, it grants nothing, and a platform hands it back after the token
stopped working (RP-Initiated Logout 1.0 section 2 asks providers to accept such hints; Core
3.1.2.1 sets no expiry rule for them). The callers add their own rules (end_session: a `sid`;
authorize: the audience is the requesting client).
"""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from broker.oidc.rp_id_token import MAX_ID_TOKEN_LENGTH, StrictJSONDecoder
from broker.oidc.signing_keys import SigningKeys


class HintRefused(ValueError):
    """The hint is not an ID token of this provider; `reason` is an English sentence without
    personal data (it may go back to the platform as an error_description)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hint_claims(token: str, issuer: str, keys: SigningKeys) -> dict[str, Any]:
    """The claims of `token` if this provider issued it as an ID token, else HintRefused."""
    if len(token) > MAX_ID_TOKEN_LENGTH or token.count(".") != 2:
        raise HintRefused("The id_token_hint is not a signed JWT of a usable size.")
    try:
        decoded = jwt.decode(
            token,
            keys.key_set(),
            algorithms=keys.published_algorithms(),
            decoder_cls=StrictJSONDecoder,
        )
    except (JoseError, ValueError, TypeError):
        raise HintRefused("The id_token_hint is not signed by this provider.") from None
    claims = dict(decoded.claims)
    if decoded.header.get("typ") == "logout+jwt" or "events" in claims:
        raise HintRefused("The id_token_hint is a logout token, not an ID token.")
    if claims.get("iss") != issuer:
        raise HintRefused("The id_token_hint was issued by another provider.")
    if not isinstance(claims.get("sub"), str):
        raise HintRefused("The id_token_hint has no sub.")
    return claims


def audiences(claims: dict[str, Any]) -> list[str]:
    """The token's `aud` as a list (a string or an array of strings); [] when it has none."""
    aud = claims.get("aud")
    listed = [aud] if isinstance(aud, str) else aud
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
        return []
    return listed


def hinted_subject(token: str, issuer: str, keys: SigningKeys, client_id: str) -> str:
    """The `sub` of an id_token_hint at the authorization endpoint: issued by this provider to
    `client_id` (its audience, and its `azp` when it has one), so one platform cannot hand in
    another's token to learn whether that student is logged in here."""
    claims = hint_claims(token, issuer, keys)
    azp = claims.get("azp")
    if client_id not in audiences(claims) or (azp is not None and azp != client_id):
        raise HintRefused("The id_token_hint was issued to another client.")
    return str(claims["sub"])
