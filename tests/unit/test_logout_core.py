"""The logout core without a web server: the per-session record of services, and a run's
bookkeeping (login/participants.py, login/logout.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from broker.core.errors import InvalidMessage, StateExpired, StoreUnavailable
from broker.core.model import UpstreamIdentity
from broker.core.ports import KeyValueStore, StoreOp, StoreReply
from broker.core.pseudonym import PseudonymKeys
from broker.login.flow import LoginFlow
from broker.login.logout import (
    BACK,
    BY_SCHOOL,
    BY_SERVICE,
    BY_STUDENT,
    CONFIRMED,
    FAILED,
    FRONT,
    INITIATOR,
    NOT_TOLD,
    PENDING,
    TIMED_OUT,
    UNSUPPORTED,
    Initiator,
    LogoutRun,
    Outbound,
    SingleLogout,
    Target,
    status_summary,
)
from broker.login.logout_run import SCHOOL_PARTIAL
from broker.login.logout_start import (
    CLAIM,
    CLAIM_POLL_SECONDS,
    CLAIM_WAIT_SECONDS,
    LogoutStart,
    Started,
)
from broker.login.participants import (
    FAMILIES,
    MAX_FAMILIES,
    Participant,
    SessionServiceBook,
    SessionServices,
    session_and_services,
)
from broker.login.school_logout import SchoolBackChannelLogout
from broker.login.school_sessions import BACK_CHANNEL, SchoolSessionIndex
from broker.login.sealed import seal, store_key
from broker.store import MemoryStore
from broker.store.contract import WRITES_WITH_VALUE
from tests.unit.test_sealed_and_flow import KEY, FakeRegistry

TOKEN = "t" * 43
SECRET = b"s" * 32


class CountingStore(MemoryStore):
    """Counts the writes: single puts and a batch's writes alike."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self.puts += 1
        super().put(key, value, ttl_seconds)

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        self.puts += sum(op.operation in WRITES_WITH_VALUE for op in operations)
        return super().batch(operations)


class RecordingStore(MemoryStore):
    """Keeps every write of a batch, (key, value, ttl), and each batch's operations."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, bytes, int]] = []
        self.batches: list[list[str]] = []

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        self.written += [(op.key, op.value, op.ttl_seconds) for op in operations]
        self.batches.append([op.operation for op in operations])
        return super().batch(operations)


class Channel:
    """A service channel that decides its mode by the participant's handles."""

    def __init__(self) -> None:
        self.notified: list[str] = []

    def mode(self, participant: Participant) -> str:
        return participant.handles.get("mode", FRONT)

    def can_be_told_server_to_server(self, participant: Participant) -> bool:
        return participant.handles.get("soap") == "1"

    def front_origin(self, participant: Participant) -> str:
        return "https://sp.example"

    def back_channel(self, participant: Participant, timeout: float) -> str:
        self.notified.append(participant.service_id)
        return CONFIRMED

    def front_channel(self, run_id: str, index: int, participant: Participant) -> Outbound:
        return Outbound(f"https://sp.example/slo?{index}")

    def answer_initiator(self, run: LogoutRun) -> Outbound | None:
        return Outbound("https://sp.example/back", {"partial": str(run.partial)})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _participant(service_id: str, **handles: Any) -> Participant:
    return Participant(service_id, "saml", {"name_id": "n", **handles}, "fp")


def _logout(store: KeyValueStore, clock: Clock) -> tuple[SingleLogout, SessionServiceBook, Channel]:
    book = SessionServiceBook(store, session_ttl=3600)
    logout = SingleLogout(store, book, run_ttl=600, wait_seconds=5, clock=clock)
    channel = Channel()
    logout.register("saml", channel)
    return logout, book, channel


# A session at a school of the registry: the run tells that school, by its protocol.
IDENTITY = UpstreamIdentity("99XX00", "sub", {}, None, upstream_session={"name_id": "x"})


def _starts(logout: SingleLogout) -> LogoutStart:
    flow = LoginFlow(
        FakeRegistry(), logout.store, PseudonymKeys(1, {1: KEY}), login_ttl=900, sso_ttl=3600
    )
    return LogoutStart(logout, flow)


def _signed_in(logout: SingleLogout, *participants: Participant) -> tuple[LogoutStart, str]:
    """A standing SSO session that answered `participants`: its token, and where runs start."""
    starts = _starts(logout)
    token = starts.flow.open_session(IDENTITY, 1.0)
    assert token is not None
    for participant in participants:
        logout.services.record(token, logout.services.read(token), participant)
    return starts, token


def _start(
    logout: SingleLogout,
    initiator: Initiator,
    token: str = TOKEN,
    starts: LogoutStart | None = None,
) -> LogoutRun:
    """A run started as the web routes start one; by default for `TOKEN`, which names no
    session (a record of services may have outlived it)."""
    started = (starts or _starts(logout)).start(SECRET, initiator, token)
    assert started.run is not None and started.run_id == started.run.run_id
    return started.run


def test_a_returning_login_with_the_same_release_writes_nothing() -> None:
    store = CountingStore()
    book = SessionServiceBook(store, session_ttl=3600)
    book.record(TOKEN, book.read(TOKEN), _participant("a"))
    assert store.puts == 1
    book.record(TOKEN, book.read(TOKEN), _participant("a"))
    assert store.puts == 1
    book.record(TOKEN, book.read(TOKEN), _participant("b"))
    services = book.read(TOKEN)
    assert [p.service_id for p in services.participants] == ["a", "b"]
    assert services.seen("a") == "fp" and services.seen("c") == ""


def test_the_record_opens_only_with_its_token() -> None:
    store = MemoryStore()
    book = SessionServiceBook(store, session_ttl=3600)
    book.record(TOKEN, SessionServices(), _participant("a"))
    assert book.read("another-token").participants == ()
    assert book.read(None).participants == ()


def test_a_run_ends_the_record_and_leaves_out_the_initiator() -> None:
    store, clock = MemoryStore(), Clock()
    logout, book, _ = _logout(store, clock)
    participants = [_participant(service) for service in ("a", "b", "c")]
    starts, token = _signed_in(logout, *participants, _participant("d", mode=UNSUPPORTED))
    run = _start(logout, Initiator(BY_SERVICE, "saml", "a"), token, starts)
    assert book.read(token).participants == ()
    assert starts.flow.session(token) is None
    assert (run.school_id, run.school_protocol, run.upstream) == (
        "99XX00",
        "saml",
        {"name_id": "x"},
    )
    assert [t.participant.service_id for t in run.targets] == ["b", "c", "d"]
    assert [t.status for t in run.targets] == [PENDING, PENDING, UNSUPPORTED]
    assert run.school_status == PENDING
    assert logout.load(SECRET, run.run_id) == run
    with pytest.raises(StateExpired):
        logout.load(b"o" * 32, run.run_id)


def test_answers_are_filed_once_and_the_rest_time_out() -> None:
    store, clock = MemoryStore(), Clock()
    logout, book, _ = _logout(store, clock)
    for service in ("a", "b"):
        book.record(TOKEN, book.read(TOKEN), _participant(service))
    run = _start(logout, Initiator(BY_STUDENT))
    assert run.school_status == NOT_TOLD
    assert book.read(TOKEN).participants == ()  # the record that outlived its session goes too
    logout.expect_answer("_req0", run.run_id, 0, "a")
    logout.expect_answer("_req1", run.run_id, 1, "b")
    assert not logout.answered("_req0", "b", CONFIRMED)  # another sender
    assert logout.answered("_req0", "a", CONFIRMED)
    assert not logout.answered("_req0", "a", FAILED)  # a replayed answer
    run = logout.settle(SECRET, run)
    assert [t.status for t in run.targets] == [CONFIRMED, PENDING]
    assert not logout.services_done(run)
    clock.now += 6
    run = logout.settle(SECRET, run)
    assert [t.status for t in run.targets] == [CONFIRMED, TIMED_OUT]
    assert logout.services_done(run) and run.partial


def test_back_channel_services_are_notified_at_once() -> None:
    store, clock = MemoryStore(), Clock()
    logout, _, channel = _logout(store, clock)
    starts, token = _signed_in(logout, _participant("a", mode=BACK), _participant("b", mode=BACK))
    run = _start(logout, Initiator(BY_SCHOOL, "saml"), token, starts)
    assert run.school_status == INITIATOR and not run.back_done
    run = logout.run_back_channels(SECRET, run)
    assert sorted(channel.notified) == ["a", "b"]
    assert [t.status for t in run.targets] == [CONFIRMED, CONFIRMED]
    assert logout.services_done(run) and not run.partial
    assert logout.run_back_channels(SECRET, run) is run  # once only


def test_without_a_browser_a_front_service_that_takes_soap_is_told_by_back_channel() -> None:
    logout, _, _ = _logout(MemoryStore(), Clock())
    front, soap = _participant("front"), _participant("soap", soap="1")
    back, none = _participant("back", mode=BACK), _participant("none", mode=UNSUPPORTED)
    # With a browser: the front channel, as ever.
    assert [logout.mode(p) for p in (front, soap, back, none)] == [FRONT, FRONT, BACK, UNSUPPORTED]
    # Without one: the SOAP endpoint carries it; a service without one stays FRONT (not told).
    modes = [logout.mode(p, browser=False) for p in (front, soap, back, none)]
    assert modes == [FRONT, BACK, BACK, UNSUPPORTED]
    assert logout.mode(Participant("x", "unknown-protocol"), browser=False) == UNSUPPORTED


def test_back_channel_services_are_told_once_when_the_run_page_is_loaded_twice_at_once() -> None:
    """A second load of the run's page (a second press sent on to the run, a reload) while
    the first still waits for the back channel: nobody is told twice, and the first's answers
    are what the run keeps."""
    store, clock = MemoryStore(), Clock()
    logout, _, channel = _logout(store, clock)
    starts, token = _signed_in(logout, _participant("a", mode=BACK))
    run = _start(logout, Initiator(BY_STUDENT), token, starts)
    seen_meanwhile: list[LogoutRun] = []

    class Slow(Channel):
        def back_channel(self, participant: Participant, timeout: float) -> str:
            # The second load comes while this one is still waiting for the platform.
            seen_meanwhile.append(logout.run_back_channels(SECRET, logout.load(SECRET, run.run_id)))
            return super().back_channel(participant, timeout)

    slow = Slow()
    logout.register("saml", slow)
    told = logout.run_back_channels(SECRET, run)
    assert slow.notified == ["a"] and channel.notified == []
    assert [t.status for t in seen_meanwhile[0].targets] == [PENDING]
    assert [t.status for t in told.targets] == [CONFIRMED]
    assert logout.load(SECRET, run.run_id).targets[0].status == CONFIRMED


def test_back_channel_services_are_told_on_the_next_load_when_the_first_could_not_keep_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, clock = MemoryStore(), Clock()
    logout, book, channel = _logout(store, clock)
    book.record(TOKEN, book.read(TOKEN), _participant("a", mode=BACK))
    run = _start(logout, Initiator(BY_STUDENT))

    def save_fails(browser_secret: bytes, run: LogoutRun) -> None:
        raise OSError("store gone")

    with monkeypatch.context() as patched:
        patched.setattr(logout, "save", save_fails)
        with pytest.raises(OSError):
            logout.run_back_channels(SECRET, run)
    assert logout.run_back_channels(SECRET, run).back_done
    assert channel.notified == ["a", "a"]


class BrokenChannel(Channel):
    def back_channel(self, participant: Participant, timeout: float) -> str:
        if participant.service_id == "broken":
            raise OSError("the platform's network fell over")
        return super().back_channel(participant, timeout)


def test_a_channel_that_raises_fails_its_service_only() -> None:
    store, clock = MemoryStore(), Clock()
    book = SessionServiceBook(store, session_ttl=3600)
    logout = SingleLogout(store, book, run_ttl=600, wait_seconds=5, clock=clock)
    channel = BrokenChannel()
    logout.register("saml", channel)
    participants = (_participant("broken", mode=BACK), _participant("fine", mode=BACK))
    starts, token = _signed_in(logout, *participants)
    run = _start(logout, Initiator(BY_STUDENT), token, starts)
    run = logout.run_back_channels(SECRET, run)
    statuses = {t.participant.service_id: t.status for t in run.targets}
    assert statuses == {"broken": FAILED, "fine": CONFIRMED}


def test_a_service_logging_out_of_another_session_is_told_of_this_one() -> None:
    """An OIDC id_token_hint naming an older session: the student confirmed ending the current
    one, in which the platform also took part, so the platform hears of it too."""
    store, clock = MemoryStore(), Clock()
    logout, _, _ = _logout(store, clock)
    starts, token = _signed_in(logout, _participant("a"), _participant("b"))
    initiator = Initiator(BY_SERVICE, "saml", "a", own_session=False)
    run = _start(logout, initiator, token, starts)
    assert [t.participant.service_id for t in run.targets] == ["a", "b"]


class SigningChannel(Channel):
    """Each answer is a new message, as a signed LogoutResponse with a fresh id would be."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    def answer_initiator(self, run: LogoutRun) -> Outbound | None:
        self.made += 1
        return Outbound("https://sp.example/back", {"SAMLResponse": f"message-{self.made}"})


def test_the_initiator_is_answered_once_and_a_reload_shows_that_answer() -> None:
    store, clock = MemoryStore(), Clock()
    logout, book, _ = _logout(store, clock)
    channel = SigningChannel()
    logout.register("saml", channel)
    book.record(TOKEN, book.read(TOKEN), _participant("a"))
    run = _start(logout, Initiator(BY_SERVICE, "saml", "a"))
    first, made = logout.final_answer(SECRET, logout.load(SECRET, run.run_id))
    assert made and first.answer == Outbound(
        "https://sp.example/back", {"SAMLResponse": "message-1"}
    )
    # A reload loads the run again: the kept answer, nothing new made, not counted again.
    again, made = logout.final_answer(SECRET, logout.load(SECRET, run.run_id))
    assert not made and again.answer == first.answer
    # A second request that raced the first (its run loaded before the answer was kept) makes
    # none either: it takes what the first one kept.
    raced, made = logout.final_answer(SECRET, run)
    assert not made and raced.answer == first.answer
    assert channel.made == 1


def test_an_answer_that_could_not_be_made_is_made_on_the_next_load() -> None:
    store, clock = MemoryStore(), Clock()
    logout, _, _ = _logout(store, clock)

    class Failing(Channel):
        def answer_initiator(self, run: LogoutRun) -> Outbound | None:
            raise RuntimeError("signer unavailable")

    logout.register("saml", Failing())
    run = _start(logout, Initiator(BY_SERVICE, "saml", "a"))
    with pytest.raises(RuntimeError):
        logout.final_answer(SECRET, run)
    logout.register("saml", Channel())
    answered, made = logout.final_answer(SECRET, logout.load(SECRET, run.run_id))
    assert made and answered.answer is not None


def _run(targets: tuple[str, ...], school_id: str, school_status: str) -> LogoutRun:
    return LogoutRun(
        run_id="r",
        created=0.0,
        deadline=5.0,
        initiator=Initiator(BY_SERVICE, "saml", "first"),
        targets=tuple(
            Target(_participant(f"s{i}"), FRONT, status) for i, status in enumerate(targets)
        ),
        school_id=school_id,
        school_status=school_status,
        school_protocol="saml",
        upstream={},
    )


@pytest.mark.parametrize(
    ("targets", "school_id", "school_status", "everywhere", "partial"),
    [
        ((CONFIRMED, CONFIRMED), "school", CONFIRMED, True, False),
        ((), "school", CONFIRMED, True, False),
        ((CONFIRMED,), "school", INITIATOR, True, False),
        # No session stood: there was no school to tell, and nothing to warn about.
        ((), "", NOT_TOLD, True, False),
        ((CONFIRMED, TIMED_OUT), "school", CONFIRMED, False, True),
        ((FAILED,), "school", CONFIRMED, False, True),
        ((UNSUPPORTED,), "school", CONFIRMED, False, True),
        ((CONFIRMED,), "school", TIMED_OUT, False, True),
        # A school that could not be told is no PartialLogout, but the student must read it.
        ((CONFIRMED,), "school", NOT_TOLD, False, False),
        # Not settled yet (a final page asked for too early): never "everywhere".
        ((PENDING,), "school", CONFIRMED, False, True),
        ((CONFIRMED,), "school", PENDING, False, False),
    ],
)
def test_confirmed_everywhere_only_when_nothing_is_left_to_tell_the_student(
    targets: tuple[str, ...], school_id: str, school_status: str, everywhere: bool, partial: bool
) -> None:
    run = _run(targets, school_id, school_status)
    assert run.confirmed_everywhere is everywhere
    assert run.partial is partial


def test_a_schools_partial_logout_is_kept_beside_failed_and_shown_as_partial() -> None:
    """SAML core 3.7.3.2: a school that answers PartialLogout did not confirm (the initiator
    hears PartialLogout, the page warns), and the page words it apart. Kept beside FAILED, so a
    worker from before reads the school's plain "did not confirm"; written only when set."""
    run = replace(_run((CONFIRMED,), "school", FAILED), school_partial=True)
    assert run.school_outcome == SCHOOL_PARTIAL
    assert run.partial and not run.confirmed_everywhere
    payload = run.to_payload()
    assert payload["school_status"] == FAILED and payload["school_partial"] is True
    assert LogoutRun.from_payload(payload) == run
    assert "school_partial" not in _run((CONFIRMED,), "school", FAILED).to_payload()
    assert _run((CONFIRMED,), "school", FAILED).school_outcome == FAILED
    assert status_summary(run, {})["school"] == SCHOOL_PARTIAL


# -- the same request again (login/logout_marks.py) ----------------------------------------------
def _started_from_a_session(store: MemoryStore, initiator: Initiator) -> LogoutRun:
    """A run started from a standing session, as the web routes start one."""
    logout, _, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))
    return _start(logout, initiator, token, starts)


def test_the_run_is_filed_in_the_batch_that_ends_the_session_before_it_ends() -> None:
    """The session and its services read together, then one batch: the run and the mark
    first, so a request that finds the session gone finds them too (a batch keeps its order
    but is not atomic)."""
    store = RecordingStore()
    logout, book, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))
    store.batches.clear()
    run = _start(logout, Initiator(BY_STUDENT), token, starts)
    assert store.batches == [["get", "get"], ["put", "put", "delete", "delete"]]
    assert [key.split(":")[0] for key, _, _ in store.written[-4:]] == [
        "logout",
        "logout-last",
        "sso",
        "sso-services",
    ]
    assert logout.load(SECRET, run.run_id) == run
    assert [t.participant.service_id for t in run.targets] == ["a"]
    assert starts.flow.session(token) is None and book.read(token).participants == ()


def _no_run_can_be_made(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[LogoutStart, str, SessionServiceBook]:
    """A standing session whose run cannot be made (the registry failing)."""
    logout, book, _ = _logout(MemoryStore(), Clock())
    starts, token = _signed_in(logout, _participant("a"))

    def failing(*args: object) -> None:
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr(logout, "compose", failing)
    return starts, token, book


def test_a_run_that_cannot_be_made_still_ends_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    starts, token, book = _no_run_can_be_made(monkeypatch)
    with pytest.raises(RuntimeError):
        starts.start(SECRET, Initiator(BY_STUDENT), token)
    assert starts.flow.session(token) is None and book.read(token).participants == ()


def test_no_session_and_the_same_request_again_goes_on_to_its_run() -> None:
    store = MemoryStore()
    logout, _, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))
    first = starts.start(SECRET, Initiator(BY_STUDENT), token)
    again = starts.start(SECRET, Initiator(BY_STUDENT), token)
    assert again == Started(first.run_id)
    # Without the SSO cookie (the first answer cleared it) the same.
    assert starts.start(SECRET, Initiator(BY_STUDENT), None) == again
    # Another browser's request finds no mark of its own: a run of its own, with nobody to tell.
    other = starts.start(b"o" * 32, Initiator(BY_STUDENT), token)
    assert other.run is not None and other.run_id != first.run_id and other.run.targets == ()


@pytest.mark.parametrize(
    "initiator",
    [
        Initiator(BY_STUDENT),
        Initiator(
            BY_SERVICE, "oidc", "p", {"post_logout_redirect_uri": "https://p/", "state": "1"}
        ),
        Initiator(BY_SCHOOL, "saml", "", {"request_id": "_r1", "relay_state": ""}),
    ],
)
def test_the_same_request_again_finds_the_run_it_started(initiator: Initiator) -> None:
    store = MemoryStore()
    run = _started_from_a_session(store, initiator)
    starts = _starts(_logout(store, Clock())[0])
    assert starts.started_before(SECRET, initiator) == run.run_id
    # Whether the request was for its own session cannot be told once the session is gone.
    again = Initiator(
        initiator.kind,
        initiator.protocol,
        initiator.service_id,
        dict(initiator.answer),
        own_session=not initiator.own_session,
    )
    assert starts.started_before(SECRET, again) == run.run_id


@pytest.mark.parametrize(
    "other",
    [
        Initiator(BY_STUDENT, "oidc"),
        Initiator(
            BY_SERVICE, "oidc", "p", {"post_logout_redirect_uri": "https://p/", "state": "2"}
        ),
        Initiator(
            BY_SERVICE, "oidc", "q", {"post_logout_redirect_uri": "https://p/", "state": "1"}
        ),
        Initiator(
            BY_SERVICE, "saml", "p", {"post_logout_redirect_uri": "https://p/", "state": "1"}
        ),
    ],
)
def test_another_request_finds_nothing(other: Initiator) -> None:
    store = MemoryStore()
    asked = Initiator(
        BY_SERVICE, "oidc", "p", {"post_logout_redirect_uri": "https://p/", "state": "1"}
    )
    _started_from_a_session(store, asked)
    starts = _starts(_logout(store, Clock())[0])
    assert starts.started_before(SECRET, other) is None


def test_the_mark_is_this_browsers_lives_as_long_as_the_run_and_holds_nothing_readable() -> None:
    store = RecordingStore()
    run = _started_from_a_session(store, Initiator(BY_STUDENT))
    starts = _starts(_logout(store, Clock())[0])
    assert starts.started_before(b"o" * 32, Initiator(BY_STUDENT)) is None
    filed = [(key, value, ttl) for key, value, ttl in store.written if key.startswith("logout")]
    assert [(key.split(":")[0], ttl) for key, _, ttl in filed] == [
        ("logout", 600),
        ("logout-last", 600),
    ]
    key, value, _ = filed[1]
    # Filed under a hash of a value derived from the browser's secret; the run id sealed.
    assert re.fullmatch(r"logout-last:[0-9a-f]{64}", key)
    assert run.run_id.encode() not in value


# -- two requests at once (login/logout_start.py) ------------------------------------------------
def test_two_requests_that_both_read_the_session_make_one_run() -> None:
    """Both read the standing session before either ended it: the second loses the claim on
    the session and lands on the first one's run, which it finds by the mark."""
    store = MemoryStore()
    logout, book, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"), _participant("b"))
    read = session_and_services(starts.flow, book, token)
    first = starts.start(SECRET, Initiator(BY_STUDENT), token, read)
    second = starts.start(SECRET, Initiator(BY_STUDENT), token, read)
    assert first.run is not None and second == Started(first.run_id)
    assert starts.started_before(SECRET, Initiator(BY_STUDENT)) == first.run_id


def test_the_loser_asking_something_else_finds_the_session_gone() -> None:
    """As if it had come a moment later: a run of its own, with nobody left to tell, and the
    first run stays this browser's last."""
    store = MemoryStore()
    logout, book, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))
    read = session_and_services(starts.flow, book, token)
    first = starts.start(SECRET, Initiator(BY_STUDENT), token, read)
    platform = Initiator(BY_SERVICE, "saml", "a", {"request_id": "_r1"})
    second = starts.start(SECRET, platform, token, read)
    assert second.run is not None and second.run_id != first.run_id
    assert second.run.targets == () and second.run.school_status == NOT_TOLD
    assert starts.started_before(SECRET, Initiator(BY_STUDENT)) == first.run_id


class FakeTime:
    """A clock that moves only when slept on, keeping every pause."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _claimed(store: KeyValueStore, token: str, run_id: str = "never-filed") -> str:
    """A claim on `token`'s session by another request of this browser, for `run_id`."""
    key = store_key(CLAIM, token)
    store.put(key, seal(SECRET, CLAIM, token, {"run": run_id}, key), 60)
    return key


def test_a_claim_whose_run_never_came_delays_the_next_request_only_boundedly() -> None:
    """A winner that died between its claim and its batch, its claim left: the other request
    waits at most `claim_wait` for a mark that does not come, looking after 10 ms, then twice
    as long each time, then ends the session and starts its run."""
    store = MemoryStore()
    logout, book, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))
    fake = FakeTime()
    starts = LogoutStart(logout, starts.flow, sleep=fake.sleep, clock=fake.clock)
    _claimed(store, token)
    started = starts.start(SECRET, Initiator(BY_STUDENT), token)
    assert started.run is not None and [t.participant.service_id for t in started.run.targets] == [
        "a"
    ]
    assert fake.waits[:7] == pytest.approx([CLAIM_POLL_SECONDS * 2**n for n in range(7)])
    assert len(fake.waits) == 8 and sum(fake.waits) == pytest.approx(CLAIM_WAIT_SECONDS)
    assert starts.flow.session(token) is None and book.read(token).participants == ()


def test_the_loser_stops_waiting_when_the_winners_claim_goes() -> None:
    """The winner's batch failed and it removed its claim: the other request sees the claim
    gone at its next look and starts its run, without waiting out `claim_wait`."""
    store = MemoryStore()
    logout, _, _ = _logout(store, Clock())
    signed_in, token = _signed_in(logout, _participant("a"))
    key = _claimed(store, token)
    fake = FakeTime()

    def winner_fails(seconds: float) -> None:
        fake.sleep(seconds)
        store.delete(key)

    starts = LogoutStart(logout, signed_in.flow, sleep=winner_fails, clock=fake.clock)
    started = starts.start(SECRET, Initiator(BY_STUDENT), token)
    assert fake.waits == [CLAIM_POLL_SECONDS]
    assert started.run is not None and len(started.run.targets) == 1 and not started.second


class DeleteFails(MemoryStore):
    def delete(self, key: str) -> None:
        raise StoreUnavailable("redis delete failed: ConnectionError")


def test_a_claim_that_cannot_be_removed_does_not_hide_why_the_batch_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = DeleteFails()
    logout, _, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))

    def store_gone(*args: Any, **kwargs: Any) -> None:
        raise OSError("batch failed")

    monkeypatch.setattr(starts.flow, "end_session", store_gone)
    with pytest.raises(OSError, match="batch failed"):
        starts.start(SECRET, Initiator(BY_STUDENT), token)
    # The claim stays until its TTL: a next try waits for it boundedly, as for a dead winner.
    assert store.get(store_key(CLAIM, token)) is not None


class ReplayCache:
    """The replay check of one message: taken once, a second use refused."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self) -> None:
        self.asked += 1
        if self.asked > 1:
            raise InvalidMessage("assertion seen before", code="replay")


SAML_SERVICE = Initiator(BY_SERVICE, "saml", "a", {"request_id": "_r1", "relay_state": ""})


def test_the_same_saml_request_twice_at_once_lands_on_one_run_checked_once() -> None:
    """Both copies read the standing session: the claim's winner takes the message (its
    replay check), the loser is sent on to the winner's run without a check of its own, where
    checked before the claim it would have been refused as a replay."""
    store = MemoryStore()
    logout, book, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"), _participant("b"))
    read = session_and_services(starts.flow, book, token)
    first_use = ReplayCache()
    first = starts.start(SECRET, SAML_SERVICE, token, read, first_use)
    second = starts.start(SECRET, SAML_SERVICE, token, read, first_use)
    assert first.run is not None and second == Started(first.run_id)
    assert first_use.asked == 1


def test_a_replayed_saml_request_is_refused_at_once_and_ends_nothing() -> None:
    """No claim of this browser's stands: the copy wins the claim, is refused without waiting,
    removes its claim and leaves the session standing (a copy after a new login)."""
    store = MemoryStore()
    logout, book, _ = _logout(store, Clock())
    signed_in, token = _signed_in(logout, _participant("a"))
    starts = LogoutStart(logout, signed_in.flow, sleep=lambda s: pytest.fail("waited"))
    first_use = ReplayCache()
    first_use()  # the request was taken before, in the run of an earlier session
    with pytest.raises(InvalidMessage, match="seen before"):
        starts.start(SECRET, SAML_SERVICE, token, None, first_use)
    assert starts.flow.session(token) is not None and len(book.read(token).participants) == 1
    assert store.get(store_key(CLAIM, token)) is None
    assert starts.start(SECRET, Initiator(BY_STUDENT), token).run is not None


def test_a_replayed_saml_request_with_another_browsers_claim_is_refused_without_waiting() -> None:
    store = MemoryStore()
    logout, _, _ = _logout(store, Clock())
    signed_in, token = _signed_in(logout, _participant("a"))
    key = store_key(CLAIM, token)
    store.put(key, seal(b"o" * 32, CLAIM, token, {"run": "elsewhere"}, key), 60)
    starts = LogoutStart(logout, signed_in.flow, sleep=lambda s: pytest.fail("waited"))
    first_use = ReplayCache()
    first_use()
    with pytest.raises(InvalidMessage, match="seen before"):
        starts.start(SECRET, SAML_SERVICE, token, None, first_use)
    assert starts.flow.session(token) is not None
    assert store.get(key) is not None  # not this request's claim: left to its holder


def test_a_replayed_saml_request_whose_run_cannot_be_made_ends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts, token, _ = _no_run_can_be_made(monkeypatch)
    first_use = ReplayCache()
    first_use()
    with pytest.raises(InvalidMessage):
        starts.start(SECRET, SAML_SERVICE, token, None, first_use)
    assert starts.flow.session(token) is not None


def test_a_loser_that_asked_something_else_is_checked_and_counted_apart() -> None:
    """As in `test_the_loser_asking_something_else_finds_the_session_gone`, for a SAML
    request: it is acted on, so it takes its message (the replay check); its run is the
    second one of the same logout (`Started.second`: the metrics count it apart)."""
    store = MemoryStore()
    logout, book, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))
    read = session_and_services(starts.flow, book, token)
    first_use = ReplayCache()
    first = starts.start(SECRET, Initiator(BY_STUDENT), token, read)
    second = starts.start(SECRET, SAML_SERVICE, token, read, first_use)
    assert second.run is not None and second.run_id != first.run_id and second.second
    assert second.run.targets == () and first_use.asked == 1 and not first.second


def test_a_batch_that_failed_leaves_no_claim_to_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    logout, _, _ = _logout(store, Clock())
    signed_in, token = _signed_in(logout, _participant("a"))

    def no_waiting(seconds: float) -> None:
        raise AssertionError("waited for a claim nobody holds")

    starts = LogoutStart(logout, signed_in.flow, sleep=no_waiting)
    end_session = starts.flow.end_session

    def store_gone(*args: Any, **kwargs: Any) -> None:
        raise OSError("store gone")

    monkeypatch.setattr(starts.flow, "end_session", store_gone)
    with pytest.raises(OSError):
        starts.start(SECRET, Initiator(BY_STUDENT), token)
    monkeypatch.setattr(starts.flow, "end_session", end_session)
    assert store.get(store_key(CLAIM, token)) is None
    started = starts.start(SECRET, Initiator(BY_STUDENT), token)
    assert started.run is not None and len(started.run.targets) == 1


def test_the_claim_holds_nothing_readable_and_opens_only_in_this_browser() -> None:
    store = RecordingStore()
    logout, book, _ = _logout(store, Clock())
    starts, token = _signed_in(logout, _participant("a"))
    read = session_and_services(starts.flow, book, token)
    first = starts.start(SECRET, Initiator(BY_STUDENT), token, read)
    blob = store.get(store_key(CLAIM, token))
    assert blob is not None and first.run_id.encode() not in blob and token.encode() not in blob
    # The same session's token in another browser (a copied cookie) cannot read it: that
    # request starts its own run as before the claim, without waiting.
    other = LogoutStart(logout, starts.flow, sleep=lambda s: pytest.fail("waited"))
    assert other.start(b"o" * 32, Initiator(BY_STUDENT), token, read).run is not None


def _oidc(service_id: str, families: str | None) -> Participant:
    handles = {"sub": "s", "sid": "_sid", "client_id": service_id}
    if families is not None:
        handles[FAMILIES] = families
    return Participant(service_id, "oidc", handles, "fp")


def test_each_login_to_a_service_adds_its_token_family_and_keeps_the_earlier_ones() -> None:
    services = SessionServices().with_login(_oidc("rp", "f1"))
    services = services.with_login(_oidc("rp", "f2")).with_login(_oidc("other", "g1"))
    entry = services.get("rp")
    assert entry is not None and entry.handles[FAMILIES] == "f2 f1"
    for number in range(3, MAX_FAMILIES + 5):
        services = services.with_login(_oidc("rp", f"f{number}"))
    entry = services.get("rp")
    assert entry is not None
    kept = entry.handles[FAMILIES].split()
    assert kept == [f"f{n}" for n in range(MAX_FAMILIES + 4, 4, -1)]
    # An older worker's login (no families) keeps none of its own; the next login starts
    # the list again (COMPAT(oidc-logout-families)).
    services = services.with_login(_oidc("rp", None))
    entry = services.get("rp")
    assert entry is not None and FAMILIES not in entry.handles


def test_every_ending_of_a_session_sends_its_services_endings_in_that_batch() -> None:
    """The logout run's start and a school's cookieless logout both send what each service's
    protocol ends with the session (OIDC: revocation marks) in the batch that ends it."""
    ended: list[str] = []

    def ending(participant: Participant) -> list[StoreOp]:
        ended.append(participant.service_id)
        families = participant.handles.get(FAMILIES, "").split()
        return [StoreOp.put(f"revoked:{f}", b"1", 60) for f in families]

    store = RecordingStore()
    logout, _, _ = _logout(store, Clock())
    logout.register("oidc", Channel(), ending=ending)
    starts, token = _signed_in(logout, _participant("a"), _oidc("rp", "f1"), _oidc("rp", "f2"))
    store.batches.clear()
    _start(logout, Initiator(BY_STUDENT), token, starts)
    assert store.batches[-1] == ["put", "put", "delete", "delete", "put", "put"]
    assert [key for key, _, _ in store.written[-2:]] == ["revoked:f2", "revoked:f1"]
    assert ended == ["rp"]  # the SAML service ("a") has no ending registered

    # Without the cookie (a school's back channel): the same writes in its one batch.
    ended.clear()
    index = SchoolSessionIndex(store, b"k" * 32, session_ttl=3600)
    starts, token = _signed_in(logout, _oidc("rp", "f3"))
    upstream = {"sid": "school-sid", BACK_CHANNEL: "1"}
    filed = UpstreamIdentity("99XX00", "sub", {}, None, upstream_session=upstream)
    index.note(filed, token)
    school = SchoolBackChannelLogout(starts.flow, index, logout, wait_seconds=1)
    store.batches.clear()
    assert school.end("99XX00", "school-sid").ended
    assert ["delete", "delete", "put"] in store.batches
    assert store.get("revoked:f3") == b"1" and ended == ["rp"]


def test_a_session_replaced_by_the_same_student_keeps_its_service_sessions() -> None:
    """A fresh login in a browser whose session stands (login_finish.py): the replaced
    session's record of services goes either way; its services' sessions end (OIDC: token
    families revoked) only when another student signed in."""
    ended: list[str] = []

    def ending(participant: Participant) -> list[StoreOp]:
        ended.append(participant.service_id)
        return [StoreOp.put(f"revoked:{participant.handles[FAMILIES]}", b"1", 60)]

    logout, _, _ = _logout(MemoryStore(), Clock())
    logout.register("oidc", Channel(), ending=ending)
    services = SessionServices().with_login(_oidc("rp", "f1"))
    forget = logout.services.forget_op(TOKEN)

    same = logout.replaced(TOKEN, services, same_student=True)
    assert [(op.operation, op.key) for op in same] == [(forget.operation, forget.key)]
    assert ended == []

    other = logout.replaced(TOKEN, services, same_student=False)
    assert other == logout.ending(TOKEN, services)
    assert [(op.operation, op.key) for op in other] == [
        (forget.operation, forget.key),
        ("put", "revoked:f1"),
    ]
    assert ended == ["rp", "rp"]
