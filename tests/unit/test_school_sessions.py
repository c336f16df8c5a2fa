"""SSO sessions filed under a school's sid (broker/login/school_sessions.py) and a school's
back-channel logout (broker/login/school_logout.py): what the store holds (neither the sid nor
the school's sub nor the SSO token, in keys or values), that a leaked store opens nothing without
the sid, that SAML logins without a SessionIndex write nothing more (one with it is filed under
it, for a LogoutRequest that comes without the cookie), and what ending a session tells its
services."""

from __future__ import annotations

import pytest

from broker.core.errors import StateExpired
from broker.core.model import UpstreamIdentity
from broker.core.pseudonym import PseudonymKeys
from broker.login.flow import LoginFlow
from broker.login.logout import BACK, CONFIRMED, FRONT, UNSUPPORTED, SingleLogout
from broker.login.participants import Participant, SessionServiceBook
from broker.login.school_logout import NOT_TOLD, SchoolBackChannelLogout
from broker.login.school_sessions import BACK_CHANNEL, KIND, SchoolSessionIndex, saml_sid
from broker.login.sealed import seal, unseal
from broker.oidc.back import upstream_session
from broker.oidc.rp_discovery import parse_discovery
from tests.unit.test_sealed_and_flow import (
    KEY,
    FakeRegistry,
    RecordingStore,
    _assert_no_plaintext,
)

SID = "SIDMARKER-3f9a-school-session"
SUB = "SUBMARKER-77c2-school-subject"
SCHOOL = "99ZZ00"
SERVER_SECRET = b"s" * 32


def oidc_identity(sid: str = SID, *, back_channel: bool = True) -> UpstreamIdentity:
    upstream = {"protocol": "oidc", "id_token": "header.payload.sig", "sid": sid}
    if back_channel:
        upstream[BACK_CHANNEL] = "1"
    return UpstreamIdentity(SCHOOL, SUB, {}, None, upstream_session=upstream)


NAME_ID = "NAMEIDMARKER-1b7e-school-nameid"
SESSION_INDEX = "SIDXMARKER-c04d-session-index"


def saml_identity(session_index: str = "") -> UpstreamIdentity:
    upstream = {"protocol": "saml", "name_id": NAME_ID}
    if session_index:
        upstream["session_index"] = session_index
    return UpstreamIdentity("99XX00", SUB, {}, None, upstream_session=upstream)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def index(store: RecordingStore) -> SchoolSessionIndex:
    return SchoolSessionIndex(store, SERVER_SECRET, session_ttl=3600)


def flow_with(store: RecordingStore, index: SchoolSessionIndex) -> LoginFlow:
    return LoginFlow(
        FakeRegistry(),
        store,
        PseudonymKeys(1, {1: KEY}),
        login_ttl=900,
        sso_ttl=3600,
        school_sessions=index,
    )


def test_a_filed_session_is_found_by_school_and_sid(index: SchoolSessionIndex) -> None:
    index.note(oidc_identity(), "sso-token-1")
    assert index.find(SCHOOL, SID) == "sso-token-1"
    assert index.find(SCHOOL, SID + "x") is None
    assert index.find("99ZZ01", SID) is None  # another school's sid is another session


def test_the_store_holds_neither_sid_nor_sub_nor_token(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    flow = flow_with(store, index)
    token = flow.open_session(oidc_identity(), 1.0)
    assert token is not None
    filed = [(k, v) for k, v in store.written if k.startswith(f"{KIND}:")]
    assert len(filed) == 1
    _assert_no_plaintext(store, SID, SUB, token, "header.payload.sig")


def test_a_leaked_store_opens_nothing_without_the_sid_and_the_secret(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    index.note(oidc_identity(), "sso-token-1")
    key, blob = next((k, v) for k, v in store.written if k.startswith(f"{KIND}:"))
    record_id = key.removeprefix(f"{KIND}:")
    # Someone with the store who guessed the sid right still cannot open the record without
    # the broker's secret (a provider that numbers its sessions makes sids guessable) ...
    with pytest.raises(StateExpired):
        unseal(SCHOOL.encode() + b"\0" + SID.encode(), KIND, record_id, blob)
    # ... nor with the secret but a wrong sid.
    wrong = SchoolSessionIndex(RecordingStore(), SERVER_SECRET, session_ttl=60)
    with pytest.raises(StateExpired):
        unseal(wrong._sealing(SCHOOL, "guessed-sid"), KIND, record_id, blob)
    assert unseal(wrong._sealing(SCHOOL, SID), KIND, record_id, blob) == {"t": "sso-token-1"}
    # Another server secret files the same pair elsewhere: the key says nothing by itself.
    other = SchoolSessionIndex(RecordingStore(), b"o" * 32, session_ttl=60)
    assert other._record_id(SCHOOL, SID) != record_id


def test_saml_logins_without_a_session_index_write_nothing_more(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    flow = flow_with(store, index)
    before = len(store.written)
    token = flow.open_session(saml_identity(), 1.0)
    assert len(store.written) == before + 1  # the SSO session record, nothing else
    assert token is not None
    flow.end_session(token, saml_identity())
    assert flow.session(token) is None


@pytest.mark.parametrize(
    "identity",
    [
        oidc_identity(back_channel=False),  # discovery says no back-channel logout
        oidc_identity(sid=""),  # the school sends no sid
        oidc_identity(sid="x" * 300),  # no sane sid
    ],
)
def test_oidc_logins_without_back_channel_or_sid_write_nothing_more(
    store: RecordingStore, index: SchoolSessionIndex, identity: UpstreamIdentity
) -> None:
    flow = flow_with(store, index)
    flow.open_session(identity, 1.0)
    assert [k for k, _ in store.written if k.startswith(f"{KIND}:")] == []


def test_ending_the_session_removes_its_filing(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    flow = flow_with(store, index)
    token = flow.open_session(oidc_identity(), 1.0)
    assert token is not None
    flow.end_session(token, oidc_identity())
    assert index.find(SCHOOL, SID) is None


def test_ending_a_replaced_session_keeps_the_new_filing_of_the_same_sid(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    """A fresh login may get the same sid from the school: the new session is filed first,
    the old one ended after; its end must not remove the new session's filing."""
    flow = flow_with(store, index)
    old = flow.open_session(oidc_identity(), 1.0)
    new = flow.open_session(oidc_identity(), 2.0)
    assert old and new
    flow.end_session(old, oidc_identity())
    assert index.find(SCHOOL, SID) == new


class FakeChannel:
    """A protocol's channel with fixed modes; back-channel calls are counted."""

    def __init__(self, mode: str, *, back: bool = False) -> None:
        self._mode = mode
        self.back = back  # a FRONT service that can also be told server to server (SOAP)
        self.told: list[str] = []

    def mode(self, participant: Participant) -> str:
        return self._mode

    def can_be_told_server_to_server(self, participant: Participant) -> bool:
        return self.back

    def back_channel(self, participant: Participant, timeout: float) -> str:
        self.told.append(participant.service_id)
        return CONFIRMED


def test_a_school_logout_ends_the_session_and_tells_back_channel_services_only(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    flow = flow_with(store, index)
    services = SessionServiceBook(store, session_ttl=3600)
    logout = SingleLogout(store, services, run_ttl=60, wait_seconds=2.0)
    oidc, saml, none = FakeChannel(BACK), FakeChannel(FRONT), FakeChannel(UNSUPPORTED)
    soap = FakeChannel(FRONT, back=True)
    channels = {"oidc": oidc, "saml": saml, "other": none, "soap": soap}
    logout.channels.update(channels)  # type: ignore[arg-type]
    token = flow.open_session(oidc_identity(), 1.0)
    assert token is not None
    record = services.read(token)
    for service_id, protocol in (("a", "oidc"), ("b", "saml"), ("c", "other"), ("d", "soap")):
        services.record(token, record, Participant(service_id, protocol))
        record = services.read(token)
    school_logout = SchoolBackChannelLogout(flow, index, logout, wait_seconds=2.0)

    outcome = school_logout.end(SCHOOL, SID)

    assert outcome.ended
    assert outcome.statuses == {CONFIRMED: 2, NOT_TOLD: 1, UNSUPPORTED: 1}
    assert oidc.told == ["a"] and saml.told == [] and none.told == []
    # A front-channel service that also takes a server-to-server message (a SAML service's
    # SOAP endpoint) is told that way when no browser can carry the front-channel one.
    assert soap.told == ["d"]
    assert flow.session(token) is None
    assert services.read(token).participants == ()
    assert index.find(SCHOOL, SID) is None
    # Once more: nothing left to end.
    assert not school_logout.end(SCHOOL, SID).ended


def test_a_filing_that_outlived_its_session_is_dropped(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    flow = flow_with(store, index)
    token = flow.open_session(oidc_identity(), 1.0)
    assert token is not None
    flow.end_session(token)  # without the identity: the filing stays until its TTL
    assert index.find(SCHOOL, SID) == token
    services = SessionServiceBook(store, session_ttl=3600)
    logout = SingleLogout(store, services, run_ttl=60, wait_seconds=1.0)
    outcome = SchoolBackChannelLogout(flow, index, logout, wait_seconds=1.0).end(SCHOOL, SID)
    assert not outcome.ended
    assert index.find(SCHOOL, SID) is None


@pytest.mark.parametrize(("value", "supported"), [(True, True), ("true", False), (None, False)])
def test_discovery_names_back_channel_logout_only_with_true(value: object, supported: bool) -> None:
    issuer = "https://op.school.example"
    document: dict[str, object] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
    }
    if value is not None:
        document["backchannel_logout_supported"] = value
    assert parse_discovery(document, issuer).backchannel_logout_supported is supported


@pytest.mark.parametrize(
    ("claims", "back_channel", "filed"),
    [
        ({"sid": SID}, True, True),
        ({"sid": SID}, False, False),
        ({}, True, False),
        ({"sid": 5}, True, False),
    ],
)
def test_the_school_answer_marks_a_session_for_filing(
    claims: dict[str, object], back_channel: bool, filed: bool
) -> None:
    kept = upstream_session("a.b.c", claims, back_channel=back_channel)
    identity = UpstreamIdentity(SCHOOL, SUB, {}, None, upstream_session=kept)
    assert (SchoolSessionIndex.filed(identity) == SID) is filed


def test_a_sid_that_is_no_text_is_not_kept(index: SchoolSessionIndex) -> None:
    """A lone surrogate in an ID token's sid (JSON can hold one): kept, it made the filing's
    HMAC raise at the end of the login (a 500)."""
    kept = upstream_session("a.b.c", {"sid": "\udc80" + SID}, back_channel=True)
    assert "sid" not in kept
    identity = UpstreamIdentity(SCHOOL, SUB, {}, None, upstream_session=kept)
    assert index.note_op(identity, "sso-token") is None


def test_a_filing_sealed_before_the_upgrade_is_still_found_and_forgotten(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    # Sealed under (school id, sid) alone, as before 2026-11-30: a school's logout token must
    # still end a session that spans the upgrade.
    record_id = index._record_id(SCHOOL, SID)
    old = seal(SCHOOL.encode() + b"\0" + SID.encode(), KIND, record_id, {"t": "sso-token-0"})
    store.put(index._key(record_id), old, 3600)
    assert index.find(SCHOOL, SID) == "sso-token-0"
    index.forget(oidc_identity(), "sso-token-0")
    assert index.find(SCHOOL, SID) is None


def _with_services(
    store: RecordingStore, index: SchoolSessionIndex
) -> tuple[LoginFlow, SessionServiceBook, SchoolBackChannelLogout]:
    flow = flow_with(store, index)
    services = SessionServiceBook(store, session_ttl=3600)
    logout = SingleLogout(store, services, run_ttl=60, wait_seconds=1.0)
    return flow, services, SchoolBackChannelLogout(flow, index, logout, wait_seconds=1.0)


def test_a_saml_session_is_filed_under_its_session_index_and_holds_nothing_readable(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    """A school's LogoutRequest in a frame without the broker's cookies finds the session by
    the SessionIndex it names (saml_logout_routes._without_the_cookie); a dump of the store
    shows neither the SessionIndex nor the NameID nor the token."""
    flow, _, school_logout = _with_services(store, index)
    token = flow.open_session(saml_identity(SESSION_INDEX), 1.0)
    assert token is not None
    assert len([k for k, _ in store.written if k.startswith(f"{KIND}:")]) == 1
    _assert_no_plaintext(store, SESSION_INDEX, NAME_ID, SUB, token)
    sid = saml_sid(SESSION_INDEX)
    # Another school's index, another SessionIndex, an OIDC sid of the same text: nothing.
    assert index.find_any(["99ZZ01"], [sid]) is None
    assert index.find_any(["99XX00"], [saml_sid("other")]) is None
    assert index.find_any(["99XX00"], [SESSION_INDEX]) is None
    assert index.find_any(["99ZZ01", "99XX00"], [saml_sid("other"), sid]) == ("99XX00", sid, token)

    def names(identity: UpstreamIdentity) -> bool:
        return identity.upstream_session.get("name_id") == NAME_ID

    outcome = school_logout.end_any(["99XX00"], [sid], names)
    assert outcome.ended and flow.session(token) is None
    # The filing is left to its TTL (no round trips at every logout): the same request again
    # finds only a session that is gone, ends nothing, and drops it.
    again = school_logout.end_any(["99XX00"], [sid], names)
    assert not again.ended and not again.other
    assert index.find_any(["99XX00"], [sid]) is None


def test_a_saml_request_naming_another_student_ends_nothing(
    store: RecordingStore, index: SchoolSessionIndex
) -> None:
    flow, _, school_logout = _with_services(store, index)
    token = flow.open_session(saml_identity(SESSION_INDEX), 1.0)
    assert token is not None
    outcome = school_logout.end_any(["99XX00"], [saml_sid(SESSION_INDEX)], lambda _: False)
    assert outcome.other and not outcome.ended
    assert flow.session(token) is not None


@pytest.mark.parametrize("session_index", ["", "x" * 300])
def test_a_saml_login_without_a_sane_session_index_is_not_filed(session_index: str) -> None:
    assert SchoolSessionIndex.filed(saml_identity(session_index)) is None
