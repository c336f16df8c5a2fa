"""Sealed state (broker/login/sealed.py), the login flow's steps (broker/login/flow.py) and the
login record's payload round trip (broker/login/login_model.py)."""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from hashlib import sha256

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.core.chain_move import ChainMove
from broker.core.errors import (
    FreshLoginIgnored,
    InvalidMessage,
    StaleAuthentication,
    StateExpired,
    UnexpectedStudent,
    UnknownSchool,
    UnknownService,
)
from broker.core.model import (
    Chain,
    Declaration,
    OidcUpstream,
    ReleasePolicy,
    School,
    Service,
    UpstreamIdentity,
)
from broker.core.ports import KeyValueStore, RegistryReader, StoreOp, StoreReply
from broker.core.pseudonym import PseudonymKeys, derive_chain_pseudonym
from broker.core.pseudonym_rotation import ChainKeyVersion, HeldKeySource
from broker.login.flow import LOGIN, SSO, LoginFlow
from broker.login.login_model import IdpEntry, LoginRecord, LoginRequest
from broker.login.replay import bucket_of, epoch_key
from broker.login.scope_spelling import ScopeSpellings
from broker.login.sealed import (
    NONCE_LENGTH,
    PAD_TO,
    SealedStore,
    new_secret,
    seal,
    store_key,
    unseal,
)
from broker.store import MemoryStore

MARKER = "MARKER-8c1f-leerling-geheim"
KEY = bytes(range(32))
LOGIN_TTL = 900
SSO_TTL = 3600


# -- sealed state ------------------------------------------------------------------------------
def test_seal_unseal_round_trip() -> None:
    secret = new_secret()
    payload = {"subject": MARKER, "n": 3, "list": ["a", "b"], "none": None}
    blob = seal(secret, "login", "id-1", payload)
    assert unseal(secret, "login", "id-1", blob) == payload


def test_new_secret_is_random_32_bytes() -> None:
    assert len(new_secret()) == 32
    assert new_secret() != new_secret()


def test_sealing_twice_gives_different_blobs() -> None:
    secret = new_secret()
    assert seal(secret, "login", "id", {"a": 1}) != seal(secret, "login", "id", {"a": 1})


def test_another_secret_does_not_open() -> None:
    blob = seal(new_secret(), "login", "id-1", {"subject": MARKER})
    with pytest.raises(StateExpired):
        unseal(new_secret(), "login", "id-1", blob)


@pytest.mark.parametrize(("kind", "record_id"), [("sso", "id-1"), ("login", "id-2")])
def test_blob_is_bound_to_kind_and_id(kind: str, record_id: str) -> None:
    secret = new_secret()
    blob = seal(secret, "login", "id-1", {"subject": MARKER})
    with pytest.raises(StateExpired):
        unseal(secret, kind, record_id, blob)


@pytest.mark.parametrize("position", [0, 5, 12, 20, -1])
def test_tampered_blob_does_not_open(position: int) -> None:
    secret = new_secret()
    blob = bytearray(seal(secret, "login", "id-1", {"subject": MARKER}))
    blob[position] ^= 0x01
    with pytest.raises(StateExpired):
        unseal(secret, "login", "id-1", bytes(blob))


@pytest.mark.parametrize("blob", [b"", b"short", b"\x00" * 12, b"\x00" * 40])
def test_truncated_or_junk_blob_does_not_open(blob: bytes) -> None:
    with pytest.raises(StateExpired):
        unseal(new_secret(), "login", "id-1", blob)


def test_a_sealed_record_does_not_show_how_long_a_name_is() -> None:
    # AES-GCM keeps the length: unpadded, the dump of a store would tell a short name from a
    # long one. Every name up to the step seals to the same length, and the body is whole steps.
    secret = new_secret()
    lengths = {
        len(seal(secret, "login", "id-1", {"given_name": "x" * n, "surname": "y" * (40 - n)}))
        for n in range(1, 40)
    } | {len(seal(secret, "login", "id-1", {"given_name": "Jo", "surname": "de Vries-" * 12}))}
    tag = 16
    assert len(lengths) == 1
    (length,) = lengths
    assert (length - NONCE_LENGTH - tag) % PAD_TO == 0


def test_a_record_sealed_before_the_padding_still_opens() -> None:
    # A record an earlier worker wrote (no padding) during a rolling upgrade, built by hand the
    # way seal() built it then.
    secret = new_secret()
    payload = {"subject": MARKER}
    nonce = os.urandom(NONCE_LENGTH)
    record_key = hmac.new(secret, b"ketenbroker/login/id-1", sha256).digest()
    body = json.dumps(payload, separators=(",", ":")).encode()
    blob = nonce + AESGCM(record_key).encrypt(nonce, body, store_key("login", "id-1").encode())
    assert unseal(secret, "login", "id-1", blob) == payload


class RecordingStore(MemoryStore):
    """A memory store that remembers every key and value ever written."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.written: list[tuple[str, bytes]] = []

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self.written.append((key, value))
        super().put(key, value, ttl_seconds)

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        self.written.extend((op.key, op.value) for op in operations if op.operation == "put")
        return super().batch(operations)


def _assert_no_plaintext(store: RecordingStore, *markers: str) -> None:
    assert store.written
    for key, value in store.written:
        for marker in markers:
            for form in (
                marker.encode(),
                marker.encode("utf-16-le"),
                marker.encode().hex().encode(),
            ):
                assert form not in key.encode()
                assert form not in value


def test_store_holds_no_plaintext() -> None:
    store = RecordingStore()
    sealed = SealedStore(store)
    secret = new_secret()
    sealed.put(secret, "login", MARKER, {"subject": MARKER, MARKER: [MARKER]}, 60)
    _assert_no_plaintext(store, MARKER)
    assert store.written[0][0] == store_key("login", MARKER)
    assert sealed.get(secret, "login", MARKER) == {"subject": MARKER, MARKER: [MARKER]}
    assert sealed.take(secret, "login", MARKER) is not None
    assert sealed.get(secret, "login", MARKER) is None


def test_sealed_store_other_secret_is_expired_not_absent() -> None:
    sealed = SealedStore(MemoryStore())
    sealed.put(new_secret(), "login", "id", {"a": 1}, 60)
    with pytest.raises(StateExpired):
        sealed.get(new_secret(), "login", "id")
    sealed.delete("login", "id")
    assert sealed.get(new_secret(), "login", "id") is None


# -- the login flow ----------------------------------------------------------------------------
class FakeRegistry:
    """A tiny in-memory RegistryReader."""

    def __init__(self) -> None:
        self._schools = {
            s.id: s
            for s in (
                School("99XX00", "De Demoschool", "https://idp.demo.example"),
                School("88YY00", "Het Andere Lyceum", "https://idp.other.example"),
            )
        }
        self._services = {
            s.id: s
            for s in (
                Service(
                    "uitgever",
                    "Uitgeverij",
                    "https://sp.example/metadata",
                    "leermiddelen",
                    declarations=(Declaration("given_name", "to greet the student"),),
                ),
            )
        }
        self.key_versions: dict[str, ChainKeyVersion] = {}
        self.naming_idps: set[str] = set()
        self._policies = {
            ("99XX00", "uitgever"): ReleasePolicy(
                "99XX00", "uitgever", frozenset({"given_name"}), 2
            )
        }

    def school(self, school_id: str) -> School | None:
        return self._schools.get(school_id)

    def schools_by_idp(self, idp_entity_id: str) -> tuple[School, ...]:
        return tuple(s for s in self._schools.values() if s.idp_entity_id == idp_entity_id)

    def idp_names_school(self, idp_entity_id: str) -> bool:
        return idp_entity_id in self.naming_idps

    def schools(self) -> list[School]:
        return list(self._schools.values())

    def chain(self, chain_id: str) -> Chain | None:
        return Chain(chain_id, chain_id) if chain_id == "leermiddelen" else None

    def service(self, service_id: str) -> Service | None:
        return self._services.get(service_id)

    def service_by_entity_id(self, entity_id: str) -> Service | None:
        return next((s for s in self._services.values() if s.entity_id == entity_id), None)

    def services(self) -> list[Service]:
        return list(self._services.values())

    def policy(self, school_id: str, service_id: str) -> ReleasePolicy:
        return self._policies.get((school_id, service_id), ReleasePolicy(school_id, service_id))

    def pseudonym_key_version(self, chain: str) -> ChainKeyVersion | None:
        return self.key_versions.get(chain)

    def chain_move(self, service_id: str) -> ChainMove | None:
        return None

    def school_metadata(self) -> dict[str, str]:
        return {}

    def service_metadata(self) -> dict[str, str]:
        return {}

    def metadata_expiry(self) -> datetime | None:
        return None

    def generation(self) -> int:
        return 1


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> RecordingStore:
    # One injected clock for the store's expiry and the flow's record age.
    return RecordingStore(clock)


@pytest.fixture
def flow(store: RecordingStore, clock: Clock) -> LoginFlow:
    registry: RegistryReader = FakeRegistry()
    kv: KeyValueStore = store
    return LoginFlow(
        registry, kv, PseudonymKeys(1, {1: KEY}), login_ttl=LOGIN_TTL, sso_ttl=SSO_TTL, clock=clock
    )


def _identity(school_id: str = "99XX00") -> UpstreamIdentity:
    return UpstreamIdentity(
        school_id, MARKER, {"given_name": ("Sanne",), "email": ("s@x.example",)}, "urn:pwd"
    )


def _chosen(flow: LoginFlow, browser: bytes, login_id: str, school_id: str) -> LoginRecord:
    """The discovery page's POST: the held record with the chosen school (saved by the
    upstream request that follows, note_upstream)."""
    return flow.with_school(flow.load(browser, login_id), school_id)


def test_start_choose_take(flow: LoginFlow) -> None:
    browser = new_secret()
    request = LoginRequest("uitgever", frozenset({"given_name"}), front={"request_id": "_abc"})
    record = flow.start(browser, request)
    assert record.school_id is None
    assert flow.load(browser, record.login_id) == record
    chosen = _chosen(flow, browser, record.login_id, "99XX00")
    assert chosen.school_id == "99XX00"
    flow.note_upstream(browser, chosen, "_upstream-1")
    taken = flow.take(browser, record.login_id)
    assert taken.school_id == "99XX00"
    assert taken.upstream_request_id == "_upstream-1"
    assert taken.request == request
    # Single use: a second response for the same login finds nothing.
    with pytest.raises(StateExpired):
        flow.take(browser, record.login_id)
    with pytest.raises(StateExpired):
        flow.load(browser, record.login_id)


def test_a_notice_asked_for_stays_in_the_sealed_record_through_every_step(
    flow: LoginFlow, store: RecordingStore
) -> None:
    """OIDC prompt=consent (`show_notice`) travels in the sealed record like the request's
    other fields: through the school choice and the upstream request to the take, with no
    plaintext trace in the store (the browser holds only the id, not the flag)."""
    browser = new_secret()
    record = flow.start(browser, LoginRequest("uitgever", show_notice=True), save=False)
    flow.note_upstream(browser, flow.with_school(record, "99XX00"), "_upstream")
    chosen = _chosen(flow, browser, record.login_id, "99XX00")
    flow.note_upstream(browser, chosen, "_upstream-2")
    assert flow.take(browser, record.login_id).request.show_notice is True
    _assert_no_plaintext(store, "show_notice")


def test_a_prepared_request_is_saved_in_one_write_and_names_no_time_of_leaving(
    flow: LoginFlow, store: RecordingStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The discovery page's prepared link (login_upstream.prepare_upstream): the record's first
    save carries the school and its request, in one round trip; when the
    student leaves the broker does not see, so the upstream wait is not measured for it. A
    choice made afterwards overwrites the request and is timed as any."""
    browser = new_secret()
    record = flow.start(browser, LoginRequest("uitgever"), save=False)
    trips: list[list[str]] = []
    batch = store.batch

    def counted(ops: Sequence[StoreOp]) -> list[StoreReply]:
        trips.append([o.key for o in ops])
        return batch(ops)

    monkeypatch.setattr(store, "batch", counted)
    flow.note_upstream(browser, flow.with_school(record, "99XX00"), "_prepared", prepared=True)
    # One round trip, as every save with a request: its answer's store epoch first, then the
    # record.
    assert trips == [[epoch_key(bucket_of("_prepared")), store_key(LOGIN, record.login_id)]]
    held = flow.load(browser, record.login_id)
    assert (held.school_id, held.upstream_request_id, held.upstream_at) == (
        "99XX00",
        "_prepared",
        None,
    )
    clock.now += 7
    chosen = _chosen(flow, browser, record.login_id, "99XX00")
    flow.note_upstream(browser, chosen, "_chosen")
    taken = flow.take(browser, record.login_id)
    assert (taken.upstream_request_id, taken.upstream_at) == ("_chosen", clock.now)


def test_record_payload_round_trip() -> None:
    record = LoginRecord(
        "id", LoginRequest("s", None, "99XX00", True, {"a": "b"}), 12.5, "99XX00", "_u"
    )
    assert LoginRecord.from_payload(record.to_payload()) == record
    requested = LoginRecord("id", LoginRequest("s", frozenset({"b", "a"})), 1.0)
    assert requested.to_payload()["request"]["requested"] == ["a", "b"]
    assert LoginRecord.from_payload(requested.to_payload()) == requested
    limited = LoginRecord("id", LoginRequest("s", proxy_count=2), 1.0)
    assert limited.to_payload()["request"]["proxy_count"] == 2
    assert LoginRecord.from_payload(limited.to_payload()) == limited


def test_an_idp_list_entry_with_a_field_of_a_later_release_still_reads() -> None:
    """A rolling upgrade: a newer worker's login record whose IDPList entries carry a field this
    release does not know is read by name, not refused."""
    record = LoginRecord("id", LoginRequest("s", idp_list=(IdpEntry("https://idp", "Idp"),)), 1.0)
    payload = record.to_payload()
    payload["request"]["idp_list"][0]["later"] = "x"
    assert LoginRecord.from_payload(payload) == record


def test_a_record_saved_with_the_proxy_count_in_front_reads_as_the_typed_field() -> None:
    """Before `LoginRequest.proxy_count`, the SAML front kept it (already less one) in `front`;
    such a record, saved just before an upgrade, still passes the limit on."""
    payload = LoginRecord("id", LoginRequest("s", front={"protocol": "saml"}), 1.0).to_payload()
    del payload["request"]["proxy_count"]
    payload["request"]["front"]["proxy_count"] = "1"
    request = LoginRecord.from_payload(payload).request
    assert request.proxy_count == 1
    assert request.front == {"protocol": "saml"}


@pytest.mark.parametrize(
    "record",
    [
        LoginRecord("id", LoginRequest("s"), 1.0),
        LoginRecord(
            "id",
            LoginRequest(
                "s",
                frozenset({"b", "a"}),
                "99XX00",
                True,
                {"protocol": "saml", "acs_url": "https://sp.example/acs"},
                ("high", "low"),
                True,
                300,
                ("a" * 64, "b" * 64),
                True,
                True,
                2,
                ("99XX00", "88YY00"),
                (IdpEntry("https://idp.a.example/", "A", "https://idp.a.example/sso"),),
                "https://list.example/all",
            ),
            12.5,
            "99XX00",
            "_u",
            {"nonce": "n"},
            13.0,
        ),
    ],
)
def test_the_written_out_payload_is_what_asdict_gives(record: LoginRecord) -> None:
    """to_payload is written out for speed: it must stay asdict's result, every field in it."""
    expected = dataclasses.asdict(record)
    requested = record.request.requested
    expected["request"]["requested"] = None if requested is None else sorted(requested)
    payload = record.to_payload()
    assert payload == expected
    assert json.dumps(payload, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert LoginRecord.from_payload(json.loads(json.dumps(payload))) == record
    # A copy: changing the payload leaves the (frozen) record's dicts alone.
    payload["request"]["front"]["x"] = "y"
    payload["upstream"]["x"] = "y"
    assert "x" not in record.request.front and "x" not in record.upstream


def test_start_with_known_school_hint(flow: LoginFlow) -> None:
    browser = new_secret()
    assert flow.start(browser, LoginRequest("uitgever", school_hint="99XX00")).school_id == "99XX00"
    # An unknown hint is ignored: the student chooses on the discovery page.
    assert flow.start(browser, LoginRequest("uitgever", school_hint="00ZZ00")).school_id is None


def test_start_unknown_service(flow: LoginFlow) -> None:
    with pytest.raises(UnknownService):
        flow.start(new_secret(), LoginRequest("nobody"))


def test_choose_unknown_school(flow: LoginFlow) -> None:
    browser = new_secret()
    record = flow.start(browser, LoginRequest("uitgever"))
    with pytest.raises(UnknownSchool):
        _chosen(flow, browser, record.login_id, "00ZZ00")


def test_other_browser_cannot_use_the_record(flow: LoginFlow) -> None:
    record = flow.start(new_secret(), LoginRequest("uitgever"))
    with pytest.raises(StateExpired):
        flow.load(new_secret(), record.login_id)
    with pytest.raises(StateExpired):
        flow.take(new_secret(), record.login_id)


def test_unknown_login_id(flow: LoginFlow) -> None:
    with pytest.raises(StateExpired):
        flow.load(new_secret(), "no-such-login")


def test_expired_record(flow: LoginFlow, clock: Clock) -> None:
    browser = new_secret()
    record = flow.start(browser, LoginRequest("uitgever"))
    clock.now += LOGIN_TTL + 1
    with pytest.raises(StateExpired):
        flow.load(browser, record.login_id)
    with pytest.raises(StateExpired):
        flow.take(browser, record.login_id)


def test_record_cannot_be_extended_past_its_lifetime(flow: LoginFlow, clock: Clock) -> None:
    browser = new_secret()
    record = flow.start(browser, LoginRequest("uitgever"))
    clock.now += LOGIN_TTL - 10
    chosen = _chosen(flow, browser, record.login_id, "99XX00")
    clock.now += 11
    # Saving again would need a TTL below zero: the login is over, whatever the store says.
    with pytest.raises(StateExpired):
        flow.note_upstream(browser, chosen, "_late")
    with pytest.raises(StateExpired):
        flow.take(browser, record.login_id)


def test_login_state_holds_no_plaintext(flow: LoginFlow, store: RecordingStore) -> None:
    browser = new_secret()
    request = LoginRequest("uitgever", front={"relay_state": MARKER})
    record = flow.start(browser, request)
    _chosen(flow, browser, record.login_id, "99XX00")
    token = flow.open_session(_identity(), 1.0)
    assert token is not None
    _assert_no_plaintext(store, MARKER, record.login_id, token, "Sanne", "s@x.example")
    assert all(key.startswith((f"{LOGIN}:", f"{SSO}:")) for key, _ in store.written)


def test_complete(flow: LoginFlow) -> None:
    completion = flow.complete(LoginRequest("uitgever"), _identity(), 42.0)
    assert completion.release.pseudonym == derive_chain_pseudonym(
        KEY, "leermiddelen", "school:99XX00", MARKER
    )
    assert completion.release.attributes == {"given_name": ("Sanne",)}
    assert completion.release.policy_version == 2
    assert completion.authn_instant == 42.0
    assert completion.authn_context == "urn:pwd"


def test_complete_follows_the_chains_key_version_and_window(
    store: RecordingStore, clock: Clock
) -> None:
    """The chain's record (from the registry view) picks the versions; the flow's clock ends
    the window; the key source is asked for exactly the versions in use."""
    key_2 = bytes(range(32, 64))
    registry = FakeRegistry()
    ends = datetime.fromtimestamp(clock.now + 3600, UTC)
    registry.key_versions["leermiddelen"] = ChainKeyVersion("leermiddelen", 2, 1, ends)
    asked: list[frozenset[int]] = []

    class Source(HeldKeySource):
        def key_set_holding(self, versions: frozenset[int]) -> PseudonymKeys:
            asked.append(versions)
            return super().key_set_holding(versions)

    keys = PseudonymKeys(1, {1: KEY, 2: key_2})
    flow = LoginFlow(
        registry, store, Source(keys), login_ttl=LOGIN_TTL, sso_ttl=SSO_TTL, clock=clock
    )
    old = derive_chain_pseudonym(KEY, "leermiddelen", "school:99XX00", MARKER)
    new = derive_chain_pseudonym(key_2, "leermiddelen", "school:99XX00", MARKER)
    during = flow.complete(LoginRequest("uitgever"), _identity(), clock.now).release
    assert (during.pseudonym, during.previous_pseudonym, during.key_version) == (new, old, 2)
    clock.now += 3600
    after = flow.complete(LoginRequest("uitgever"), _identity(), clock.now).release
    assert (after.pseudonym, after.previous_pseudonym, after.key_version) == (new, None, 2)
    assert asked == [frozenset({1, 2}), frozenset({2})]


def test_complete_refuses_a_school_login_in_the_future(flow: LoginFlow) -> None:
    """The probe's AuthnInstant=2100-01-01: refused, and with a max_age too (which alone
    never tripped on a negative age)."""
    for request in (LoginRequest("uitgever"), LoginRequest("uitgever", max_age=60)):
        with pytest.raises(InvalidMessage) as refused:
            flow.complete(request, _identity(), 4_102_444_800.0)
        assert refused.value.code == "authn_instant_in_future"
    # Within the clock skew it passes (the school's clock may run a little ahead).
    flow.complete(LoginRequest("uitgever"), _identity(), flow.clock() + flow.clock_skew)


def test_a_forced_login_must_be_newer_than_the_students_leaving(flow: LoginFlow) -> None:
    left = flow.clock() - 20
    forced = LoginRequest("uitgever", force_authn=True)
    old = flow.clock() - 3600  # the school's own session, from an hour ago
    with pytest.raises(FreshLoginIgnored):
        flow.complete(forced, _identity(), old, sent_at=left)
    assert flow.complete(forced, _identity(), left + 10, sent_at=left).authn_instant == left + 10
    # A max_age alone asks no fresh login: a login that recent is what the service asked for
    # (a SAML school gets ForceAuthn only because SAML cannot say max_age).
    recent = LoginRequest("uitgever", max_age=3600)
    flow.complete(recent, _identity(), flow.clock() - 600, sent_at=left)
    with pytest.raises(StaleAuthentication) as stale:
        flow.complete(recent, _identity(), old - flow.clock_skew - 1, sent_at=left)
    assert not isinstance(stale.value, FreshLoginIgnored)


def test_complete_for_unknown_parties(flow: LoginFlow) -> None:
    with pytest.raises(UnknownService):
        flow.complete(LoginRequest("nobody"), _identity(), 1.0)
    with pytest.raises(UnknownSchool):
        flow.complete(LoginRequest("uitgever"), _identity("00ZZ00"), 1.0)


def test_sso_session_round_trip(flow: LoginFlow) -> None:
    identity = _identity()
    token = flow.open_session(identity, 1234.5)
    assert token is not None
    assert flow.session(token) == (identity, 1234.5)
    flow.end_session(token)
    assert flow.session(token) is None


def test_sso_session_expires(flow: LoginFlow, clock: Clock) -> None:
    token = flow.open_session(_identity(), 1.0)
    clock.now += SSO_TTL + 1
    assert flow.session(token) is None


def test_the_sso_session_ends_no_later_than_the_schools(flow: LoginFlow, clock: Clock) -> None:
    """SAML SessionNotOnOrAfter caps the session's lifetime; kept in the session too."""
    ending = dataclasses.replace(_identity(), session_ends=clock.now + 600)
    opened = flow.new_session(ending, clock.now)
    assert opened is not None
    token, writes = opened
    assert [op.ttl_seconds for op in writes] == [600]
    flow.store.batch(writes)
    assert flow.session(token) == (ending, clock.now)
    clock.now += 601
    assert flow.session(token) is None
    # A later end than the broker's own lifetime changes nothing; one passed opens no session.
    later = flow.new_session(
        dataclasses.replace(ending, session_ends=clock.now + 10 * SSO_TTL), clock.now
    )
    assert later is not None and [op.ttl_seconds for op in later[1]] == [SSO_TTL]
    assert flow.new_session(dataclasses.replace(ending, session_ends=clock.now - 1), 1.0) is None
    assert flow.open_session(dataclasses.replace(ending, session_ends=clock.now), 1.0) is None


def test_the_service_session_ends_with_the_schools_and_no_later_than_the_brokers(
    flow: LoginFlow, clock: Clock
) -> None:
    """The completion's session end (SAML SessionNotOnOrAfter): the school's, capped at the
    broker's own session; a session opened on a later end keeps the capped one, so what it
    answers later says the same. None where the school said nothing, or one that passed."""
    request = LoginRequest("uitgever")
    assert flow.complete(request, _identity(), clock.now).session_ends is None
    soon = dataclasses.replace(_identity(), session_ends=clock.now + 600)
    assert flow.complete(request, soon, clock.now).session_ends == clock.now + 600
    # One passed already is not passed on (a service would refuse the answer for it).
    passed = dataclasses.replace(_identity(), session_ends=clock.now)
    assert flow.complete(request, passed, clock.now).session_ends is None
    late = dataclasses.replace(_identity(), session_ends=clock.now + 10 * SSO_TTL)
    assert flow.complete(request, late, clock.now).session_ends == clock.now + SSO_TTL
    token = flow.open_session(late, clock.now)
    opened = flow.session(token)
    assert opened is not None and opened[0].session_ends == clock.now + SSO_TTL
    clock.now += 60
    assert flow.complete(request, opened[0], opened[1]).session_ends == clock.now - 60 + SSO_TTL


def test_sso_off(store: RecordingStore) -> None:
    flow = LoginFlow(FakeRegistry(), store, PseudonymKeys(1, {1: KEY}), login_ttl=900, sso_ttl=0)
    assert flow.open_session(_identity(), 1.0) is None
    assert not store.written


@pytest.mark.parametrize(
    "token",
    [None, "", "not-a-session", "x" * 129, "y" * 10_000],
    ids=["none", "empty", "unknown", "129", "huge"],
)
def test_wrong_or_oversized_token(flow: LoginFlow, token: str | None) -> None:
    flow.open_session(_identity(), 1.0)
    assert flow.session(token) is None


def test_session_token_for_another_record_does_not_open(
    flow: LoginFlow, store: RecordingStore
) -> None:
    token = flow.open_session(_identity(), 1.0)
    assert token is not None
    # Someone who knows where a session lies but not its token finds nothing readable.
    _, blob = store.written[-1]
    store.put(store_key(SSO, "forged"), blob, 60)
    assert flow.session("forged") is None


def test_session_serves(flow: LoginFlow) -> None:
    identity = _identity("99XX00")

    def record(
        school_id: str | None, force: bool = False, max_age: int | None = None
    ) -> LoginRecord:
        request = LoginRequest("uitgever", force_authn=force, max_age=max_age)
        return LoginRecord("id", request, 1.0, school_id)

    now = flow.clock()
    assert flow.session_serves(record(None), identity, now)
    assert flow.session_serves(record("99XX00"), identity, now)
    assert not flow.session_serves(record("88YY00"), identity, now)
    assert not flow.session_serves(record(None, force=True), identity, now)
    assert not flow.session_serves(record("99XX00", force=True), identity, now)
    # OIDC max_age: a session of 10 minutes ago serves max_age=3600, not max_age=60.
    assert flow.session_serves(record(None, max_age=3600), identity, now - 600)
    assert not flow.session_serves(record(None, max_age=60), identity, now - 600)
    # A session whose login lies in the future (kept before such instants were refused) serves
    # nothing: every max_age would take it for fresh, and complete refuses it.
    assert not flow.session_serves(record(None), identity, now + 86_400)
    assert not flow.session_serves(record(None, max_age=60), identity, now + 86_400)
    assert flow.session_serves(record(None), identity, now + flow.clock_skew)


def test_a_session_at_a_school_whose_idp_must_name_it_serves_only_if_its_login_did(
    flow: LoginFlow,
) -> None:
    """A session opened while the school's IdP did not yet have to name it (core/shared_idp.py)
    serves once the registry says it must only if its login named the school."""
    registry = flow.registry
    assert isinstance(registry, FakeRegistry)
    unnamed, named = _identity("99XX00"), _identity("99XX00")
    named.attributes["school_id"] = ("99XX00",)
    record = LoginRecord("id", LoginRequest("uitgever"), 1.0)
    now = flow.clock()
    assert flow.session_serves(record, unnamed, now)
    registry.naming_idps.add("https://idp.demo.example")
    assert not flow.session_serves(record, unnamed, now)
    assert flow.session_serves(record, named, now)
    # Another school's session is not affected by this IdP's rule.
    assert flow.session_serves(record, _identity("88YY00"), now)


def test_a_session_at_a_school_whose_issuer_must_name_it_is_the_same_rule(
    flow: LoginFlow,
) -> None:
    """An OpenID school on a board's issuer (its `idp_entity_id`): as for a SAML IdP."""
    registry = flow.registry
    assert isinstance(registry, FakeRegistry)
    issuer = "https://login.microsoftonline.com/bestuur/v2.0"
    upstream = OidcUpstream(issuer, "board", "s")
    registry._schools["77ZZ00"] = School("77ZZ00", "Bestuur", issuer, "sub", oidc=upstream)
    unnamed, named = _identity("77ZZ00"), _identity("77ZZ00")
    named.attributes["school_id"] = ("77ZZ00",)
    record = LoginRecord("id", LoginRequest("uitgever"), 1.0)
    now = flow.clock()
    assert flow.session_serves(record, unnamed, now)
    registry.naming_idps.add(issuer)
    assert not flow.session_serves(record, unnamed, now)
    assert flow.session_serves(record, named, now)


def test_a_reopened_login_keeps_its_choice_and_forgets_the_schools_request(
    flow: LoginFlow,
) -> None:
    """The OIDC callback's refusal of another school's student (core/shared_idp.py): the
    taken record is saved back without the request the school answered."""
    secret = new_secret()
    record = flow.start(secret, LoginRequest("uitgever"), save=False)
    record = flow.with_school(record, "99XX00")
    flow.note_upstream(secret, record, "oidc-req", {"nonce": "n"})
    taken = flow.take(secret, record.login_id)
    assert taken.upstream_request_id == "oidc-req"
    flow.reopen(secret, taken, "https://login.example/bestuur")
    again = flow.load(secret, record.login_id)
    assert again.upstream_request_id is None and again.upstream == {}
    # The next request to that provider asks which account (OIDC prompt=select_account).
    assert again.wrong_account_at == "https://login.example/bestuur"
    assert LoginRecord.from_payload(again.to_payload()) == again
    assert again.school_id == "99XX00" and again.request == record.request


def test_a_login_kept_to_a_board_idps_schools_is_served_by_their_sessions_only(
    flow: LoginFlow,
) -> None:
    """`school_choices` (an IDPList naming a board's IdP): a session at another school does
    not answer, and the login cannot be taken to another school."""
    request = LoginRequest("uitgever", school_choices=("99XX00", "99XX01"))
    record = flow.start(new_secret(), request, save=False)
    now = flow.clock()
    assert flow.session_serves(record, _identity("99XX00"), now)
    assert not flow.session_serves(record, _identity("88YY00"), now)
    with pytest.raises(UnknownSchool):
        flow.with_school(record, "88YY00")
    assert flow.with_school(record, "99XX00").school_id == "99XX00"
    assert LoginRecord.from_payload(record.to_payload()) == record


# -- the student the service expects (OIDC id_token_hint, a requested sub) and school choice ---
def _sanne() -> str:
    return derive_chain_pseudonym(KEY, "leermiddelen", "school:99XX00", MARKER)


def test_no_expected_student_costs_nothing(store: RecordingStore, clock: Clock) -> None:
    """The usual login names no student: no registry or key lookup at all."""

    class Untouchable:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"registry.{name} called")

    registry: RegistryReader = Untouchable()  # type: ignore[assignment]
    flow = LoginFlow(
        registry, store, PseudonymKeys(1, {1: KEY}), login_ttl=LOGIN_TTL, sso_ttl=SSO_TTL
    )
    assert flow.is_expected_student(LoginRequest("uitgever"), _identity())


def test_the_expected_student_by_pseudonym(flow: LoginFlow) -> None:
    assert flow.is_expected_student(LoginRequest("uitgever", subjects=(_sanne(),)), _identity())
    other = LoginRequest("uitgever", subjects=("0" * 64,))
    assert not flow.is_expected_student(other, _identity())
    # The same student at another school is another student (another pseudonym).
    assert not flow.is_expected_student(
        LoginRequest("uitgever", subjects=(_sanne(),)), _identity("88YY00")
    )
    with pytest.raises(UnexpectedStudent):
        flow.complete(other, _identity(), flow.clock())
    answered = flow.complete(LoginRequest("uitgever", subjects=(_sanne(),)), _identity(), 1.0)
    assert answered.release.pseudonym == _sanne()


def test_a_hint_from_before_a_key_rotation_names_the_same_student(
    store: RecordingStore, clock: Clock
) -> None:
    """During the chain's window the previous pseudonym names the student too (a platform's
    ID token of before the rotation); after it, only the new one."""
    key_2 = bytes(range(32, 64))
    registry = FakeRegistry()
    ends = datetime.fromtimestamp(clock.now + 3600, UTC)
    registry.key_versions["leermiddelen"] = ChainKeyVersion("leermiddelen", 2, 1, ends)
    keys = PseudonymKeys(1, {1: KEY, 2: key_2})
    flow = LoginFlow(registry, store, keys, login_ttl=LOGIN_TTL, sso_ttl=SSO_TTL, clock=clock)
    old = LoginRequest("uitgever", subjects=(_sanne(),))
    assert flow.is_expected_student(old, _identity())
    assert flow.complete(old, _identity(), clock.now).release.previous_pseudonym == _sanne()
    clock.now += 3600
    assert not flow.is_expected_student(old, _identity())


def test_choosing_the_school_sets_the_session_and_the_hint_aside(flow: LoginFlow) -> None:
    choose = LoginRequest("uitgever", school_hint="99XX00", choose_school=True)
    record = flow.start(new_secret(), choose, save=False)
    assert record.school_id is None
    assert not flow.session_serves(record, _identity("99XX00"), flow.clock())


def _scope_school_flow(
    store: RecordingStore, clock: Clock, counted: list[int]
) -> tuple[LoginFlow, Callable[[str], UpstreamIdentity]]:
    """A school whose subject is its user name, registered with the scope school.nl."""
    registry = FakeRegistry()
    registry._schools["77ZZ00"] = School(
        "77ZZ00", "Scopeschool", "https://idp.scope.example", "username", scopes=("school.nl",)
    )
    flow = LoginFlow(
        registry, store, PseudonymKeys(1, {1: KEY}), login_ttl=LOGIN_TTL, sso_ttl=SSO_TTL,
        clock=clock, scope_spelling_counted=lambda: counted.append(1),
    )  # fmt: skip

    def identity(value: str) -> UpstreamIdentity:
        return UpstreamIdentity("77ZZ00", value, {"username": (value,)})

    return flow, identity


def _spelling_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "subject scope spelled otherwise" in r.getMessage()
    ]


def test_a_subject_scope_in_another_case_signs_in_as_sent_and_is_logged_once(
    store: RecordingStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The registered spelling signs in and logs nothing; another case of it (accepted as an
    attribute, ignoring case) signs in too, its pseudonym made from the value as sent (refusing
    or lower-casing would break a school whose IdP always sends it), and is made visible: one
    WARNING line per school and spelling in the process, naming the school and both scopes,
    never the student's value; every such login counted."""
    counted: list[int] = []
    flow, identity = _scope_school_flow(store, clock, counted)
    local = "MARKER-jan"
    with caplog.at_level(logging.DEBUG):
        exact = flow.complete(LoginRequest("uitgever"), identity(f"{local}@school.nl"), clock.now)
    assert exact.release.pseudonym == derive_chain_pseudonym(
        KEY, "leermiddelen", "school:77ZZ00", f"{local}@school.nl"
    )
    assert _spelling_lines(caplog) == [] and counted == []
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            other = flow.complete(
                LoginRequest("uitgever"), identity(f"{local}@School.nl"), clock.now
            )
            assert other.release.pseudonym == derive_chain_pseudonym(
                KEY, "leermiddelen", "school:77ZZ00", f"{local}@School.nl"
            )
    assert _spelling_lines(caplog) == [
        "subject scope spelled otherwise school=77ZZ00 registered=school.nl sent=School.nl"
    ]
    assert counted == [1, 1, 1]
    assert local not in caplog.text
    # A third spelling is another line, once.
    with caplog.at_level(logging.DEBUG):
        flow.complete(LoginRequest("uitgever"), identity(f"{local}@SCHOOL.NL"), clock.now)
        flow.complete(LoginRequest("uitgever"), identity(f"{local}@SCHOOL.NL"), clock.now)
    assert _spelling_lines(caplog)[1:] == [
        "subject scope spelled otherwise school=77ZZ00 registered=school.nl sent=SCHOOL.NL"
    ]


def test_the_spellings_noted_are_bounded(
    store: RecordingStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Past `max_noted` (school, spelling) pairs no new one is kept or logged: an IdP that
    varies its spelling cannot grow a worker's memory. The logins still go on, and count."""
    counted: list[int] = []
    flow, identity = _scope_school_flow(store, clock, counted)
    flow.scope_spellings = ScopeSpellings(flow.scope_spellings.counted, max_noted=2)
    with caplog.at_level(logging.DEBUG):
        for scope in ("School.nl", "SCHOOL.nl", "SChool.nl", "School.nl"):
            flow.complete(LoginRequest("uitgever"), identity(f"jan@{scope}"), clock.now)
    assert [line.rsplit("=", 1)[1] for line in _spelling_lines(caplog)] == [
        "School.nl",
        "SCHOOL.nl",
    ]
    assert counted == [1, 1, 1, 1]
