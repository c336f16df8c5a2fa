"""`private_key_jwt` client authentication (RFC 7523, OIDC Core 9): authlib checks the
assertion; this module supplies the client's keys (from its registered JWKS URL, under the
outbound fetch rules) and the one-use rule for `jti` across workers."""

from __future__ import annotations

import threading
import time
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.core.errors import UpstreamFailure
from broker.core.outside_ids import is_usable_id
from broker.core.ports import KeyValueStore
from broker.oidc.grants import RegisteredClient
from broker.oidc.rp_http import CLIENT_JWKS, PlatformSession, get_json

KEY_CACHE_SECONDS = 300
ASSERTION_ALGORITHMS = ("RS256", "PS256", "ES256")
PRIVATE_KEY_JWT = "private_key_jwt"
# A client's jti is a random id; one longer than its replay key holds is no such thing.
MAX_JTI_LENGTH = 512


class ClientKeys:
    """Clients' public keys by JWKS URL, cached a few minutes per worker."""

    def __init__(self, timeout: float, *, allow_loopback: bool) -> None:
        self.timeout = timeout
        self.allow_loopback = allow_loopback
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeySet]] = {}

    def key_set(self, jwks_uri: str) -> KeySet:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(jwks_uri)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        session = PlatformSession(self.timeout, allow_loopback=self.allow_loopback)
        document = get_json(session, jwks_uri, CLIENT_JWKS)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise UpstreamFailure("client JWKS unusable", code="client_jwks_invalid") from None
        with self._lock:
            self._cache[jwks_uri] = (now, keys)
        return keys


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, audiences: list[str], keys: ClientKeys, store: KeyValueStore) -> None:
        super().__init__(validate_jti=True, leeway=60)
        self.audiences = audiences
        self.keys = keys
        self.store = store

    def get_audiences(self) -> list[str]:
        return self.audiences

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        """authlib's check with an explicit algorithm list (never `none`, never HS with a
        public key) and one audience only: an assertion naming other servers beside this one
        could have been made for them (the audience injection of draft-ietf-oauth-rfc7523bis)."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except JoseError as error:
            raise InvalidClientError(description=error.description) from error
        audience = token.claims.get("aud")
        if isinstance(audience, list):
            if len(audience) != 1:
                raise InvalidClientError(description="the assertion must name one audience")
            token.claims["aud"] = audience[0]
        self.verify_claims(token.claims)
        return dict(token.claims)

    def validate_jti(self, claims: dict[str, Any], jti: object) -> bool:
        # RFC 7519 4.1.7: a string. One that UTF-8 cannot spell is malformed, not a use.
        if not is_usable_id(jti, MAX_JTI_LENGTH):
            raise InvalidClientError(description="the assertion's jti is not a usable string")
        expires = int(claims.get("exp", 0)) - int(time.time()) + self.leeway
        key = f"oidc:jti:{claims['sub']}:{jti}"[:512]
        return self.store.add_if_absent(key, b"1", max(expires, 60))

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        jwks_uri = client.registration.jwks_uri
        if not jwks_uri:
            return KeySet([])
        return self.keys.key_set(jwks_uri)
