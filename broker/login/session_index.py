"""The session identifier a service is given: SAML `SessionIndex`, OIDC `sid`.

Each service gets its own value for one SSO session: an HMAC, keyed with the session's SSO
token, of the service id (domain-separated). A value the same at every service of the session
would let two publishers in different chains join their chain pseudonyms (pseudonyms.md) by
comparing it; no service needs another's value (a logout names each service's own, kept in the
session's record of services, participants.py), and OIDC Core allows a `sid` per client. The
same service gets the same value on every answer within the session (SSO answers after the
first, prompt=none, tokens reissued from its grant), so its logout still names the session.
Derived one way from the token: it never reveals the cookie, and it is known without the store
(a logout while the store is down can still tell whether a value is this browser's).

Shape: "_" and 40 hex digits, as before (an NCName-like value some SAML stacks expect).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from hashlib import sha256

LABEL = b"ketenbroker/session-index/per-service\0"
DIGITS = 40


def session_index(token: str | None, service_id: str) -> str:
    """The value `service_id` sees for the SSO session `token`; random without a session (SSO
    off: nothing to name again, and nothing to link)."""
    if not token:
        return "_" + secrets.token_hex(DIGITS // 2)
    digest = hmac.new(token.encode(), LABEL + service_id.encode(), sha256).hexdigest()
    return "_" + digest[:DIGITS]


def shared_session_index(token: str) -> str:
    """COMPAT(session-index-per-service): the one value every service of a session was given
    before the per-service derivation. Accepted (never issued) as naming its session, for
    sessions opened before the upgrade. Remove in the first release deployed more than the
    longest SSO session (`login.sso_session_seconds`, at most 24 hours) after this one: by then
    no session that handed it out stands."""
    return "_" + sha256(f"ketenbroker/session-index/{token}".encode()).hexdigest()[:DIGITS]


def names_session(token: str | None, service_id: str, values: Iterable[str]) -> bool:
    """Whether one of `values` (from a service's logout request or ID token hint) is what
    `service_id` was given for the session `token`: its own value, or the shared one of a
    session opened before the upgrade (COMPAT(session-index-per-service))."""
    if not token:
        return False
    known = (session_index(token, service_id).encode(), shared_session_index(token).encode())
    # Bytes: compare_digest refuses a str with characters beyond ASCII (a peer's input).
    return any(hmac.compare_digest(value.encode(), each) for value in values for each in known)
