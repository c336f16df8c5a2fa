"""The OIDC back: the broker as relying party towards schools' OpenID providers.

CONTRACT (the web layer calls these):
- `authorization_redirect(school, state, ...)` → `UpstreamRedirect`: the URL to send the browser
  to and the values (nonce, PKCE verifier …) the login record keeps, sealed, until the callback.
- `complete(school, params, kept, must_name=...)` → `VerifiedLogin` after every check of
  security.md; raises `InvalidMessage` (a forged or broken answer) or `UpstreamFailure` (the
  school said no); `must_name` (login/school_values.py `school_must_be_named`): the school's
  issuer is a board's, and the account's `school_id` claim must name the school.

The steps follow OIDC Core §3.1 (code flow) with PKCE S256 (RFC 7636) and the `iss` parameter
of RFC 9207. authlib's OAuth functions build the authorization URL, the token request and its
client authentication (what its client session used), sent over rp_http's transport instead of
that session (rp_http.py says why); the checks of the answer are ours (rp_id_token.py).
docs/oidc-profile.md lists what is implemented.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from broker.config import Settings
from broker.core.catalogue import CATALOGUE
from broker.core.errors import (
    AssuranceNotMet,
    BrokerError,
    InvalidMessage,
    SchoolRefused,
    SchoolSaid,
    SchoolSecretUnreadable,
    UpstreamFailure,
)
from broker.core.model import OidcUpstream, School, UpstreamIdentity
from broker.core.outside_ids import is_usable_id
from broker.core.shared_idp import SCHOOL_ATTRIBUTE
from broker.core.whole_numbers import MAX_AGE_DIGITS, whole_number
from broker.login.school_sessions import BACK_CHANNEL, MAX_SID_LENGTH
from broker.oidc.rp_claims import (
    attributes_named,
    check_hosted_domain,
    map_claims,
    require_hosted_domain_if_shared,
    subject_of,
    with_userinfo,
)
from broker.oidc.rp_discovery import ProviderDirectory, ProviderInvalid, ProviderMetadata
from broker.oidc.rp_http import (
    FORM,
    TOKEN_RESPONSE,
    USERINFO,
    SchoolSession,
    call_budget,
    json_object,
)
from broker.oidc.rp_id_token import Expected, require_auth_time, time_claim, verify_id_token
from broker.oidc.rp_logout_token import LogoutClaims, verify_logout_token
from broker.oidc.rp_state import STATE_TAG, new_tag, request_state

log = logging.getLogger(__name__)

# A provider's `error` on its redirect (RFC 6749 4.1.2.1) that the student's page words (labels.py):
# Entra ID answers a student the application is not assigned to with access_denied.
_SAID: dict[str, SchoolSaid] = {
    "access_denied": "request_denied",
    "temporarily_unavailable": "unavailable",
    "server_error": "unavailable",
}

BASE_SCOPES = ("openid", "profile", "email")
# Scopes beyond OIDC's own that school providers announce for education claims (attributes.md):
# asked for only when the provider lists them, so a provider that does not know them is not
# made to refuse the request.
EXTRA_SCOPES = ("groups", "school")
BASIC, POST = "client_secret_basic", "client_secret_post"
# In a login record's kept values: the school was asked for a fresh login (prompt=login).
FRESH = "fresh"


@dataclass(frozen=True)
class UpstreamRedirect:
    redirect_url: str
    request_id: str  # logged and kept like a SAML request id (the nonce's digest)
    kept: dict[str, str]


@dataclass(frozen=True)
class VerifiedLogin:
    identity: UpstreamIdentity  # authn_context = the school's `acr`, raw
    authn_instant: float  # `auth_time`, or the ID token's `iat`


def _upstream(school: School) -> OidcUpstream:
    if school.oidc is None:
        raise UpstreamFailure(f"school {school.id} has no OpenID provider", code="not_oidc")
    return school.oidc


def _require_secret(school: School, upstream: OidcUpstream) -> None:
    """Refuse the school's logins while its client secret cannot be opened: the token request
    would fail after the student signed in at the school. Logged for the operator (the school
    and the reason: never the secret, never the stored value)."""
    if upstream.secret_problem:
        log.error(
            "oidc login refused school=%s code=client_secret_unreadable reason=%s",
            school.id,
            upstream.secret_problem,
        )
        raise SchoolSecretUnreadable(f"school {school.id}: {upstream.secret_problem}")


def _auth_method(metadata: ProviderMetadata) -> str:
    if BASIC in metadata.token_auth_methods:
        return BASIC
    if POST in metadata.token_auth_methods:
        return POST
    raise ProviderInvalid("provider supports neither client_secret_basic nor client_secret_post")


class OidcBack:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        directory: ProviderDirectory | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.timeout = settings.oidc.http_timeout_seconds if settings.oidc else 5.0
        self.directory = directory or ProviderDirectory(self._session, clock)

    def _session(self) -> SchoolSession:
        return SchoolSession(self.timeout, allow_loopback=self.settings.peers_on_loopback)

    def authorization_redirect(
        self,
        school: School,
        state: str,
        *,
        force_login: bool,
        max_age: int | None,
        acr_values: tuple[str, ...],
        acr_essential: bool,
        select_account: bool = False,
        metadata: ProviderMetadata | None = None,
    ) -> UpstreamRedirect:
        """`state`: the login's id; the request's own tag goes with it (rp_state.py).
        `select_account`: this provider named another school for this login (or none), so the
        student is asked which account to use (`prompt=select_account`): its own session would
        otherwise sign in the same wrong account again (a sibling's, on a shared laptop).
        `metadata`: the provider's document when the caller holds it already
        (`current_provider`); without it, the directory's (fetched when not cached)."""
        upstream = _upstream(school)
        require_hosted_domain_if_shared(school)
        _require_secret(school, upstream)
        if metadata is None:
            metadata = self.directory.metadata(upstream.issuer)
        nonce = secrets.token_urlsafe(32)
        # RFC 7636 §4.1: 43 to 128 characters; 64 random bytes, base64url, is 86.
        verifier = secrets.token_urlsafe(64)
        tag = new_tag()
        extra = [s for s in EXTRA_SCOPES if s in metadata.scopes_supported]
        params: dict[str, str] = {"nonce": nonce, "scope": " ".join((*BASE_SCOPES, *extra))}
        if upstream.hosted_domain:
            # Google's account chooser then offers the school's accounts only (the ID token's
            # `hd` is still checked: this parameter is a hint the student can step around).
            params["hd"] = upstream.hosted_domain
        if force_login:
            params["prompt"] = "login"
            # max_age=0 says the same again (OIDC Core 3.1.2.1), for a provider that honours
            # one and not the other, and obliges it to send `auth_time`: the flow holds that
            # against when the student was sent there (login/authn_instant.py).
            params["max_age"] = "0"
        elif max_age is not None:
            params["max_age"] = str(max_age)
        if select_account and not force_login:
            # Not beside prompt=login: a fresh login asks for the account anyway.
            params["prompt"] = "select_account"
        if acr_values:
            params["acr_values"] = " ".join(acr_values)
            if acr_essential:
                acr = {"essential": True, "values": list(acr_values)}
                params["claims"] = json.dumps({"id_token": {"acr": acr}}, separators=(",", ":"))
        url = prepare_grant_uri(
            metadata.authorization_endpoint,
            upstream.client_id,
            "code",
            redirect_uri=self.settings.oidc_callback_url(school.id),
            state=request_state(state, tag),
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            **params,
        )
        kept = {"nonce": nonce, "code_verifier": verifier, STATE_TAG: tag}
        if max_age is not None:
            # The service's own max_age, checked against now (rp_id_token.py); not the 0 of a
            # forced login, whose auth_time is held against the time of leaving instead (a
            # consent page at the school may take longer than the clock skew).
            kept["max_age"] = str(max_age)
        if force_login:
            kept[FRESH] = "1"
        request_id = "oidc-" + hashlib.sha256(nonce.encode()).hexdigest()[:32]
        return UpstreamRedirect(str(url), request_id, kept)

    def current_provider(self, school: School) -> ProviderMetadata | None:
        """The school's provider document if this worker holds it fresh, without any network
        call (`ProviderDirectory.current`); None otherwise."""
        return self.directory.current(_upstream(school).issuer)

    def complete(
        self, school: School, params: dict[str, str], kept: dict[str, str], *, must_name: bool
    ) -> VerifiedLogin:
        try:
            # Token, keys and userinfo together within twice the timeout (rp_http.py).
            with call_budget(2 * self.timeout):
                return self._complete(school, _upstream(school), params, kept, must_name)
        except BrokerError as err:
            # The school and the reason code only: never tokens, claims or subjects.
            log.warning("oidc login refused school=%s code=%s", school.id, err.code)
            raise

    def logout_token(self, school: School, token: str) -> LogoutClaims:
        """A logout token the school's provider POSTed (Back-Channel Logout 1.0), checked
        against its keys (fetched within the call budget when not cached); `InvalidMessage`
        with the reason when it does not hold, `UpstreamFailure` when the keys cannot be had.
        Not logged here: the route logs every refusal once, these and its own (replay, form)."""
        upstream = _upstream(school)
        with call_budget(2 * self.timeout):
            return verify_logout_token(
                token,
                lambda kid, refetch: self.directory.keys(
                    upstream.issuer, kid, refetch_on_miss=refetch
                ),
                Expected(
                    issuer=upstream.issuer,
                    client_id=upstream.client_id,
                    nonce="",
                    algorithms=upstream.algorithms,
                    now=self.clock(),
                    skew=self.settings.saml.clock_skew_seconds,
                ),
            )

    def _complete(
        self,
        school: School,
        upstream: OidcUpstream,
        params: dict[str, str],
        kept: dict[str, str],
        must_name: bool,
    ) -> VerifiedLogin:
        metadata = self.directory.metadata(upstream.issuer)
        _check_issuer_parameter(params, metadata)
        if "error" in params:
            if params["error"] == "unmet_authentication_requirements":
                raise AssuranceNotMet(f"school {school.id} could not meet the requested acr")
            raise SchoolRefused(
                f"school {school.id} answered an error", said=_SAID.get(params["error"], "")
            )
        code = params.get("code", "")
        if not code:
            raise InvalidMessage("callback without code or error", code="no_code")
        nonce, verifier = kept.get("nonce", ""), kept.get("code_verifier", "")
        if not nonce or not verifier:
            raise InvalidMessage("login record without nonce or verifier", code="unsolicited")
        token = self._redeem(school, upstream, metadata, code, verifier)
        max_age = kept.get("max_age")
        id_token = _string(token, "id_token")
        claims = verify_id_token(
            id_token,
            lambda kid, refetch: self.directory.keys(upstream.issuer, kid, refetch_on_miss=refetch),
            Expected(
                issuer=upstream.issuer,
                client_id=upstream.client_id,
                nonce=nonce,
                algorithms=upstream.algorithms,
                now=self.clock(),
                skew=self.settings.saml.clock_skew_seconds,
                max_age=whole_number(max_age, MAX_AGE_DIGITS) if max_age else None,
            ),
        )
        # The account must be the school's before anything else is asked or read of it.
        check_hosted_domain(claims, school)
        merged = dict(claims)
        if metadata.userinfo_endpoint and _needs_userinfo(claims, school, must_name=must_name):
            info = self._userinfo(upstream, metadata, token, str(claims["sub"]))
            # The signed ID token wins where both say something, by attribute (rp_claims.py).
            merged = with_userinfo(claims, info)
        # A board's issuer must name the school (before any value is kept: rp_claims.py).
        attributes = map_claims(merged, school, must_name=must_name)
        subject = subject_of(merged, attributes, school)
        acr = claims.get("acr")
        auth_time = time_claim(claims, "auth_time")  # a number in range (verify_id_token)
        if kept.get(FRESH):
            auth_time = require_auth_time(auth_time, "prompt=login")
        instant = auth_time if auth_time is not None else claims["iat"]
        identity = UpstreamIdentity(
            school.id,
            subject,
            attributes,
            acr if isinstance(acr, str) else None,
            upstream_session=upstream_session(
                id_token, claims, back_channel=metadata.backchannel_logout_supported
            ),
        )
        return VerifiedLogin(identity, float(instant))

    def _redeem(
        self,
        school: School,
        upstream: OidcUpstream,
        metadata: ProviderMetadata,
        code: str,
        verifier: str,
    ) -> dict[str, Any]:
        """The token request (client_secret_basic, or _post where that is all there is)."""
        _require_secret(school, upstream)
        body = prepare_token_request(
            "authorization_code",
            redirect_uri=self.settings.oidc_callback_url(school.id),
            code=code,
            code_verifier=verifier,
        )
        headers = {"Accept": "application/json", "Content-Type": f"{FORM};charset=UTF-8"}
        method = _auth_method(metadata)
        client_id, secret = upstream.client_id, upstream.client_secret
        if method == BASIC:
            # RFC 6749 2.3.1: id and secret form-urlencoded first, then Basic; authlib joins
            # them as they are, so a secret with `+`, `%`, `/` or `=` reached a provider that
            # decodes per the RFC (Keycloak, Spring Authorization Server) changed, and one
            # beyond Latin-1 could not be sent at all. Spaces as %20, which every decoder
            # reads as a space (authlib's own server does not read `+` so).
            client_id, secret = quote(client_id, safe=""), quote(secret, safe="")
        client = ClientAuth(client_id, secret, method)
        _, headers, body = client.prepare("POST", metadata.token_endpoint, headers, body)
        response = self._session().request(
            "POST", metadata.token_endpoint, headers=headers, form=body
        )
        try:
            token = json_object(response.content, TOKEN_RESPONSE)
        except UpstreamFailure:
            raise UpstreamFailure("token endpoint answer unusable", code="token_refused") from None
        if "error" in token:
            raise UpstreamFailure("token endpoint refused the code", code="token_refused")
        if response.status_code != 200:
            # RFC 6749 5.1: a token comes with 200 (authlib let a 4xx without `error` pass).
            raise UpstreamFailure("token endpoint answer unusable", code="token_refused")
        return token

    def _userinfo(
        self,
        upstream: OidcUpstream,
        metadata: ProviderMetadata,
        token: dict[str, Any],
        sub: str,
    ) -> dict[str, Any]:
        access_token = _string(token, "access_token")
        if str(token.get("token_type", "")).lower() != "bearer":
            raise InvalidMessage("access token is not a bearer token", code="token_type")
        response = self._session().request(
            "GET",
            str(metadata.userinfo_endpoint),
            headers={"Accept": "application/json", "Authorization": f"Bearer {access_token}"},
        )
        if response.status_code != 200:
            raise UpstreamFailure("userinfo endpoint refused", code="userinfo_refused")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            # A signed (JWT) userinfo answer is not implemented: refuse rather than half-check.
            raise InvalidMessage("userinfo answer is not JSON", code="userinfo_unsupported")
        info = json_object(response.content, USERINFO)
        if info.get("sub") != sub:
            # OIDC Core §5.3.2: otherwise the answer may be about someone else (token mix-up).
            raise InvalidMessage(
                "userinfo sub differs from the ID token's", code="userinfo_sub_mismatch"
            )
        return info


def upstream_session(
    id_token: str, claims: dict[str, Any], *, back_channel: bool = False
) -> dict[str, str]:
    """What logging out at the school takes (RP-Initiated Logout 1.0): the ID token itself as
    `id_token_hint`, and the provider's `sid` (for its back-channel logout). Sealed in the SSO
    session with the rest of the school's answer, never logged. `back_channel`: the provider's
    discovery says it sends back-channel logout tokens, so the session is filed under its `sid`
    (login/school_sessions.py) for a logout token to find it without the browser."""
    kept = {"protocol": "oidc", "id_token": id_token}
    sid = claims.get("sid")
    if is_usable_id(sid, MAX_SID_LENGTH):
        kept["sid"] = sid
        if back_channel:
            kept[BACK_CHANNEL] = "1"
    return kept


def _check_issuer_parameter(params: dict[str, str], metadata: ProviderMetadata) -> None:
    """RFC 9207: the authorization response names its issuer; a provider that announces the
    parameter must send it, and it must be this school's (else: a mix-up attack)."""
    iss = params.get("iss")
    if iss is None:
        if metadata.iss_parameter_supported:
            raise InvalidMessage("callback without the iss parameter", code="issuer_missing")
        return
    if iss != metadata.issuer:
        raise InvalidMessage("callback from another provider (mix-up)", code="issuer_mismatch")


def _needs_userinfo(claims: dict[str, Any], school: School, *, must_name: bool) -> bool:
    """Fetch userinfo when the ID token carries no attributes (many providers keep the ID token
    small), lacks a subject attribute other than `sub` that the school is configured with, or
    lacks the `school_id` a board's issuer must name the school in (`must_name`). An attribute
    counts under any of its names (`nlEduPersonHomeOrganizationId` is `school_id` too): the ID
    token's then hides userinfo's (`with_userinfo`), so asking would change nothing."""
    said = attributes_named(claims)
    if not said:
        return True
    if must_name and SCHOOL_ATTRIBUTE not in said:
        return True
    if school.use_eck_id:
        return "eck_id" not in said
    wanted = school.subject_attribute
    if wanted in ("sub", "name_id"):
        return False
    # A canonical attribute under any of its names; a provider's own claim (`oid`) as is.
    return wanted not in said if wanted in CATALOGUE else wanted not in claims


def _string(token: dict[str, Any], name: str) -> str:
    value = token.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidMessage(f"token response without {name}", code=f"no_{name}")
    return value
