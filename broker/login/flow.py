"""The login flow as explicit steps: request in → school chosen → upstream login → release.

Protocol adapters call these steps with neutral objects; nothing here knows SAML, OIDC or Flask.
The browser is represented by `browser_secret` (from its cookie): every record this flow keeps
is sealed under it, so a record found without the cookie is useless (sealed.py). The objects
these steps take and give (request, record, completion) and their JSON are in login_model.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from broker.core.assurance import DEFAULT_ASSURANCE, Assurance
from broker.core.authenticating_authority import authenticating_authorities
from broker.core.chain_move import service_key_versions
from broker.core.errors import (
    AssuranceNotMet,
    StaleAuthentication,
    StateExpired,
    UnexpectedStudent,
    UnknownSchool,
    UnknownService,
)
from broker.core.model import Service, UpstreamIdentity
from broker.core.ports import (
    KeyValueStore,
    PseudonymKeySource,
    RegistryReader,
    StoreOp,
    StoreReply,
)
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import HeldKeySource, KeyVersions
from broker.core.release import chain_pseudonyms, compute_release
from broker.core.shared_idp import school_was_named
from broker.login.authn_instant import check_authn_instant
from broker.login.login_model import (
    Completion,
    LoginRecord,
    LoginRequest,
    identity_from_payload,
    identity_payload,
    is_my_data,
)
from broker.login.replay import open_epoch_op
from broker.login.school_sessions import SchoolSessionIndex
from broker.login.school_values import school_must_be_named
from broker.login.scope_spelling import ScopeSpellings
from broker.login.sealed import SealedStore, store_key

LOGIN = "login"
SSO = "sso"
MAX_TOKEN_LENGTH = 128


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
        clock_skew: int = 180,
        clock: Callable[[], float] = time.time,
        school_sessions: SchoolSessionIndex | None = None,
        scope_spelling_counted: Callable[[], None] | None = None,
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
        # Schools whose IdP spells a subject's scope otherwise than registered, logged once each.
        self.scope_spellings = ScopeSpellings(scope_spelling_counted)

    # -- step 1: a publisher's request arrives ------------------------------------------------
    def start(
        self, browser_secret: bytes, request: LoginRequest, *, save: bool = True
    ) -> LoginRecord:
        """`save=False`: the record is only made here, and saved with `save_new` (or
        `note_upstream`) once the login goes on to a school or to discovery; a request an SSO
        session answers at once writes no record at all."""
        if not is_my_data(request) and self.registry.service(request.service_id) is None:
            raise UnknownService(f"service {request.service_id} not in registry")
        hint = None if request.choose_school else request.school_hint
        school_id = hint if hint and self.registry.school(hint) is not None else None
        record = LoginRecord(secrets.token_urlsafe(18), request, self.clock(), school_id)
        if save:
            self.save_new(browser_secret, record)
        return record

    def save_new(self, browser_secret: bytes, record: LoginRecord) -> None:
        """A record's first save, before it holds a request to a school (to discovery)."""
        self._save(browser_secret, record)

    def with_school(self, record: LoginRecord, school_id: str) -> LoginRecord:
        """`record` with the school chosen (not saved: `note_upstream` saves it)."""
        if self.registry.school(school_id) is None:
            raise UnknownSchool(f"school {school_id} not in registry")
        choices = record.request.school_choices
        if choices and school_id not in choices:
            # The service named a board's IdP: the page offered its schools only.
            raise UnknownSchool(f"school {school_id} not among the service's IdP's schools")
        return replace(record, school_id=school_id)

    def load(self, browser_secret: bytes, login_id: str) -> LoginRecord:
        data = self.sealed.get(browser_secret, LOGIN, login_id)
        if data is None:
            raise StateExpired("login record absent")
        return LoginRecord.from_payload(data)

    # -- step 2: the student chose a school --------------------------------------------------
    # -- step 3: we sent the school's identity provider a request ----------------------------
    def note_upstream(
        self,
        browser_secret: bytes,
        record: LoginRecord,
        request_id: str,
        upstream: dict[str, str] | None = None,
        *,
        prepared: bool = False,
    ) -> None:
        """Save the record with the request `request_id` (for the first time, or over a saved
        one). `prepared`: the request was built for a link on the discovery page, before the
        student chose; when (or whether) they follow it the broker does not see, so the record
        names no time of leaving."""
        now = self.clock()
        changed = replace(
            record,
            upstream_request_id=request_id,
            upstream=upstream or {},
            upstream_at=None if prepared else now,
        )
        # The epoch of the replay bucket the school's answer will be checked in is never later
        # than this request (replay.py): written first, in the same batch (one round trip).
        self.store.batch([open_epoch_op(now, request_id), self._save_op(browser_secret, changed)])

    def take(self, browser_secret: bytes, login_id: str) -> LoginRecord:
        """Consume the record: a response can complete a login once, never twice."""
        return _taken(self.sealed.take(browser_secret, LOGIN, login_id))

    def reopen(self, browser_secret: bytes, record: LoginRecord, idp_entity_id: str) -> None:
        """Save a taken record back for the student to try again or choose their school again
        (the school, `idp_entity_id`, said no; a board's OpenID provider named another school,
        or none: core/shared_idp.py), without the request the school answered: an answer to it
        is stale from now on. At an OpenID provider its nonce and PKCE verifier are gone, and
        with them its state's tag (oidc/rp_state.py), so a copy of that answer, or a reload of
        its callback, is refused as stale and puts the record back as it was (`restore`); at
        the SAML ACS a record without a request refuses every answer as stale. Either way the
        live login, and the page's ways on, stay. The next request to the same school asks for
        a fresh sign-in (`wrong_account_at`): which account, at an OpenID provider; ForceAuthn,
        at a SAML IdP."""
        self._save(
            browser_secret,
            replace(
                record,
                upstream_request_id=None,
                upstream={},
                upstream_at=None,
                wrong_account_at=idp_entity_id,
            ),
        )

    def restore(self, browser_secret: bytes, record: LoginRecord) -> None:
        """Put a taken record back unchanged: the answer that took it was to another of its
        requests (a stale one), which may not end the live login. Only if no record stands
        under its id by now (a choice saved meanwhile is newer than this copy)."""
        op = self._save_op(browser_secret, record)
        self.store.add_if_absent(op.key, op.value, op.ttl_seconds)

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
        self,
        request: LoginRequest,
        identity: UpstreamIdentity,
        authn_instant: float,
        *,
        sent_at: float | None = None,
    ) -> Completion:
        """`sent_at`: for a school's answer, when the student was sent there for it
        (`LoginRecord.sent_to_school_at`); a login the service forced must be newer
        (authn_instant.py). None for an SSO session's answer (which never serves a forced one)."""
        service = self.registry.service(request.service_id)
        if service is None:
            raise UnknownService(f"service {request.service_id} left the registry mid-login")
        school = self.registry.school(identity.school_id)
        if school is None:
            raise UnknownSchool(f"school {identity.school_id} left the registry mid-login")
        check_authn_instant(
            authn_instant,
            now=self.clock(),
            skew=self.clock_skew,
            fresh_since=sent_at if request.force_authn else None,
        )
        level = self.assurance.level_of(identity.authn_context)
        if request.acr_required and request.acr and level not in request.acr:
            raise AssuranceNotMet(f"asked {','.join(request.acr)}, school answered {level}")
        age = self.clock() - authn_instant
        if request.max_age is not None and age > request.max_age + self.clock_skew:
            raise StaleAuthentication(f"school login {int(age)} s old, max_age {request.max_age}")
        policy = self.registry.policy(school.id, service.id)
        authorities = authenticating_authorities(school, service, policy, identity.authorities)
        keys, versions = self._chain_keys(service)
        # The subject feeds the pseudonym as sent; another spelling of its scope is only logged.
        self.scope_spellings.note(school, identity.subject)
        release = compute_release(
            keys, school, service, identity, policy, request.requested, versions
        )
        if request.subjects and not _names(
            request.subjects, release.pseudonym, release.previous_pseudonym
        ):
            raise UnexpectedStudent(f"service {service.id} expected another student")
        return Completion(
            request,
            service,
            school,
            release,
            authn_instant,
            identity.authn_context,
            level,
            authorities,
            self._session_end(identity),
        )

    def _session_end(self, identity: UpstreamIdentity) -> float | None:
        """When the service's session on this login ends: the school's session end, and no
        later than a broker SSO session opened now would (one already open stored its own end
        as the school's: `new_session`). None where the school gave no end, or one that has
        passed: the login is answered (SAML core 2.7.2 makes it no bound on accepting the
        school's assertion), and a service told of an end already passed would refuse the
        broker's (pysaml2 does) rather than end its session at once. No SSO session is opened
        for it either (`new_session`)."""
        if identity.session_ends is None or identity.session_ends <= self.clock():
            return None
        if self.sso_ttl <= 0:
            return identity.session_ends
        return min(identity.session_ends, self.clock() + self.sso_ttl)

    def _chain_keys(self, service: Service) -> tuple[PseudonymKeys, KeyVersions]:
        """The pseudonym keys and key versions of `service`'s chain. The versions come from the
        (cached) registry, so a rotation reaches every worker with the generation; a version new
        to this worker is read from the key set then. The window's end is a moment, not a write:
        the clock decides it here."""
        record = self.registry.pseudonym_key_version(service.pseudonym_chain)
        # A chain move's window gives the pseudonym of the chain it left as the previous one
        # (core/chain_move.py); from the same cached view, no query of its own.
        move = self.registry.chain_move(service.id)
        now = datetime.fromtimestamp(self.clock(), UTC)
        versions = service_key_versions(self.keys.key_set(), record, move, service, now)
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
        None when SSO sessions are off, or the school's own session is over already.

        The session lives `sso_ttl`, and no longer than the school's session (SAML
        SessionNotOnOrAfter): after that the school no longer vouches for the login, and the
        next request goes to the school again."""
        ttl = self.sso_ttl
        if identity.session_ends is not None:
            ttl = min(ttl, int(identity.session_ends - self.clock()))
        if ttl <= 0:
            return None
        token = secrets.token_urlsafe(32)
        if identity.session_ends is not None:
            # The session's own end, for the SessionNotOnOrAfter of what it answers later.
            identity = replace(identity, session_ends=self._session_end(identity))
        payload = {**identity_payload(identity), "authn_instant": authn_instant}
        writes = [self.sealed.put_op(token.encode(), SSO, token, payload, ttl)]
        if self.school_sessions is not None:
            filing = self.school_sessions.note_op(identity, token)
            if filing is not None:
                writes.append(filing)
        return token, writes

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
        another school than the one the student logged in at (or an IdP that is not that
        school's), or wants a more recent login, or lets the student choose the school, or
        the session's login did not name a school whose IdP must name it now (opened before
        the rule applied to it: core/shared_idp.py). Whether it is the student the service
        expects (`is_expected_student`) the caller asks apart: a mismatch needs a login of its
        own."""
        request = record.request
        if request.force_authn or request.choose_school:
            return False
        if request.school_choices and identity.school_id not in request.school_choices:
            return False
        if not self._named_as_required(identity):
            return False
        age = self.clock() - authn_instant
        if request.max_age is not None and age > request.max_age:
            return False
        if age < -self.clock_skew:
            # A login in the future (kept before such instants were refused) would count as
            # fresh for every max_age: `complete` refuses it, so the school is asked again.
            return False
        level = self.assurance.level_of(identity.authn_context)
        if request.acr_required and request.acr and level not in request.acr:
            return False
        return record.school_id is None or record.school_id == identity.school_id

    def _named_as_required(self, identity: UpstreamIdentity) -> bool:
        """Whether the session's login named its school, if the school's IdP requires that
        now (from the registry's cached view). A school gone from the registry: nothing to
        say here (finishing the login refuses it)."""
        school = self.registry.school(identity.school_id)
        if school is None or not school_must_be_named(self.registry, school):
            return True
        return school_was_named(identity)

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


def _names(subjects: tuple[str, ...], *pseudonyms: str | None) -> bool:
    """Whether one of `pseudonyms` is among the `subjects` a service accepts."""
    return any(p is not None and p in subjects for p in pseudonyms)


def _taken(data: dict[str, Any] | None) -> LoginRecord:
    if data is None:
        raise StateExpired("login record absent or used")
    return LoginRecord.from_payload(data)
