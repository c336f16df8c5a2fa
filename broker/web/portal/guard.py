"""What keeps a stolen password or cookie from being worth much: sign-in throttling and
server-side portal sessions, both in the broker's store (shared by every worker).

Throttling: 5 sign-in attempts for one e-mail address (a successful one starts its count
again), or 30 from one network address (successful ones included), within a 15-minute window;
further attempts are refused before any password is hashed (so they cost the broker nothing
either) until the window has passed. Every attempt is counted before its password is checked,
with the store's atomic counter (`KeyValueStore.count`, as the rate limits count): of any number
of attempts sent at once, at most the limit reach the check. A TOTP code has a million values;
5 tries per 15 minutes make guessing one hopeless. The counters are keyed by an HMAC under the
broker's secret key: the store holds no e-mail or network address, and a copy of it cannot be
checked against a list of known addresses (a plain hash could be, and an IPv4 address's hash
reversed by trying them all). Someone who knows an administrator's address can lock them out for 15
minutes at a time; that is the price of not letting anyone guess.

Sessions: the cookie carries a random session id; the store maps its hash to the administrator
for 30 minutes, renewed by every request, and never beyond 8 hours after sign-in. Signing out
deletes it, so a copied cookie dies with the sign-out.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from hashlib import sha256

from broker.core.ports import KeyValueStore

ACCOUNT_FAILURES = 5
ADDRESS_ATTEMPTS = 30
WINDOW_SECONDS = 15 * 60
IDLE_SECONDS = 30 * 60
MAX_SESSION_SECONDS = 8 * 60 * 60


def _key(kind: str, value: str) -> str:
    # Session ids are random: a plain hash keeps the cookie's value out of the store.
    return f"portal:{kind}:{sha256(value.encode()).hexdigest()}"


def _counter(secret: bytes, kind: str, value: str) -> str:
    label = f"ketenbroker/portal-{kind}/".encode()
    digest = hmac.new(secret, label + value.strip().lower().encode(), sha256).hexdigest()
    return f"portal:{kind}:{digest}"


def sign_in_throttled(store: KeyValueStore, secret: bytes, email: str, address: str) -> bool:
    """Counts this attempt, before anything is checked; True when it is over a limit. One atomic
    step per counter, so two attempts never see the same count (an attempt over the account's
    limit is not counted for the address: it is refused either way). `secret`: the broker's
    secret key, which keys the counters."""
    account = _counter(secret, "sign-in-account", email)
    address_key = _counter(secret, "sign-in-address", address)
    return (
        store.count(account, WINDOW_SECONDS) > ACCOUNT_FAILURES
        or store.count(address_key, WINDOW_SECONDS) > ADDRESS_ATTEMPTS
    )


def note_success(store: KeyValueStore, secret: bytes, email: str) -> None:
    """The account's attempts start again (the address's stay counted)."""
    store.delete(_counter(secret, "sign-in-account", email))


def open_session(store: KeyValueStore, admin_id: int) -> tuple[str, int]:
    """A new session: (id for the cookie, sign-in time)."""
    session_id = secrets.token_urlsafe(32)
    store.put(_key("session", session_id), str(admin_id).encode(), IDLE_SECONDS)
    return session_id, int(time.time())


def session_admin(store: KeyValueStore, session_id: str, signed_in_at: int) -> int | None:
    """The administrator of a live session (and its idle time starts again), or None."""
    left = MAX_SESSION_SECONDS - (time.time() - signed_in_at)
    if not session_id or len(session_id) > 128 or left < 0:
        return None
    # Read and renewed in one step: a read then a write would put back a session that a
    # sign-out (or a sign-in at the same browser) deleted between the two, and a request with
    # a copied cookie at that moment would outlive the sign-out. Never renewed past the cap.
    value = store.renew(_key("session", session_id), min(IDLE_SECONDS, max(1, math.ceil(left))))
    if value is None or not value.isdigit():
        return None
    return int(value)


def close_session(store: KeyValueStore, session_id: str) -> None:
    if session_id:
        store.delete(_key("session", session_id))
