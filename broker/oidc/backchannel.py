"""OpenID Connect Back-Channel Logout 1.0 towards publishers: the logout token and its delivery.

A platform that registered a `backchannel_logout_uri` hears of a logout server to server: the
broker POSTs `logout_token=<JWT>` (section 2.5) and counts 200 or 204 as confirmed; any other
status, a redirect or a connection failure as failed; no answer within the time it is given as
timed out (section 2.8). The token is signed with the provider's ID-token key for the client's
algorithm, typed `logout+jwt` (section 2.4 and RFC 8725 3.11, so it cannot pass as an ID token),
and names the session by `sid` and the student by `sub`, with a fresh `jti` and no `nonce`.

The POST goes out under the outbound rules of rp_http.py (https, or plain http to loopback only
when the broker itself runs on loopback; public addresses only; no redirects followed; the
answer capped and cut off at the deadline), and only ever to the URI the client registered.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from joserfc import jwt

from broker.core.model import OidcClient
from broker.login.logout_delivery import Notification, PostAnswer, deliver
from broker.login.logout_run import FAILED
from broker.oidc.rp_http import FORM, PlatformSession, call_budget
from broker.oidc.signing_keys import RS256, SigningKeys

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type, not a secret
# Long enough for a platform's clock to be a little off, short enough to be useless later.
LOGOUT_TOKEN_LIFETIME = 120


@dataclass(frozen=True)
class LogoutSubject:
    """Who is logged out, as the platform knows them: its client id, the student's `sub` and
    the SSO session's `sid` from the ID tokens it received."""

    client_id: str
    sub: str
    sid: str


class LogoutTokens:
    def __init__(
        self, issuer: str, keys: SigningKeys, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuer = issuer
        self.keys = keys
        self.clock = clock

    def issue(self, client: OidcClient, subject: LogoutSubject) -> str:
        alg = client.id_token_alg if client.id_token_alg in self.keys.algorithms else RS256
        key = self.keys.key_for(alg)
        now = int(self.clock())
        header = {"alg": alg, "kid": str(key.kid), "typ": LOGOUT_TOKEN_TYPE}
        claims = {
            "iss": self.issuer,
            "aud": subject.client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_LIFETIME,
            "jti": secrets.token_urlsafe(24),
            "events": {LOGOUT_EVENT: {}},
            "sub": subject.sub,
            "sid": subject.sid,
        }
        return jwt.encode(header, claims, key, algorithms=[alg])


class ServerPost:
    """The broker's `BackChannelPost` (login/logout_delivery.py): one POST under rp_http.py's
    outbound rules, bounded by the time it is given. Also SAML's SOAP binding goes out here
    (broker/saml/logout_soap.py), so every server-to-server logout keeps the same rules."""

    def __init__(self, *, allow_loopback: bool) -> None:
        self.allow_loopback = allow_loopback

    def __call__(self, notification: Notification, timeout: float) -> PostAnswer:
        # Half the time per socket step: connecting and reading together stay within `timeout`.
        # A platform's session: its failures say platform_unreachable, platform_timeout.
        session = PlatformSession(timeout / 2, allow_loopback=self.allow_loopback)
        headers = {**notification.headers, "Content-Type": notification.content_type}
        with call_budget(timeout):
            response = session.request(
                "POST", notification.url, headers=headers, form=notification.body
            )
        return PostAnswer(response.status_code, response.content)


def _confirms(answer: PostAnswer) -> str:
    """Section 2.8: 200 or 204 is the platform's confirmation; any other status its refusal."""
    return "" if answer.status_code in (200, 204) else str(answer.status_code)


class BackChannelLogout:
    """Delivers logout tokens; one call per platform, each bounded by the time it is given."""

    def __init__(self, tokens: LogoutTokens, *, allow_loopback: bool) -> None:
        self.tokens = tokens
        self.post = ServerPost(allow_loopback=allow_loopback)

    def notify(
        self, service_id: str, client: OidcClient, subject: LogoutSubject, timeout: float
    ) -> str:
        uri = client.backchannel_logout_uri
        if not uri:
            return FAILED
        body = urlencode({"logout_token": self.tokens.issue(client, subject)})
        return deliver(self.post, service_id, Notification(uri, body, FORM), timeout, _confirms)
