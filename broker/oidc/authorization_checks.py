"""The authorization request's OpenID Connect checks beyond authlib's (which has checked the
client, the redirect URI, repeated parameters (grants.CodeGrant), response_type, PKCE and
`prompt=none` without a session by then).

Each refusal is an OAuth2Error carrying the validated redirect URI, so the client hears it at
its redirect URI; each description is a sentence (oauth_errors.py). Nothing here does I/O: the
`id_token_hint` is checked against the provider's keys in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError

from broker.core.errors import BadRequest
from broker.core.whole_numbers import MAX_AGE_DIGITS, whole_number
from broker.oidc import requested_claims as oidc_claims
from broker.oidc.id_token_hint import HintRefused, hinted_subject
from broker.oidc.response_modes import QUERY, RESPONSE_MODES
from broker.oidc.signing_keys import SigningKeys

# Parameters this provider understands on the authorization endpoint; others are ignored (OAuth).
UNSUPPORTED = {
    "request": "request_not_supported",
    "request_uri": "request_uri_not_supported",
    "registration": "registration_not_supported",
}
# `prompt` values this provider honours (discovery's prompt_values_supported); any other value
# is refused as unsupported (Initiating User Registration 1.0, 4.1: invalid_request).
# `consent` shows the information notice in this login, whatever it showed before: the notice
# tells the student what their school releases and waits for "Continue" (Core 3.1.2.1's
# prompt before returning information). It is no consent in the GDPR sense (the school's
# decision is the legal basis), so its wording stays the notice's own.
CONSENT = "consent"
PROMPTS_SUPPORTED = ("none", "login", CONSENT, "select_account")


@dataclass(frozen=True)
class OpenIdRequest:
    """What the checks found: the scope values, the `claims` parameter, `max_age`, the
    `prompt` values, and the pseudonyms the client accepts as the student (empty: anyone)."""

    scopes: list[str]
    claims: dict[str, Any]
    max_age: int | None
    prompts: frozenset[str]
    subjects: frozenset[str]


def check_openid_request(
    payload: Any,
    redirect_uri: str,
    *,
    client_id: str,
    issuer: str,
    keys: SigningKeys,
) -> OpenIdRequest:
    """`payload`: authlib's payload of the request (`data`, `datalist`)."""
    data: Mapping[str, str] = payload.data
    scopes = data.get("scope", "").split()
    if oidc_claims.OPENID not in scopes:
        raise InvalidScopeError("The openid scope is required.", redirect_uri=redirect_uri)
    if not redirect_uri:
        raise InvalidRequestError("The redirect_uri parameter is required.")
    for name, error in UNSUPPORTED.items():
        if name in data:
            raise oauth_error(error, f"The {name} parameter is not supported.", redirect_uri)
    if data.get("response_mode", QUERY) not in RESPONSE_MODES:
        # Answered in the query mode (response_modes.response_mode): fragment belongs to the
        # implicit and hybrid flows, which this provider does not have.
        raise InvalidRequestError(
            "The response_mode parameter must be query or form_post: this provider has the "
            "authorization code flow only.",
            redirect_uri=redirect_uri,
        )
    prompts = _prompts(data.get("prompt", ""), redirect_uri)
    try:
        claims = oidc_claims.parse_claims_parameter(data.get("claims"))
        subjects = oidc_claims.requested_subjects(claims)
    except BadRequest as bad:
        raise InvalidRequestError(bad.detail, redirect_uri=redirect_uri) from None
    hint = data.get("id_token_hint")
    if hint:
        try:
            hinted = frozenset({hinted_subject(hint, issuer, keys, client_id)})
        except HintRefused as refused:
            raise InvalidRequestError(refused.reason, redirect_uri=redirect_uri) from None
        subjects = hinted if subjects is None else subjects & hinted
    if subjects is not None and not subjects:
        raise InvalidRequestError(
            "The id_token_hint and the sub values of the claims parameter name no student in "
            "common.",
            redirect_uri=redirect_uri,
        )
    max_age = None
    if "max_age" in data:
        max_age = whole_number(data["max_age"], MAX_AGE_DIGITS)
        if max_age is None:
            raise InvalidRequestError(
                "The max_age parameter must be a whole number of seconds.",
                redirect_uri=redirect_uri,
            )
    return OpenIdRequest(scopes, claims, max_age, prompts, subjects or frozenset())


def _prompts(prompt: str, redirect_uri: str) -> frozenset[str]:
    """The `prompt` values (authlib has refused `none` with others, `none consent` included,
    and `none` without a session, already)."""
    prompts = frozenset(prompt.split())
    if not prompts <= set(PROMPTS_SUPPORTED):
        raise InvalidRequestError(
            "The prompt parameter holds a value this provider does not support; see "
            "prompt_values_supported.",
            redirect_uri=redirect_uri,
        )
    return prompts


def oauth_error(code: str, description: str, redirect_uri: str) -> OAuth2Error:
    error = InvalidRequestError(description, redirect_uri=redirect_uri)
    error.error = code
    return error
