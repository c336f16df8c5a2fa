"""The OpenID provider's token and userinfo endpoints: what a client calls itself, with a
code, a refresh token or an access token. No browser, no login record; always JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from broker.core.errors import StoreUnavailable, UpstreamFailure
from broker.core.ports import RegistryReader
from broker.oidc.authlib_server import BrokerAuthorizationServer, PlainRequest
from broker.oidc.grants import TokenVault, released_now
from broker.oidc.oauth_errors import (
    FALLBACK,
    auth_method_used,
    invalid_client_answer,
    invalid_client_status,
    invalid_request,
    mixed_credentials,
    repeated_parameters,
)

TRY_AGAIN = FALLBACK["temporarily_unavailable"]


class TokenEndpoints:
    """`token_url`: the token endpoint's address from the configuration (provider.py)."""

    def __init__(
        self,
        server: BrokerAuthorizationServer,
        vault: TokenVault,
        registry: RegistryReader,
        token_url: str,
    ) -> None:
        self.server = server
        self.vault = vault
        self.registry = registry
        self.token_url = token_url

    def token(
        self, authorization: str | None, form: Mapping[str, list[str]]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]], str | None]:
        """(status, body, headers, reason code for the log line or None). `authorization`: the
        request's Authorization header, the only header authlib reads at the token endpoint
        (client_secret_basic). The request's URI is the configured endpoint, as at the
        authorization endpoint: URLs come from base_url, never from the request (behind a proxy
        the request's own URL may say http, which authlib refuses)."""
        repeated = repeated_parameters(form)
        if repeated is not None:
            # Before authlib, which would read the first value of each (RFC 6749 3.2).
            return (*invalid_request(repeated), "parameter_repeated")
        data = {name: values[0] for name, values in form.items() if values}
        mixed = mixed_credentials(authorization, data)
        if mixed is not None:
            # Before authlib, which would authenticate by the first method that holds and
            # ignore the rest: nothing is authenticated or used, the code stays redeemable.
            return (*invalid_request(mixed[1]), mixed[0])
        return (*self._answer(authorization, form, data), None)

    def _answer(
        self, authorization: str | None, form: Mapping[str, list[str]], data: dict[str, str]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        headers = {"Authorization": authorization} if authorization is not None else {}
        try:
            request = PlainRequest("POST", self.token_url, headers, form)
            status, body, out = self.server.create_token_response(request)
        except UpstreamFailure:
            # A private_key_jwt client whose JWKS URL does not answer cannot be authenticated.
            return invalid_client_answer(
                "Client authentication failed: the client's keys could not be fetched from its "
                "registered jwks_uri.",
                400,
            )
        except (UnicodeDecodeError, ValueError, RecursionError):
            # A Basic header that is not base64 of UTF-8, or a client assertion whose JSON is
            # nested deeper than the stack (authlib's RFC 7523 code parses it): authlib catches
            # neither.
            used = auth_method_used(authorization, data)
            return invalid_client_answer(
                "Client authentication failed: the client credentials could not be read.",
                invalid_client_status(used),
            )
        except StoreUnavailable:
            return (
                503,
                {"error": "temporarily_unavailable", "error_description": TRY_AGAIN},
                [("Retry-After", "5")],
            )
        return status, body, list(out)

    def userinfo(
        self, authorization: str | None, form_tokens: Sequence[str]
    ) -> tuple[int, dict[str, Any]]:
        """Bearer token from the header or, on POST, the form body (RFC 6750 2.1, 2.2): the
        body's `access_token` values (none on GET). Without any credentials: 401 and no error
        code (RFC 6750 3.1); two (the header and the body, or the body's twice): 400."""
        scheme, _, token = (authorization or "").partition(" ")
        form_token = form_tokens[0] if form_tokens else None
        if (authorization and form_token) or len(form_tokens) > 1:
            return 400, {"error": "invalid_request"}
        if form_token:
            token = form_token
        elif scheme.lower() != "bearer" or not token.strip():
            return 401, {}
        found = self.vault.access(token.strip())
        if found is None:
            return 401, {"error": "invalid_token"}
        client_id, _, delivered = found
        # What the school releases today (a narrowed policy narrows the answer at once).
        grantee = released_now(self.registry, client_id, delivered)
        if grantee is None:
            return 401, {"error": "invalid_token"}
        return 200, {"sub": grantee.sub, **grantee.claims}
