"""SSO sessions filed under the school's session id, for a school's logout without the cookie.

A school's OpenID provider that supports Back-Channel Logout 1.0 tells the broker of a logout
server to server, with no browser and so no cookie: the SSO session, sealed under the cookie's
token (flow.py), cannot be found from what the logout token names (the school's `sid`). A SAML
school's LogoutRequest comes through the browser, but not always with the broker's cookies: an
IdP that tells its services in iframes on its own page (Shibboleth IdP's logout propagation)
makes the broker a third party there, and Safari blocks its cookies, Firefox gives the frame a
jar without them. Answered "no session here, Success", the school would tell the student they
are logged out while the session stands in that very browser. So at a login through such a
school (an OIDC one with back-channel logout and a `sid`; a SAML one whose assertion carried a
SessionIndex, filed under that) the broker files one more record:

- its key is an HMAC, under the broker's own secret, of (school id, sid): a dump of the store
  shows neither, and cannot be searched for a guessed sid without that secret;
- its value is the SSO token, sealed (sealed.py) under a key derived, under the broker's
  secret again, from (school id, sid): a leaked store opens nothing without both the secret and
  the sid, and the sid comes only in a logout token the school signed (or in the student's own
  sealed session). Without the secret in it, a guessable sid (a provider that numbers its
  sessions) would have opened a dumped filing, and so the SSO session.

It lives as long as the SSO session (same TTL) and goes when the session ends (logout,
replacement by a fresh login). SAML schools without a SessionIndex in their assertions, and
OIDC schools without a `sid` or without back-channel logout in their discovery, get no such
record: their logins write nothing more.
A logout token that names only `sub` is refused (see docs/oidc-profile.md): the broker asks for
`sid` (`backchannel_logout_session_required`), and keeps no index of a student's sessions.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from hashlib import sha256

from broker.core.errors import StateExpired
from broker.core.model import UpstreamIdentity
from broker.core.ports import KeyValueStore, StoreOp, StoreReply
from broker.login.sealed import seal, unseal

# The upstream-session mark of a provider that sends back-channel logout tokens (its discovery).
BACK_CHANNEL = "back_channel"
# A provider's session id longer than this is not kept (nor filed): no sane `sid` is.
MAX_SID_LENGTH = 255
# A SAML SessionIndex is filed under this prefix: a school's OIDC `sid` and a SAML SessionIndex
# are never the same key, should a school change protocol.
SAML_SESSION = "saml-session-index:"
KIND = "school-sid"
# Filings made before the seal took the secret (2026-11-30) were sealed under the pair alone;
# `find` still opens those, so a school's logout ends sessions that span the upgrade. Once every
# such filing has expired (a session's lifetime after the upgrade) this reads nothing: remove it
# in the next release.
_UNKEYED_BEFORE_UPGRADE = True


def saml_sid(session_index: str) -> str:
    """The key a SAML school's session is filed under: its SessionIndex; "" when there is none
    (or none sane), and the session is then not filed."""
    if not session_index or len(session_index) > MAX_SID_LENGTH - len(SAML_SESSION):
        return ""
    return SAML_SESSION + session_index


def _pair(school_id: str, sid: str) -> bytes:
    # A separator that cannot occur in either: (school "a", sid "b\0c") ≠ (school "a\0b", "c").
    return school_id.encode() + b"\0" + sid.encode()


class SchoolSessionIndex:
    """(school id, school's sid) → the broker's SSO token, for a school's back-channel logout."""

    def __init__(self, store: KeyValueStore, index_secret: bytes, *, session_ttl: int) -> None:
        self.store = store
        self.index_secret = hmac.new(index_secret, b"ketenbroker/school-sid", sha256).digest()
        self.seal_secret = hmac.new(index_secret, b"ketenbroker/school-sid-seal", sha256).digest()
        self.session_ttl = max(session_ttl, 1)

    def _record_id(self, school_id: str, sid: str) -> str:
        return hmac.new(self.index_secret, _pair(school_id, sid), sha256).hexdigest()

    def _key(self, record_id: str) -> str:
        return f"{KIND}:{record_id}"

    def _sealing(self, school_id: str, sid: str) -> bytes:
        # Not the record id (which the key name shows) and not the pair alone (guessable).
        return hmac.new(self.seal_secret, _pair(school_id, sid), sha256).digest()

    @staticmethod
    def filed(identity: UpstreamIdentity) -> str | None:
        """The school's sid when this login is to be filed; None (nothing written) else. For a
        SAML school: its SessionIndex (`saml_sid`), which its LogoutRequests name."""
        upstream = identity.upstream_session
        if upstream.get("protocol") == "saml":
            return saml_sid(upstream.get("session_index", "")) or None
        sid = upstream.get("sid", "")
        if upstream.get(BACK_CHANNEL) != "1" or not sid or len(sid) > MAX_SID_LENGTH:
            return None
        return sid

    def note(self, identity: UpstreamIdentity, sso_token: str) -> None:
        """File a new SSO session under its school's sid (one store write; none for a login
        that `filed` leaves out)."""
        filing = self.note_op(identity, sso_token)
        if filing is not None:
            self.store.put(filing.key, filing.value, filing.ttl_seconds)

    def note_op(self, identity: UpstreamIdentity, sso_token: str) -> StoreOp | None:
        """`note`'s write, for the caller's batch; None when nothing is to be filed."""
        sid = self.filed(identity)
        if sid is None:
            return None
        record_id = self._record_id(identity.school_id, sid)
        blob = seal(self._sealing(identity.school_id, sid), KIND, record_id, {"t": sso_token})
        return StoreOp.put(self._key(record_id), blob, self.session_ttl)

    def find(self, school_id: str, sid: str) -> str | None:
        """The SSO token filed under (school, sid); None when there is none (ended, expired,
        never filed) or the record does not open (it is then not this pair's)."""
        found = self.find_any([school_id], [sid])
        return found[2] if found is not None else None

    def find_any(
        self, school_ids: Sequence[str], sids: Sequence[str]
    ) -> tuple[str, str, str] | None:
        """(school id, sid, SSO token) of the first filing under one of `school_ids` and one of
        `sids`, in one round trip (a board's IdP serves several schools; a LogoutRequest may
        name several SessionIndexes); None when none is filed."""
        pairs = [(s, sid) for s in school_ids for sid in sids if 0 < len(sid) <= MAX_SID_LENGTH]
        if not pairs:
            return None
        record_ids = [self._record_id(s, sid) for s, sid in pairs]
        replies = self.store.batch([StoreOp.get(self._key(r)) for r in record_ids])
        for (school_id, sid), record_id, blob in zip(pairs, record_ids, replies, strict=True):
            token = self._opened(school_id, sid, record_id, blob)
            if token is not None:
                return school_id, sid, token
        return None

    def _opened(self, school_id: str, sid: str, record_id: str, blob: StoreReply) -> str | None:
        if not isinstance(blob, bytes):
            return None
        secrets = [self._sealing(school_id, sid)]
        if _UNKEYED_BEFORE_UPGRADE:
            secrets.append(_pair(school_id, sid))
        for secret in secrets:
            try:
                token = unseal(secret, KIND, record_id, blob).get("t")
            except StateExpired:
                continue
            return token if isinstance(token, str) and token else None
        return None

    def forget(self, identity: UpstreamIdentity, sso_token: str) -> None:
        """The session `sso_token` ended: its record goes (no store call when none was filed).
        Only if it still names that session: a fresh login that replaced it may have been given
        the same sid by the school, and filed the new session under it already.

        A SAML school's filing is left to its TTL instead: checking and removing it would cost
        every logout two round trips, and all it holds, sealed, is the token of a session that
        is gone (a LogoutRequest that finds it ends nothing and drops it; a new login under the
        same SessionIndex files over it)."""
        if identity.upstream_session.get("protocol") == "saml":
            return
        sid = self.filed(identity)
        if sid is not None and self.find(identity.school_id, sid) == sso_token:
            self.drop(identity.school_id, sid)

    def drop(self, school_id: str, sid: str) -> None:
        self.store.delete(self._key(self._record_id(school_id, sid)))
