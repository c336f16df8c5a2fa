"""authlib's authorization server, filled in for the broker's OpenID provider (provider.py).

authlib's framework integrations build its requests from the framework's; here `PlainRequest`
is built from plain values, so no Flask object passes below broker/web. The server finds
clients in the registry and puts tokens in the vault; `IdTokens` signs with the live key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oidc.core.grants import OpenIDCode

from broker.core.model import Protocol
from broker.core.ports import RegistryReader, StoreOp
from broker.oidc import requested_claims as oidc_claims
from broker.oidc.grants import (
    Grantee,
    RegisteredClient,
    TokenVault,
    access_token_for,
    random_token,
)
from broker.oidc.oauth_errors import explain_invalid_client, readable
from broker.oidc.signing_keys import SigningKeys


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, params: Mapping[str, list[str]]) -> None:
        self._datalist = {key: list(values) for key, values in params.items()}
        self._data = {key: values[0] for key, values in params.items() if values}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class PlainRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth 2 request built from plain values, as authlib's framework integrations do."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], params: Mapping[str, list[str]]
    ) -> None:
        super().__init__(method, uri, headers=dict(headers))
        self.payload = _Payload(params)
        # What issuing a code must write (CodeGrant.save_authorization_code): the caller sends it.
        self.store_writes: list[StoreOp] = []

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data if self.method == "POST" else {}


class IdTokens(OpenIDCode):  # type: ignore[misc]
    """The ID token of the code grant, signed with the live signing key (signing_keys.py)."""

    def __init__(self, keys: SigningKeys, issuer: str, lifetime: int) -> None:
        super().__init__(require_nonce=False)  # code flow: nonce optional (Core 3.1.2.1)
        self.keys = keys
        self.issuer = issuer
        self.lifetime = lifetime
        self._chosen = threading.local()

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # replay is stopped by single-use codes, not by remembering nonces

    def encode_id_token(self, token: dict[str, Any], request: Any) -> Any:
        # authlib asks for the header and the key separately; choose the key once, so a token
        # made at a key's switch moment never names one key and is signed by the other.
        self._chosen.key = self.keys.key_for(self.get_client_algorithm(request.client))
        try:
            return super().encode_id_token(token, request)
        finally:
            self._chosen.key = None

    def _signing_key(self, client: RegisteredClient) -> Any:
        key = getattr(self._chosen, "key", None)
        if key is not None:
            return key
        return self.keys.key_for(self.get_client_algorithm(client))

    def resolve_client_private_key(self, client: RegisteredClient) -> Any:
        return self._signing_key(client)

    def get_encode_header(self, client: RegisteredClient) -> dict[str, str]:
        alg = self.get_client_algorithm(client)
        return {"alg": alg, "kid": str(self._signing_key(client).kid), "typ": "JWT"}

    def get_client_claims(self, client: RegisteredClient) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "aud": [client.get_client_id()],
            "azp": client.get_client_id(),
            "iat": now,
            "exp": now + self.lifetime,
        }

    def generate_user_info(self, user: Grantee, scope: str) -> dict[str, Any]:
        return {"sub": user.sub, "sid": user.sid, **user.claims}


def _access_token(*, user: Grantee, **_: Any) -> str:
    """authlib's access token generator, called with the client, grant type, user and scope."""
    return access_token_for(user)


class BrokerAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Clients from the registry, tokens into the vault; `access_ttl`: an access token's
    lifetime in seconds."""

    def __init__(self, registry: RegistryReader, vault: TokenVault, access_ttl: int) -> None:
        super().__init__(scopes_supported=oidc_claims.scopes_supported())
        self.registry = registry
        self.vault = vault
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                _access_token,  # names its family (grants.access_token_for)
                lambda *args, **kwargs: random_token(48),  # refresh token
                lambda client, grant_type: access_ttl,
            ),
        )

    def validate_requested_scope(self, scope: str) -> None:
        """Unknown scope values are ignored (OIDC Core 3.1.2.1), not refused: `offline_access`
        or a provider-specific scope must not break a login. The code keeps the known ones."""

    def query_client(self, client_id: str) -> RegisteredClient | None:
        service = self.registry.service_by_entity_id(client_id or "")
        if service is None or service.protocol is not Protocol.OIDC or service.oidc is None:
            return None
        return RegisteredClient(service)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        self.vault.put_tokens(token, request.client.get_client_id(), request.user)

    def create_oauth2_request(self, request: Any) -> Any:
        return request  # always built by us (`PlainRequest`)

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def handle_error_response(self, request: Any, error: OAuth2Error) -> tuple[int, Any, Any]:
        """Every token-endpoint error, with a sentence for a description; a failed client
        authentication names the one method the client registered (authlib lists every method
        the grant allows)."""
        if error.error == "invalid_client":
            authorization = request.headers.get("Authorization")
            explain_invalid_client(error, authorization, request.payload.data, self._method_of)
        readable(error, request.payload.data)
        return super().handle_error_response(request, error)  # type: ignore[no-any-return]

    def _method_of(self, client_id: str) -> str | None:
        client = self.query_client(client_id)
        return client.registration.auth_method.value if client else None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass
