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

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from joserfc import jwt

from broker.core.errors import SchoolTimeout, UpstreamFailure
from broker.core.model import OidcClient
from broker.oidc.rp_http import SchoolSession, call_budget
from broker.oidc.signing_keys import RS256, SigningKeys

log = logging.getLogger(__name__)

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type, not a secret
# Long enough for a platform's clock to be a little off, short enough to be useless later.
LOGOUT_TOKEN_LIFETIME = 120

# What a notification ends as (the logout run's statuses; login/logout.py names them alike).
CONFIRMED = "confirmed"
FAILED = "failed"
TIMED_OUT = "timed_out"


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


class BackChannelLogout:
    """Delivers logout tokens; one call per platform, each bounded by the time it is given."""

    def __init__(self, tokens: LogoutTokens, *, allow_loopback: bool) -> None:
        self.tokens = tokens
        self.allow_loopback = allow_loopback

    def notify(
        self, service_id: str, client: OidcClient, subject: LogoutSubject, timeout: float
    ) -> str:
        uri = client.backchannel_logout_uri
        if not uri:
            return FAILED
        token = self.tokens.issue(client, subject)
        # Half the time per socket step: connecting and reading together stay within `timeout`.
        session = SchoolSession(timeout / 2, allow_loopback=self.allow_loopback)
        try:
            with call_budget(timeout):
                response = session.request("POST", uri, form={"logout_token": token})
        except SchoolTimeout:
            outcome = TIMED_OUT
        except UpstreamFailure as failure:
            log.info("back-channel logout failed service=%s code=%s", service_id, failure.code)
            outcome = FAILED
        else:
            outcome = CONFIRMED if response.status_code in (200, 204) else FAILED
            if outcome == FAILED:
                log.info(
                    "back-channel logout refused service=%s status=%s",
                    service_id,
                    response.status_code,
                )
        return outcome
