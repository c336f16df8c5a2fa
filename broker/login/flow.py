"""The login flow as explicit steps: request in → school chosen → upstream login → release.

Protocol adapters call these steps with neutral objects; nothing here knows SAML, OIDC or Flask.
The browser is represented by `browser_secret` (from its cookie): every record this flow keeps
is sealed under it, so a record found without the cookie is useless (sealed.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from broker.core.assurance import DEFAULT_ASSURANCE, Assurance
from broker.core.errors import (
    AssuranceNotMet,
    StaleAuthentication,
    StateExpired,
    UnexpectedStudent,
    UnknownSchool,
    UnknownService,
)
from broker.core.model import Release, School, Service, UpstreamIdentity
from broker.core.ports import (
    KeyValueStore,
    PseudonymKeySource,
    RegistryReader,
    StoreOp,
    StoreReply,
)
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import HeldKeySource, KeyVersions, key_versions_for
from broker.core.release import chain_pseudonyms, compute_release
from broker.login.replay import open_epoch_op
from broker.login.school_sessions import SchoolSessionIndex
from broker.login.sealed import SealedStore, store_key

LOGIN = "login"
SSO = "sso"
# The broker's own page where a student sees their receipts: a login with no service behind it.
MY_DATA = "ketenbroker:my-data"
MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True)
class LoginRequest:
    """What a publisher asked for, in neutral form. `front` is the front adapter's own data
    (request id, ACS URL, RelayState …) that it needs to answer; the flow only carries it."""

    service_id: str
    requested: frozenset[str] | None = None
    school_hint: str | None = None
    force_authn: bool = False
    front: dict[str, str] = field(default_factory=dict)
    # Assurance levels (names from the `[assurance]` configuration) the service accepts; empty
    # means any. With `acr_required` a login at another level is refused, not answered.
    acr: tuple[str, ...] = ()
    acr_required: bool = False
    # OIDC `max_age`: an SSO session older than this many seconds does not answer the request.
    max_age: int | None = None
    # The pseudonyms the service accepts as the student (OIDC `id_token_hint`, a requested
    # `sub` value): only their login may answer. Empty: any student (the usual case).
    subjects: tuple[str, ...] = ()
    # The student chooses the school on the discovery page, even with an SSO session or a
    # school hint (OIDC prompt=select_account).
    choose_school: bool = False
    # The service asks for the information notice in this login even where it would be
    # skipped (this session or the student's last receipt showed the same release): OIDC
    # prompt=consent. The student's "Continue" is that interaction (docs/receipts.md).
    show_notice: bool = False
    # How many proxies the service still allows behind the broker (a SAML ProxyCount less one,
    # core 3.4.1.5.1), passed on to a SAML school; None: no limit.
    proxy_count: int | None = None


@dataclass(frozen=True)
class LoginRecord:
    login_id: str
    request: LoginRequest
    created: float
    school_id: str | None = None
    upstream_request_id: str | None = None
    # The back adapter's own state for the school's answer (OIDC nonce, PKCE verifier …).
    upstream: dict[str, str] = field(default_factory=dict)
    # When the student was sent to the school (epoch seconds): the upstream wait metric. None
    # for a request prepared with the discovery page (the broker never sees the student leave).
    upstream_at: float | None = None

    def to_payload(self) -> dict[str, Any]:
        """The record as JSON-ready data: what `dataclasses.asdict` gives, written out because
        asdict's generic deep copy cost ~60 us of every save (tests/unit/test_sealed_and_flow.py
        holds the two equal, so a new field cannot be forgotten here)."""
        request = self.request
        requested = request.requested
        return {
            "login_id": self.login_id,
            "request": {
                "service_id": request.service_id,
                "requested": None if requested is None else sorted(requested),
                "school_hint": request.school_hint,
                "force_authn": request.force_authn,
                "front": dict(request.front),
                "acr": request.acr,
                "acr_required": request.acr_required,
                "max_age": request.max_age,
                "subjects": request.subjects,
                "choose_school": request.choose_school,
                "show_notice": request.show_notice,
                "proxy_count": request.proxy_count,
            },
            "created": self.created,
            "school_id": self.school_id,
            "upstream_request_id": self.upstream_request_id,
            "upstream": dict(self.upstream),
            "upstream_at": self.upstream_at,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> LoginRecord:
        req = data["request"]
        requested = req.get("requested")
        front = dict(req.get("front") or {})
        proxy_count = req.get("proxy_count")
        legacy = front.pop("proxy_count", None)
        if proxy_count is None and legacy is not None and legacy.isdigit():
            # A record saved before the field existed kept it in `front`, already less one.
            # Records live at most the login TTL: this can go one release later. (A record
            # this release saves, read by a worker of the last one during a rolling deploy,
            # loses the limit: its school is told of no ProxyCount for that one login.)
            proxy_count = int(legacy)
        request = LoginRequest(
            service_id=req["service_id"],
            requested=None if requested is None else frozenset(requested),
            school_hint=req.get("school_hint"),
            force_authn=bool(req.get("force_authn")),
            front=front,
            acr=tuple(req.get("acr") or ()),
            acr_required=bool(req.get("acr_required")),
            max_age=req.get("max_age"),
            subjects=tuple(req.get("subjects") or ()),
            choose_school=bool(req.get("choose_school")),
            show_notice=bool(req.get("show_notice")),
            proxy_count=proxy_count,
        )
        return cls(
            login_id=data["login_id"],
            request=request,
            created=float(data["created"]),
            school_id=data.get("school_id"),
            upstream_request_id=data.get("upstream_request_id"),
            upstream=dict(data.get("upstream") or {}),
            upstream_at=data.get("upstream_at"),
        )


@dataclass(frozen=True)
class Completion:
    """A finished login: what the front turns into its response."""

    request: LoginRequest
    service: Service
    school: School
    release: Release
    authn_instant: float
    authn_context: str | None
    # The level (assurance.py) the school's answer stands for; fronts emit it in their protocol.
    assurance_level: str | None = None


class LoginFlow:
    def __init__(
        self,
        registry: RegistryReader,
        store: KeyValueStore,
        keys: PseudonymKeys | PseudonymKeySource,
        *,
        login_ttl: int,
        sso_ttl: int,
        assurance: Assurance = DEFAULT_ASSURANCE,
        clock_skew: int = 60,
        clock: Callable[[], float] = time.time,
        school_sessions: SchoolSessionIndex | None = None,
    ) -> None:
        self.assurance = assurance
        # Sessions filed under the school's sid, for its back-channel logout (None: not filed).
        self.school_sessions = school_sessions
        self.clock_skew = clock_skew
        self.registry = registry
        self.store = store
        self.sealed = SealedStore(store)
        self.keys = HeldKeySource(keys) if isinstance(keys, PseudonymKeys) else keys
        self.login_ttl = login_ttl
        self.sso_ttl = sso_ttl
        self.clock = clock

    # -- step 1: a publisher's request arrives ------------------------------------------------
    def start(
        self, browser_secret: bytes, request: LoginRequest, *, save: bool = True
    ) -> LoginRecord:
        """`save=False`: the record is only made here, and saved with `save_new` (or
        `note_upstream(..., first_save=True)`) once the login goes on to a school or to
        discovery; a request an SSO session answers at once writes no record at all."""
        if not is_my_data(request) and self.registry.service(request.service_id) is None:
            raise UnknownService(f"service {request.service_id} not in registry")
        hint = None if request.choose_school else request.school_hint
        school_id = hint if hint and self.registry.school(hint) is not None else None
        record = LoginRecord(secrets.token_urlsafe(18), request, self.clock(), school_id)
        if save:
            self.save_new(browser_secret, record)
        return record

    def save_new(self, browser_secret: bytes, record: LoginRecord) -> None:
        """A record's first save. The store epoch is never later than a login the store holds
        (replay.py): written first, in the same batch (one round trip, order kept)."""
        self.store.batch([open_epoch_op(record.created), self._save_op(browser_secret, record)])

    def with_school(self, record: LoginRecord, school_id: str) -> LoginRecord:
        """`record` with the school chosen (not saved: `note_upstream` saves it)."""
        if self.registry.school(school_id) is None:
            raise UnknownSchool(f"school {school_id} not in registry")
        return replace(record, school_id=school_id)

    def load(self, browser_secret: bytes, login_id: str) -> LoginRecord:
        data = self.sealed.get(browser_secret, LOGIN, login_id)
        if data is None:
            raise StateExpired("login record absent")
        return LoginRecord.from_payload(data)

    # -- step 2: the student chose a school --------------------------------------------------
    def choose_school(
        self, browser_secret: bytes, login_id: str, school_id: str, *, save: bool = True
    ) -> LoginRecord:
        """`save=False` when `note_upstream` follows at once and saves the record anyway (one
        store write and one sealing fewer per login)."""
        record = self.with_school(self.load(browser_secret, login_id), school_id)
        if save:
            self._save(browser_secret, record)
        return record

    # -- step 3: we sent the school's identity provider a request ----------------------------
    def note_upstream(
        self,
        browser_secret: bytes,
        record: LoginRecord,
        request_id: str,
        upstream: dict[str, str] | None = None,
        *,
        first_save: bool = False,
        prepared: bool = False,
    ) -> None:
        """`first_save`: the record was made with `start(save=False)` and is saved here for
        the first time (with the store epoch, `save_new`). `prepared`: the request was built
        for a link on the discovery page, before the student chose; when (or whether) they
        follow it the broker does not see, so the record names no time of leaving."""
        changed = replace(
            record,
            upstream_request_id=request_id,
            upstream=upstream or {},
            upstream_at=None if prepared else self.clock(),
        )
        if first_save:
            self.save_new(browser_secret, changed)
        else:
            self._save(browser_secret, changed)

    def take(self, browser_secret: bytes, login_id: str) -> LoginRecord:
        """Consume the record: a response can complete a login once, never twice."""
        return _taken(self.sealed.take(browser_secret, LOGIN, login_id))

    @staticmethod
    def take_op(login_id: str) -> StoreOp:
        """`take` as a command of a caller's batch; `taken` opens its reply."""
        return SealedStore.take_op(LOGIN, login_id)

    @staticmethod
    def taken(browser_secret: bytes, login_id: str, reply: StoreReply) -> LoginRecord:
        """The record a batch's `take_op` consumed, as `take` returns it."""
        return _taken(SealedStore.opened(browser_secret, LOGIN, login_id, reply))

    # -- step 4: the school answered (or an SSO session stands) ------------------------------
    def complete(
        self, request: LoginRequest, identity: UpstreamIdentity, authn_instant: float
    ) -> Completion:
        service = self.registry.service(request.service_id)
        if service is None:
            raise UnknownService(f"service {request.service_id} left the registry mid-login")
        school = self.registry.school(identity.school_id)
        if school is None:
            raise UnknownSchool(f"school {identity.school_id} left the registry mid-login")
        level = self.assurance.level_of(identity.authn_context)
        if request.acr_required and request.acr and level not in request.acr:
            raise AssuranceNotMet(f"asked {','.join(request.acr)}, school answered {level}")
        age = self.clock() - authn_instant
        if request.max_age is not None and age > request.max_age + self.clock_skew:
            raise StaleAuthentication(f"school login {int(age)} s old, max_age {request.max_age}")
        policy = self.registry.policy(school.id, service.id)
        keys, versions = self._chain_keys(service)
        release = compute_release(
            keys, school, service, identity, policy, request.requested, versions
        )
        if request.subjects and not _names(
            request.subjects, release.pseudonym, release.previous_pseudonym
        ):
            raise UnexpectedStudent(f"service {service.id} expected another student")
        return Completion(
            request, service, school, release, authn_instant, identity.authn_context, level
        )

    def _chain_keys(self, service: Service) -> tuple[PseudonymKeys, KeyVersions]:
        """The pseudonym keys and key versions of `service`'s chain. The versions come from the
        (cached) registry, so a rotation reaches every worker with the generation; a version new
        to this worker is read from the key set then. The window's end is a moment, not a write:
        the clock decides it here."""
        record = self.registry.pseudonym_key_version(service.pseudonym_chain)
        now = datetime.fromtimestamp(self.clock(), UTC)
        versions = key_versions_for(self.keys.key_set(), record, now)
        return self.keys.key_set_holding(versions.needed), versions

    def is_expected_student(self, request: LoginRequest, identity: UpstreamIdentity) -> bool:
        """Whether `identity` is the student the service named (`LoginRequest.subjects`): their
        pseudonym in the service's chain, under the chain's current key or, during a rotation's
        window, its previous one (a hint issued before the rotation names the same student).
        True at once when the service named no one: the usual login does no work here."""
        if not request.subjects:
            return True
        service = self.registry.service(request.service_id)
        school = self.registry.school(identity.school_id)
        if service is None or school is None:
            return False
        keys, versions = self._chain_keys(service)
        return _names(
            request.subjects, *chain_pseudonyms(keys, school, service, identity, versions)
        )

    # -- SSO session --------------------------------------------------------------------------
    def open_session(self, identity: UpstreamIdentity, authn_instant: float) -> str | None:
        """Store the school's identity sealed under a fresh token; the token goes in a cookie."""
        opened = self.new_session(identity, authn_instant)
        if opened is None:
            return None
        token, writes = opened
        self.store.batch(writes)
        return token

    def new_session(
        self, identity: UpstreamIdentity, authn_instant: float
    ) -> tuple[str, list[StoreOp]] | None:
        """A fresh SSO token and the writes that open its session (the sealed identity, and
        its filing under the school's sid), for the caller to send in one batch with its own;
        None when SSO sessions are off."""
        if self.sso_ttl <= 0:
            return None
        token = secrets.token_urlsafe(32)
        payload = {**identity_payload(identity), "authn_instant": authn_instant}
        writes = [self.sealed.put_op(token.encode(), SSO, token, payload, self.sso_ttl)]
        if self.school_sessions is not None:
            filing = self.school_sessions.note_op(identity, token)
            if filing is not None:
                writes.append(filing)
        return token, writes

    @staticmethod
    def session_index(token: str | None) -> str:
        """The SessionIndex services see: the same for every login of one SSO session, derived
        one-way from the token (it never reveals the cookie); random without a session."""
        if not token:
            return "_" + secrets.token_hex(20)
        return "_" + sha256(f"ketenbroker/session-index/{token}".encode()).hexdigest()[:40]

    def session(self, token: str | None) -> tuple[UpstreamIdentity, float] | None:
        if not readable_token(token):
            return None
        return self.session_from(token, self.store.get(store_key(SSO, token or "")))

    @staticmethod
    def session_read(token: str) -> StoreOp:
        """The read `session` makes, for a batch (only for a `readable_token`)."""
        return SealedStore.get_op(SSO, token)

    @staticmethod
    def session_from(token: str | None, reply: StoreReply) -> tuple[UpstreamIdentity, float] | None:
        """`session_read`'s reply opened as `session` returns it."""
        if not token or not readable_token(token):
            return None
        try:
            data = SealedStore.opened(token.encode(), SSO, token, reply)
        except StateExpired:
            return None
        if data is None:
            return None
        return identity_from_payload(data), float(data["authn_instant"])

    def end_session(
        self,
        token: str,
        identity: UpstreamIdentity | None = None,
        *,
        also: Sequence[StoreOp] = (),
        before: Sequence[StoreOp] = (),
    ) -> None:
        """End the session `token` names; with the `identity` it held, also its filing under
        the school's sid (without it that record simply finds no session until it expires).
        `also`: the caller's own writes (its record of services going), in the same batch;
        `before`: writes that go first (a logout run and its mark), so a request that finds
        the session gone finds them too (a batch keeps its order; it is not atomic)."""
        if also or before:
            self.store.batch([*before, self.sealed.delete_op(SSO, token), *also])
        else:
            self.sealed.delete(SSO, token)
        if identity is not None and self.school_sessions is not None:
            self.school_sessions.forget(identity, token)

    def session_serves(
        self, record: LoginRecord, identity: UpstreamIdentity, authn_instant: float
    ) -> bool:
        """An SSO session answers a request unless the service forces a fresh login, asked for
        another school than the one the student logged in at, or wants a more recent login, or
        lets the student choose the school. Whether it is the student the service expects
        (`is_expected_student`) the caller asks apart: a mismatch needs a login of its own."""
        request = record.request
        if request.force_authn or request.choose_school:
            return False
        if request.max_age is not None and self.clock() - authn_instant > request.max_age:
            return False
        level = self.assurance.level_of(identity.authn_context)
        if request.acr_required and request.acr and level not in request.acr:
            return False
        return record.school_id is None or record.school_id == identity.school_id

    def _save(self, browser_secret: bytes, record: LoginRecord) -> None:
        op = self._save_op(browser_secret, record)
        self.store.put(op.key, op.value, op.ttl_seconds)

    def _save_op(self, browser_secret: bytes, record: LoginRecord) -> StoreOp:
        age = self.clock() - record.created
        remaining = int(self.login_ttl - age)
        if remaining <= 0:
            raise StateExpired("login took longer than the login lifetime")
        return self.sealed.put_op(
            browser_secret, LOGIN, record.login_id, record.to_payload(), remaining
        )


def readable_token(token: str | None) -> bool:
    """An SSO token worth a store read (a cookie longer than any token the broker sets is not
    looked up)."""
    return bool(token) and len(token or "") <= MAX_TOKEN_LENGTH


def is_my_data(request: LoginRequest) -> bool:
    return request.service_id == MY_DATA


def identity_payload(identity: UpstreamIdentity) -> dict[str, Any]:
    """The school's answer as JSON for sealed state (SSO session, a pending notice)."""
    return {
        "school_id": identity.school_id,
        "subject": identity.subject,
        "attributes": {k: list(v) for k, v in identity.attributes.items()},
        "authn_context": identity.authn_context,
        "upstream_session": dict(identity.upstream_session),
    }


def identity_from_payload(data: dict[str, Any]) -> UpstreamIdentity:
    return UpstreamIdentity(
        school_id=data["school_id"],
        subject=data["subject"],
        attributes={k: tuple(v) for k, v in data["attributes"].items()},
        authn_context=data.get("authn_context"),
        upstream_session={str(k): str(v) for k, v in (data.get("upstream_session") or {}).items()},
    )


def _names(subjects: tuple[str, ...], *pseudonyms: str | None) -> bool:
    """Whether one of `pseudonyms` is among the `subjects` a service accepts."""
    return any(p is not None and p in subjects for p in pseudonyms)


def _taken(data: dict[str, Any] | None) -> LoginRecord:
    if data is None:
        raise StateExpired("login record absent or used")
    return LoginRecord.from_payload(data)
