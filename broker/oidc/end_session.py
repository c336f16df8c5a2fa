"""RP-Initiated Logout 1.0 at the broker's OpenID provider: checking an end_session request.

What a publisher's platform may ask, and what the broker believes of it:

- `id_token_hint`: an ID token the broker issued (its signature under one of the provider's own
  keys, `iss` the broker). An expired one is accepted: a platform logs out long after the token
  was issued (section 2). It names the client (`aud`/`azp`), the student (`sub`) and the SSO
  session (`sid`). A logout token is never accepted as a hint.
- `client_id`: must name the same client as the hint (section 2: "consistent").
- `post_logout_redirect_uri`: only one the client registered, compared exactly, and that
  intake's rule (`redirect_uri_refusal`) still takes at use; and only when the client is known
  (from the hint or `client_id`), else the request is refused with a page: an unregistered
  target never gets a redirect (section 3).
- `state`: echoed on the way back. `ui_locales`: the language of the logout pages.

Nothing here talks to Flask or the store; the route decides what to do with the checked request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.core.endpoints import redirect_uri_refusal
from broker.core.errors import BadRequest
from broker.core.model import Protocol, Service
from broker.core.ports import RegistryReader
from broker.oidc.id_token_hint import HintRefused, hint_claims
from broker.oidc.id_token_hint import audiences as token_audiences
from broker.oidc.signing_keys import SigningKeys

MAX_PARAMETER = 2048
MAX_STATE = 1024
PARAMETERS = (
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
    "logout_hint",
)


class LogoutRequestRefused(BadRequest):
    """An end_session request the broker does not act on (nothing ends, nothing redirects)."""

    code = "logout_refused"
    public_message = "This logout request could not be accepted."


@dataclass(frozen=True)
class EndSessionRequest:
    """A checked end_session request. `client` is None when nothing named one; `sid` and `sub`
    are set only from a valid `id_token_hint` (`hinted`)."""

    client: Service | None
    hinted: bool
    sub: str | None
    sid: str | None
    post_logout_redirect_uri: str | None
    state: str | None
    ui_locales: str | None

    def answer(self) -> dict[str, str]:
        """What the logout run keeps to answer the platform at the end."""
        kept: dict[str, str] = {}
        if self.post_logout_redirect_uri:
            kept["post_logout_redirect_uri"] = self.post_logout_redirect_uri
            if self.state is not None:
                kept["state"] = self.state
        return kept


class EndSessionChecks:
    def __init__(self, issuer: str, keys: SigningKeys, registry: RegistryReader) -> None:
        self.issuer = issuer
        self.keys = keys
        self.registry = registry

    def check(self, params: Mapping[str, list[str]]) -> EndSessionRequest:
        data = _single_values(params)
        hint = data.get("id_token_hint")
        claims = self._hint_claims(hint) if hint else None
        client = self._client(claims, data.get("client_id"))
        target = data.get("post_logout_redirect_uri")
        if target is not None:
            if client is None:
                raise LogoutRequestRefused(
                    "post_logout_redirect_uri without id_token_hint or client_id",
                    code="logout_unknown_client",
                )
            registered = client.oidc.post_logout_redirect_uris if client.oidc else ()
            # Registered, and one intake would take now (as grants.check_redirect_uri holds a
            # redirect_uri): a URI written past intake (a direct database write, plain http to
            # another host) is no target either.
            if target not in registered or redirect_uri_refusal(target) is not None:
                raise LogoutRequestRefused(
                    f"post_logout_redirect_uri not registered for {client.id}",
                    code="logout_unregistered_redirect",
                )
        state = data.get("state")
        if state is not None and len(state) > MAX_STATE:
            raise LogoutRequestRefused("state too long", code="logout_parameter_size")
        return EndSessionRequest(
            client=client,
            hinted=claims is not None,
            sub=_text(claims, "sub"),
            sid=_text(claims, "sid"),
            post_logout_redirect_uri=target,
            state=state,
            ui_locales=data.get("ui_locales"),
        )

    def _hint_claims(self, token: str) -> dict[str, Any]:
        """The claims of an ID token this provider issued (id_token_hint.py), with a `sid`:
        the session it names is what a logout ends."""
        try:
            claims = hint_claims(token, self.issuer, self.keys)
        except HintRefused as refused:
            raise LogoutRequestRefused(refused.reason, code="logout_bad_hint") from None
        if not isinstance(claims.get("sid"), str):
            raise LogoutRequestRefused("id_token_hint without sid", code="logout_bad_hint")
        return claims

    def _client(self, claims: dict[str, Any] | None, client_id: str | None) -> Service | None:
        if claims is not None:
            audiences = token_audiences(claims)
            if not audiences:
                raise LogoutRequestRefused("id_token_hint without aud", code="logout_bad_hint")
            hinted = claims.get("azp") if isinstance(claims.get("azp"), str) else audiences[0]
            if client_id is not None and (client_id != hinted or client_id not in audiences):
                raise LogoutRequestRefused(
                    "client_id differs from the id_token_hint's audience",
                    code="logout_client_mismatch",
                )
            client_id = str(hinted)
        if client_id is None:
            return None
        service = self.registry.service_by_entity_id(client_id)
        if service is None or service.protocol is not Protocol.OIDC or service.oidc is None:
            raise LogoutRequestRefused("end_session for an unknown client", code="logout_client")
        return service


def _single_values(params: Mapping[str, list[str]]) -> dict[str, str]:
    data: dict[str, str] = {}
    for name in PARAMETERS:
        values = params.get(name) or []
        if len(values) > 1:
            raise LogoutRequestRefused(f"{name} given twice", code="logout_repeated_parameter")
        if values:
            if len(values[0]) > MAX_PARAMETER and name != "id_token_hint":
                raise LogoutRequestRefused(f"{name} too long", code="logout_parameter_size")
            data[name] = values[0]
    return data


def _text(claims: dict[str, Any] | None, name: str) -> str | None:
    value = claims.get(name) if claims is not None else None
    return value if isinstance(value, str) else None
