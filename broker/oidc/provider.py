"""The OIDC front: the broker as OpenID provider towards publishers, on authlib's server.

Here: the provider put together, its published documents (discovery, JWKS) and the
authorization endpoint, the browser's way in and out. The token and userinfo endpoints are
token_endpoints.py (`OidcProvider.tokens`); authlib's server as the broker fills it in is
authlib_server.py.

Routes in broker/web hand in plain values (URL, headers, parameters) and get back a neutral
`LoginRequest`, an `AuthorizationResponse` (the answer at the client's redirect URI, in the
response mode it asked for: response_modes.py) or a (status, body, headers) triple; no Flask
below here.

The authorization request is validated twice with the same code: when it arrives (to refuse a
bad one before the student sees anything) and when the login is complete (from the parameters
kept, sealed, in the login record), where authlib issues the code.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.base import OAuth2Error

from broker.config import Settings
from broker.core.errors import BadRequest, UnknownService
from broker.core.key_schedule import KeySource
from broker.core.model import Protocol
from broker.core.ports import KeyValueStore, RegistryReader, StoreOp
from broker.login.login_model import Completion, LoginRequest
from broker.oidc import requested_claims as oidc_claims
from broker.oidc.authlib_server import BrokerAuthorizationServer, IdTokens, PlainRequest
from broker.oidc.authorization_checks import (
    CONSENT,
    PROMPTS_SUPPORTED,
    check_openid_request,
    oauth_error,
)
from broker.oidc.backchannel import LogoutTokens
from broker.oidc.client_auth import ASSERTION_ALGORITHMS, PRIVATE_KEY_JWT, ClientKeys, PrivateKeyJwt
from broker.oidc.end_session import EndSessionChecks
from broker.oidc.grants import (
    CodeGrant,
    Grantee,
    RefreshGrant,
    RegisteredClient,
    S256Only,
    TokenVault,
)
from broker.oidc.oauth_errors import readable
from broker.oidc.response_modes import RESPONSE_MODES, AuthorizationResponse, response_mode
from broker.oidc.rp_id_token import MAX_ID_TOKEN_LENGTH
from broker.oidc.signing_keys import SigningKeys
from broker.oidc.token_endpoints import TokenEndpoints

AUTHORIZE_PATH = "/oidc/authorize"
TOKEN_PATH = "/oidc/token"  # noqa: S105 - a path
USERINFO_PATH = "/oidc/userinfo"
JWKS_PATH = "/oidc/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"
# RFC 8414 3: the issuer is the broker's origin, without a path (config.py), so its
# authorization server metadata is at the root too; the same document as discovery's.
OAUTH_METADATA_PATH = "/.well-known/oauth-authorization-server"
END_SESSION_PATH = "/oidc/end_session"
MAX_PARAMETER = 2048
# An ID token handed back as a hint may carry many claims (groups): its own limit.
LONG_PARAMETERS = {"id_token_hint": MAX_ID_TOKEN_LENGTH}
# The log's reason code of an answer refused because its redirect URI, or its client, is no
# longer registered (`OidcProvider.error_response`).
REDIRECT_URI_REMOVED = "oidc_redirect_uri_removed"


@dataclass(frozen=True)
class CodeAnswer:
    """A completed login's answer: the response carrying the code, and the store writes that
    issue that code. The caller sends `writes` (in its own batch, so the SSO session's records
    share the round trip) before the response leaves: a code not yet stored is never handed
    out. `family`: the token family of the code and every token redeemed with it (grants.py),
    which the session's record of services keeps, so that its end revokes them."""

    response: AuthorizationResponse
    writes: list[StoreOp]
    family: str


class ClientRefusal(Exception):
    """Answer the client (`client_id`) with an error at its (validated) redirect URI."""

    def __init__(self, response: AuthorizationResponse, client_id: str) -> None:
        super().__init__("error answered to the client")
        self.response = response
        self.client_id = client_id


class OidcProvider:
    def __init__(
        self,
        settings: Settings,
        registry: RegistryReader,
        store: KeyValueStore,
        keys: KeySource,
    ):
        if settings.oidc is None:
            raise BadRequest("OIDC keys not configured")
        self.settings_oidc = settings.oidc
        self.issuer = settings.issuer
        self.base_url = settings.base_url
        self.assurance = settings.assurance
        self.registry = registry
        self.keys = SigningKeys(keys)
        self.end_session = EndSessionChecks(self.issuer, self.keys, registry)
        self.logout_tokens = LogoutTokens(self.issuer, self.keys)
        self.vault = TokenVault(
            store,
            code_ttl=settings.oidc.code_lifetime_seconds,
            access_ttl=settings.oidc.access_token_lifetime_seconds,
            refresh_ttl=settings.oidc.refresh_token_lifetime_seconds,
        )
        bound = {"vault": self.vault, "registry": registry}
        code_grant = type("BrokerCodeGrant", (CodeGrant,), bound)
        refresh_grant = type("BrokerRefreshGrant", (RefreshGrant,), bound)
        self.server = BrokerAuthorizationServer(
            registry, self.vault, settings.oidc.access_token_lifetime_seconds
        )
        id_tokens = IdTokens(self.keys, self.issuer, settings.oidc.access_token_lifetime_seconds)
        self.server.register_grant(code_grant, [S256Only(required=True), id_tokens])
        self.server.register_grant(refresh_grant)
        self.server.register_client_auth_method(
            PRIVATE_KEY_JWT,
            PrivateKeyJwt(
                [self.base_url + TOKEN_PATH, self.issuer],
                ClientKeys(
                    settings.oidc.http_timeout_seconds, allow_loopback=settings.peers_on_loopback
                ),
                store,
            ),
        )
        self.tokens = TokenEndpoints(self.server, self.vault, registry, self.base_url + TOKEN_PATH)

    # -- published documents -------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        url = self.base_url
        return {
            "issuer": self.issuer,
            "authorization_endpoint": url + AUTHORIZE_PATH,
            "token_endpoint": url + TOKEN_PATH,
            "userinfo_endpoint": url + USERINFO_PATH,
            "jwks_uri": url + JWKS_PATH,
            "response_types_supported": ["code"],
            "response_modes_supported": list(RESPONSE_MODES),
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": self.keys.algorithms,
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": oidc_claims.scopes_supported(),
            "claims_supported": oidc_claims.claims_supported(),
            "claims_parameter_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "acr_values_supported": list(self.assurance.oidc_values()),
            "prompt_values_supported": list(PROMPTS_SUPPORTED),
            "ui_locales_supported": ["nl", "en"],
            "authorization_response_iss_parameter_supported": True,
            # Logout: RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 (logout tokens carry
            # `sid`); no front-channel logout (logout_channel.py).
            "end_session_endpoint": url + END_SESSION_PATH,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": False,
        }

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    # -- authorization endpoint ----------------------------------------------------------------
    def authorize(self, params: Mapping[str, list[str]], *, has_session: bool) -> LoginRequest:
        """Validate an authorization request; a refusal the client may hear raises
        `ClientRefusal`, one it may not (unknown client, unregistered redirect_uri) BadRequest."""
        for name, values in params.items():
            limit = LONG_PARAMETERS.get(name, MAX_PARAMETER)
            if any(len(value) > limit for value in values):
                raise BadRequest("authorization parameter too long", code="oidc_parameter_size")
        request = self._request(params)
        try:
            grant = self.server.get_consent_grant(
                request, end_user=object() if has_session else None
            )
        except OAuth2Error as error:
            raise self._refusal(error, request) from None
        except ValueError:
            # authlib raises ValueError while building its error when the description would echo
            # a character RFC 6749 does not allow there (a control character in response_type,
            # found by tests/fuzz). The client is not validated yet: a page, never a redirect.
            raise BadRequest(
                "authorization request with characters OAuth does not allow",
                code="oidc_invalid_characters",
            ) from None
        client: RegisteredClient = grant.request.client
        data: dict[str, str] = request.payload.data
        redirect_uri = data.get("redirect_uri", "")
        if client.id_token_signed_response_alg not in self.keys.algorithms:
            raise BadRequest(
                f"client {client.get_client_id()} wants {client.id_token_signed_response_alg}"
                " ID tokens and the broker has no such key",
                code="oidc_alg_unavailable",
            )
        try:
            checked = check_openid_request(
                request.payload,
                redirect_uri,
                client_id=client.get_client_id(),
                issuer=self.issuer,
                keys=self.keys,
            )
            acr_asked, essential = oidc_claims.requested_acr(checked.claims)
            acr_values = data.get("acr_values", "").split()
            levels = self.assurance.from_oidc([*acr_asked, *acr_values])
            if essential and acr_asked and not self.assurance.from_oidc(acr_asked):
                # An essential acr the broker cannot even name cannot be met (Core 5.5.1.1).
                raise oauth_error(
                    "unmet_authentication_requirements",
                    "No acr value asked for as essential is one this provider knows.",
                    redirect_uri,
                )
        except OAuth2Error as error:
            raise self._refusal(error, request) from None
        prompts = checked.prompts
        hint = data.get("login_hint", "")
        front = {
            "protocol": Protocol.OIDC.value,
            "client_id": client.get_client_id(),
            "params": json.dumps(request.payload.datalist, separators=(",", ":")),
        }
        if "none" in prompts:
            front["is_passive"] = "1"
        if data.get("ui_locales"):
            front["ui_locales"] = data["ui_locales"][:64]
        return LoginRequest(
            service_id=client.service.id,
            requested=oidc_claims.requested_attributes(checked.scopes, checked.claims),
            # login_hint names a school (the broker's users are schools' students, whom a
            # platform knows only by pseudonym): with a known school id, no discovery page.
            school_hint=hint if hint and self.registry.school(hint) is not None else None,
            force_authn="login" in prompts,
            front=front,
            acr=levels,
            acr_required=essential and bool(levels),
            max_age=checked.max_age,
            subjects=tuple(sorted(checked.subjects)),
            choose_school="select_account" in prompts,
            show_notice=CONSENT in prompts,
        )

    def respond(self, completion: Completion, session_id: str) -> CodeAnswer:
        """The response that carries a code for a completed login, and the code's writes."""
        request = self._request(self._kept_params(completion.request))
        claims: dict[str, Any] = dict(oidc_claims.release_claims(completion.release.attributes))
        if completion.release.previous_pseudonym:
            # During a pseudonym key rotation's or a chain move's window (pseudonyms.md): the old
            # value, to re-key accounts.
            claims[oidc_claims.PREVIOUS_SUB] = completion.release.previous_pseudonym
        grantee = Grantee(
            sub=completion.release.pseudonym,
            claims=claims,
            auth_time=int(completion.authn_instant),
            acr=self.assurance.oidc_value(completion.assurance_level or ""),
            sid=session_id,
            family=secrets.token_urlsafe(16),
            family_expires=int(time.time()) + self.settings_oidc.refresh_token_lifetime_seconds,
            school=completion.school.id,
            key_version=completion.release.key_version,
            previous_chain=completion.release.previous_chain,
        )
        try:
            grant = self.server.get_authorization_grant(request)
            redirect_uri = grant.validate_authorization_request()
            params = grant.issue_code(grantee)
        except OAuth2Error as error:
            raise UnknownService(f"client request no longer valid: {error.error}") from None
        answer = self.answer(redirect_uri, params, request.payload.data)
        return CodeAnswer(answer, request.store_writes, grantee.family)

    def error_response(
        self, login: LoginRequest, error: str, description: str
    ) -> AuthorizationResponse:
        """An error for the client at its redirect URI: validated when the request arrived, and
        again now against the registration in force, as the code's answer is (`respond`, where
        authlib validates the kept request again): a URI the client removed during the login
        gets nothing, and the student the page (REDIRECT_URI_REMOVED; the SAML side re-checks
        its ACS URL the same way)."""
        data = {k: v[0] for k, v in self._kept_params(login).items() if v}
        redirect_uri = data["redirect_uri"]
        client = self.server.query_client(data.get("client_id", ""))
        if client is None or not client.check_redirect_uri(redirect_uri):
            raise UnknownService(
                "the client's redirect URI left its registration during the login",
                code=REDIRECT_URI_REMOVED,
            )
        params = {"error": error, "error_description": description}
        if data.get("state"):
            params["state"] = data["state"]
        return self.answer(redirect_uri, params, data)

    def answer(
        self, redirect_uri: str, params: Mapping[str, str], request: Mapping[str, str]
    ) -> AuthorizationResponse:
        """Every answer at a client's redirect URI, made here: in the response mode `request`
        (the authorization request's parameters) asked for, and naming the issuer (RFC 9207:
        the mix-up defence for clients that talk to several providers)."""
        return AuthorizationResponse(
            redirect_uri, {**params, "iss": self.issuer}, response_mode(request)
        )

    # -- helpers ------------------------------------------------------------------------------
    def _request(self, params: Mapping[str, list[str]]) -> PlainRequest:
        return PlainRequest("GET", self.base_url + AUTHORIZE_PATH, {}, params)

    @staticmethod
    def _kept_params(login: LoginRequest) -> dict[str, list[str]]:
        kept: dict[str, list[str]] = json.loads(login.front["params"])
        return kept

    def _refusal(self, error: OAuth2Error, request: PlainRequest) -> Exception:
        readable(error, request.payload.data)
        if error.redirect_uri:
            data = request.payload.data
            error.state = data.get("state")
            params = {name: str(value) for name, value in error.get_body()}
            return ClientRefusal(
                self.answer(error.redirect_uri, params, data), data.get("client_id", "")
            )
        return BadRequest(
            f"authorization request refused: {error.error}", code="oidc_" + error.error
        )
