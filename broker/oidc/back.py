"""The OIDC back: the broker as relying party towards schools' OpenID providers.

CONTRACT (filled in by the RP work; the web layer already calls these):
- `authorization_redirect(school, state, ...)` → `UpstreamRedirect`: the URL to send the browser
  to and the values (nonce, PKCE verifier …) the login record keeps, sealed, until the callback.
- `complete(school, params, kept)` → `VerifiedLogin` after every check of security.md; raises
  `InvalidMessage` (a forged or broken answer) or `UpstreamFailure` (the school said no).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.core.model import School, UpstreamIdentity


@dataclass(frozen=True)
class UpstreamRedirect:
    redirect_url: str
    request_id: str  # logged and kept like a SAML request id (the nonce's digest, say)
    kept: dict[str, str]


@dataclass(frozen=True)
class VerifiedLogin:
    identity: UpstreamIdentity  # authn_context = the school's `acr`, raw
    authn_instant: float  # `auth_time`, or the ID token's `iat`


class OidcBack:
    def authorization_redirect(
        self,
        school: School,
        state: str,
        *,
        force_login: bool,
        max_age: int | None,
        acr_values: tuple[str, ...],
        acr_essential: bool,
    ) -> UpstreamRedirect:
        raise NotImplementedError

    def complete(
        self, school: School, params: dict[str, str], kept: dict[str, str]
    ) -> VerifiedLogin:
        raise NotImplementedError
