"""The services of one SSO session: who must hear of a logout, and what each was told.

One record per SSO session, sealed under the SSO token like the session itself (sealed.py),
holds a *participant* per service the session answered: its protocol, what the service was
given to name the session (SAML NameID and SessionIndex, OIDC sub and sid) and the release the
information notice was shown for. A login reads this one record; it writes it only when
something changed, so a returning login to a service with the same release writes nothing.

Two logins of one session may finish at once (two tabs; a learning environment that opens
several publishers' tiles with silent SSO): both read the same record and each adds its own
service. So a login writes the record back only if it still holds the exact bytes it read
(`KeyValueStore.replace_if_same`, in the login's own batch); when another login wrote in between,
it reads the record again and adds its participant to that (`SessionServiceBook.settle`), so
neither service drops out of the record a logout reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from broker.core.errors import StateExpired, StoreUnavailable
from broker.core.model import UpstreamIdentity
from broker.core.notice_release import is_current_mark
from broker.core.ports import KeyValueStore, StoreOp, StoreReply
from broker.login.flow import LoginFlow, readable_token
from broker.login.sealed import SealedStore, store_key

SESSION_SERVICES = "sso-services"
# More services than this in one session is not a student's day at school: the oldest entries
# go, so a scripted session cannot grow its record (and every login's read) without bound.
MAX_PARTICIPANTS = 64
# As the SSO session's own (flow.py): a longer cookie is not looked up.
MAX_TOKEN_LENGTH = 128
# OIDC: the token families (oidc/grants.py) of the logins the session answered the service
# with, newest first, space-separated; the session's end revokes each (Back-Channel Logout 1.0
# 2.7; SingleLogout.ending). Every login to the service in the session makes a family, so the
# entry keeps the earlier ones too, up to this many: a family older than that (a student who
# logged in to one platform more often in one session) then ends at its own expiry.
FAMILIES = "families"
MAX_FAMILIES = 16
# How often a login reads the record again after another login of the session wrote it first.
# Each failed try means another login's write went in, so this many logins finishing within the
# same few milliseconds; past it the login is refused as with a store failure (try again).
MAX_WRITE_TRIES = 16


@dataclass(frozen=True)
class Participant:
    """One service of an SSO session.

    `handles` is what the service knows the session by, in its protocol's own terms:
    SAML `name_id`, `name_id_format`, `name_qualifier`, `sp_name_qualifier`, `session_index`,
    `sp_entity_id`;
    OIDC `sub`, `sid`, `client_id`, and `families` (FAMILIES). `seen` is the release fingerprint
    the notice was shown (or needed not be shown) for in this session.
    """

    service_id: str
    protocol: str
    handles: dict[str, str] = field(default_factory=dict)
    seen: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {"p": self.protocol, "h": dict(self.handles), "s": self.seen}

    @classmethod
    def from_payload(cls, service_id: str, data: dict[str, Any]) -> Participant:
        return cls(
            service_id,
            str(data.get("p", "")),
            {str(k): str(v) for k, v in (data.get("h") or {}).items()},
            str(data.get("s", "")),
        )


@dataclass(frozen=True)
class SessionServices:
    """Every participant of one SSO session, in the order they first logged in. `stored`: the
    record's bytes as read (None: there was none), which a write back must find unchanged."""

    participants: tuple[Participant, ...] = ()
    stored: bytes | None = field(default=None, compare=False, repr=False)

    def get(self, service_id: str) -> Participant | None:
        for participant in self.participants:
            if participant.service_id == service_id:
                return participant
        return None

    def seen(self, service_id: str) -> str:
        participant = self.get(service_id)
        return participant.seen if participant is not None else ""

    def with_login(self, participant: Participant) -> SessionServices:
        """This record after `participant` was answered (replacing its earlier entry)."""
        kept = [p for p in self.participants if p.service_id != participant.service_id]
        earlier = self.get(participant.service_id)
        if earlier is not None and not participant.seen:
            participant = replace(participant, seen=earlier.seen)
        if earlier is not None:
            participant = _with_earlier_families(participant, earlier)
        kept.append(participant)
        return SessionServices(tuple(kept[-MAX_PARTICIPANTS:]))

    def handed_on(self, *, same_student: bool) -> SessionServices:
        """What a replaced session hands on to the new one: the same services, with the notice
        marks only for the same student. COMPAT(notice-names-only): not a mark that names the
        attributes only, which counts only in the session that wrote it
        (core/notice_release.py)."""
        return SessionServices(
            tuple(
                p if same_student and is_current_mark(p.seen) else replace(p, seen="")
                for p in self.participants
            )
        )

    def to_payload(self) -> dict[str, Any]:
        return {p.service_id: p.to_payload() for p in self.participants}

    @classmethod
    def from_payload(cls, data: dict[str, Any], stored: bytes | None = None) -> SessionServices:
        return cls(tuple(Participant.from_payload(k, v) for k, v in data.items()), stored)


def _with_earlier_families(participant: Participant, earlier: Participant) -> Participant:
    """`participant` keeping the token families of `earlier` logins to its service after its
    own (they all end with the session). COMPAT(oidc-logout-families): an entry recorded by a
    worker from before families has none, and its tokens are not revoked at logout (they end
    at their expiry); remove this note once every worker records families and the longest
    SSO session (sso_session_seconds) since has passed."""
    new = participant.handles.get(FAMILIES, "").split()
    if not new:
        return participant
    old = [f for f in earlier.handles.get(FAMILIES, "").split() if f not in new]
    families = " ".join([*new, *old][:MAX_FAMILIES])
    return replace(participant, handles={**participant.handles, FAMILIES: families})


class SessionServiceBook:
    """Reads and writes the per-session record; the SSO token is both its key and its seal."""

    def __init__(self, store: KeyValueStore, *, session_ttl: int) -> None:
        self.sealed = SealedStore(store)
        self.session_ttl = max(session_ttl, 1)

    def read(self, sso_token: str | None) -> SessionServices:
        if not sso_token or len(sso_token) > MAX_TOKEN_LENGTH:
            return SessionServices()
        return self.read_from(
            sso_token, self.sealed.store.get(store_key(SESSION_SERVICES, sso_token))
        )

    @staticmethod
    def read_op(sso_token: str) -> StoreOp:
        """The read `read` makes, for a batch (only for a token `read` would look up)."""
        return SealedStore.get_op(SESSION_SERVICES, sso_token)

    @staticmethod
    def read_from(sso_token: str | None, reply: StoreReply) -> SessionServices:
        """`read_op`'s reply opened as `read` returns it."""
        if not sso_token or len(sso_token) > MAX_TOKEN_LENGTH:
            return SessionServices()
        stored = reply if isinstance(reply, bytes) else None
        try:
            data = SealedStore.opened(sso_token.encode(), SESSION_SERVICES, sso_token, reply)
        except StateExpired:
            data = None
        return SessionServices.from_payload(data or {}, stored)

    def record(
        self,
        sso_token: str,
        before: SessionServices,
        participant: Participant,
        *,
        new_session: bool = False,
    ) -> None:
        """Note an answered login; no write when the record already says exactly this (a new
        session's record, which may hand on a replaced session's services, is always written)."""
        write = self.record_op(sso_token, before, participant, new_session=new_session)
        if write is not None:
            self.settle(sso_token, participant, self.sealed.store.batch([write])[0])

    def record_op(
        self,
        sso_token: str,
        before: SessionServices,
        participant: Participant,
        *,
        new_session: bool = False,
    ) -> StoreOp | None:
        """`record`'s write, for the caller's batch; None when there is nothing to write. It
        writes only if the record is still as `before` was read (a new session's, whose token
        no other request has yet, always); pass its reply to `settle`."""
        if not new_session and before.get(participant.service_id) == participant:
            return None
        after = before.with_login(participant)
        write = self.sealed.put_op(
            sso_token.encode(), SESSION_SERVICES, sso_token, after.to_payload(), self.session_ttl
        )
        if new_session:
            return write
        return StoreOp.replace_if_same(write.key, before.stored, write.value, write.ttl_seconds)

    def settle(self, sso_token: str, participant: Participant, reply: StoreReply) -> None:
        """After `record_op`'s write ran with `reply`: when another login of the session wrote
        the record first (False), read it again and add `participant` to what it holds now,
        until a write goes in or the record already says it. Two round trips a try, on this
        path only. `StoreUnavailable` when the store fails or after `MAX_WRITE_TRIES`: the
        service could not be recorded, so a logout could not reach it. `StateExpired` when the
        record is gone on the re-read: only a session's end removes it (a logout in another tab,
        a replacing login), so this login would otherwise write a record for an ended session
        that no logout reads, and answer a service no logout reaches."""
        for _ in range(MAX_WRITE_TRIES):
            if reply is not False:
                return
            now = self.read(sso_token)
            if now.stored is None:
                raise StateExpired(
                    "the SSO session ended while this login finished", code="session_ended"
                )
            write = self.record_op(sso_token, now, participant)
            if write is None:
                return
            reply = self.sealed.store.batch([write])[0]
        if reply is False:
            # The store answers: name the contention, not an outage (the log and the
            # setbacks metric tell them apart), though the student's page is the same.
            raise StoreUnavailable(
                "session services record kept changing under this login",
                code="session_record_contended",
            )

    def forget_op(self, sso_token: str) -> StoreOp:
        return self.sealed.delete_op(SESSION_SERVICES, sso_token)

    def forget(self, sso_token: str) -> None:
        self.sealed.delete(SESSION_SERVICES, sso_token)


def session_and_services(
    flow: LoginFlow, book: SessionServiceBook, token: str | None
) -> tuple[tuple[UpstreamIdentity, float] | None, SessionServices]:
    """The SSO session `token` names and its record of services, in one round trip (none
    for a missing or overlong token): the login and logout steps that need both."""
    if not token or not readable_token(token):
        return None, SessionServices()
    held, services = flow.store.batch([flow.session_read(token), book.read_op(token)])
    return flow.session_from(token, held), book.read_from(token, services)
