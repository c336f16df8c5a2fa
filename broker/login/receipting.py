"""Accounting for a release: the receipt every completed login files, and the information notice
that tells a student, before the first answer of a session to a service, what that service is
about to receive and why.

When is the notice due? Always when the service asked for it in this login (OIDC
prompt=consent). Otherwise not when the SSO session already showed it for this very release (the
same attribute names with the same purposes of record; the session's record of its services
keeps that, login/participants.py), and yes in every other case, unless the school chose
`changes` for the service and the student's last receipt there shows the same release: the same
names, written after each one's purpose of record began (core/notice_release.py). A release that
changes (other attributes, or a new purpose for one) always shows the notice again; a school
saving the same choice again (a new policy version) does not.

A login waiting on the notice is held sealed under the browser's secret, like every other login
state (sealed.py), and taken once when the student continues (and held again under the same id when
that could not be answered: the store or the registry out of reach, whose page says "try again").
Its answer leaves a short mark in its place once its receipt is filed (`done_op`: the service and
where its site is, sealed the same way, for the login's lifetime), so the Back button from the
platform to the notice's address finds "already signed in" there, not an error. A login a school's
answer completed leaves the same mark under the login's id (`LOGIN_DONE`), for the school's second
answer to it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.core.errors import StateExpired
from broker.core.model import School, UpstreamIdentity
from broker.core.notice_release import NoticeRelease
from broker.core.ports import KeyValueStore, ReceiptBook, StoreOp
from broker.core.receipts import Receipt, ReceiptContent, ReceiptKeys, receipt_content
from broker.login.login_model import (
    Completion,
    LoginRecord,
    identity_from_payload,
    identity_payload,
)
from broker.login.sealed import SealedStore

NOTICE = "notice"
NOTICE_DONE = "notice-done"
LOGIN_DONE = "login-done"
NOTICE_ON_CHANGES = "changes"


@dataclass(frozen=True)
class AnsweredMark:
    """What is left of a notice the student continued past, or of a login a school's answer
    completed: which service was answered, and its site (None: not known). No one's data: the
    student's browser alone can open it."""

    service_id: str
    site: str | None


@dataclass(frozen=True)
class PendingRelease:
    """A completed login the student has not yet continued past the notice of."""

    record: LoginRecord
    identity: UpstreamIdentity
    authn_instant: float
    sso_token: str | None
    fingerprint: str
    # What the notice page names (attribute names of the release), so it can be shown again
    # (a reload, the language switch) without computing the release again.
    attributes: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        return {
            "record": self.record.to_payload(),
            "identity": identity_payload(self.identity),
            "authn_instant": self.authn_instant,
            "sso_token": self.sso_token,
            "fingerprint": self.fingerprint,
            "attributes": list(self.attributes),
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> PendingRelease:
        return cls(
            LoginRecord.from_payload(data["record"]),
            identity_from_payload(data["identity"]),
            float(data["authn_instant"]),
            data.get("sso_token"),
            str(data["fingerprint"]),
            tuple(data.get("attributes") or ()),
        )


class Receipting:
    def __init__(
        self,
        book: ReceiptBook,
        keys: ReceiptKeys,
        store: KeyValueStore,
        *,
        pending_ttl: int,
        purposes_since: Callable[[str], Mapping[str, float]],
        clock: Callable[[], float] = time.time,
        notice_mode: Callable[[str, str], str] | None = None,
    ) -> None:
        """`notice_mode`: the school's notice mode for a service, by default from the book;
        the broker passes the worker's cached view of it (wiring.py). `purposes_since`: when
        each attribute's purpose of record began at a service (core/notice_release.py), from
        the worker's view too: asked only when a mark or receipt with the same names is
        compared."""
        self.book = book
        self.notice_mode = notice_mode or book.notice_mode
        self.purposes_since = purposes_since
        self.keys = keys
        self.sealed = SealedStore(store)
        self.pending_ttl = pending_ttl
        self.clock = clock

    def content(self, completion: Completion, identity: UpstreamIdentity) -> ReceiptContent:
        return receipt_content(
            self.keys,
            issued_at=int(self.clock()),
            school=completion.school,
            service=completion.service,
            identity=identity,
            release=completion.release,
        )

    def file(self, content: ReceiptContent) -> Receipt:
        """Write the receipt; the caller answers the service only after this succeeded."""
        return self.book.append(content)

    # -- the information notice ----------------------------------------------------------------
    def seen(self, mark: str | None, release: NoticeRelease, session_start: float) -> bool:
        """Whether the session's `mark` for the service (or the held notice's the student
        just continued past) is this very release's; `session_start`: the session's login."""
        return release.seen_in(mark, lambda: self.purposes_since(release.service_id), session_start)

    def notice_due(
        self,
        content: ReceiptContent,
        release: NoticeRelease,
        *,
        school: School,
        identity: UpstreamIdentity,
        seen: bool,
        asked: bool = False,
    ) -> bool:
        """Whether the student sees the notice before `content` (the notice's `release`) is
        released. `seen`: this SSO session showed this very release already. `asked`: the
        service asked for the notice in this login (OIDC prompt=consent), which shows it
        whatever was shown before, without reading the student's last receipt."""
        if asked:
            return True
        if seen:
            return False
        if self.notice_mode(content.school_id, content.service_id) == NOTICE_ON_CHANGES:
            # The content's subject is the service's chain's. COMPAT(receipt-subject-v1): the
            # last receipt may be from before per-chain subjects and carry the old subject (one
            # HMAC more, in `changes` mode only); drop it with `legacy_subject`.
            subjects = (content.subject, self.keys.legacy_subject(school, identity))
            last = self.book.latest_for(content.school_id, subjects, content.service_id)
            if last is not None and release.receipt_shows(
                last.content.attributes,
                last.content.issued_at,
                lambda: self.purposes_since(content.service_id),
            ):
                return False
        return True

    def hold(
        self, browser_secret: bytes, pending: PendingRelease, *, notice_id: str | None = None
    ) -> str:
        """Keep the login until the student continues; returns the id the page posts back.
        `notice_id`: the id it was held under before, to hold it there again (a "Continue"
        that could not be answered: its "try again" posts to the same address)."""
        notice_id = notice_id or secrets.token_urlsafe(18)
        self.sealed.put(browser_secret, NOTICE, notice_id, pending.to_payload(), self.pending_ttl)
        return notice_id

    def peek(self, browser_secret: bytes, notice_id: str) -> PendingRelease:
        """The held login, left in place (the notice page may be shown more than once)."""
        return _pending(self.sealed.get(browser_secret, NOTICE, notice_id))

    def take(self, browser_secret: bytes, notice_id: str) -> PendingRelease:
        """The held login, removed: the student continues once."""
        return _pending(self.sealed.take(browser_secret, NOTICE, notice_id))

    def done_op(
        self,
        browser_secret: bytes,
        answered_id: str,
        service_id: str,
        site: str | None,
        *,
        kind: str = NOTICE_DONE,
    ) -> StoreOp:
        """The mark that the notice `answered_id` was answered, as a write for the batch that
        answers the login (no round trip of its own). `kind` LOGIN_DONE: `answered_id` is a
        login's id, and the mark says that login was answered (a school's second answer to it,
        the Back button into the school's page, finds it: web/notice.py `answered_login`)."""
        payload = {"service_id": service_id, "site": site}
        return self.sealed.put_op(browser_secret, kind, answered_id, payload, self.pending_ttl)

    def done(
        self, browser_secret: bytes, answered_id: str, *, kind: str = NOTICE_DONE
    ) -> AnsweredMark | None:
        """The mark of an answered notice (or login, `kind` LOGIN_DONE), if this browser left
        one (read only where the held login is gone: the Back button, a second "Continue", a
        second answer of the school)."""
        try:
            data = self.sealed.get(browser_secret, kind, answered_id)
        except StateExpired:  # another browser's id: nothing of this browser's
            return None
        if data is None:
            return None
        site = data.get("site")
        return AnsweredMark(str(data["service_id"]), str(site) if site else None)


def _pending(data: dict[str, Any] | None) -> PendingRelease:
    if data is None:
        raise StateExpired("notice absent or used")
    return PendingRelease.from_payload(data)
