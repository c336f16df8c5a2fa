"""A front-channel service that can also be told server to server (a SAML service with a SOAP
SingleLogoutService as well as a Redirect/POST one) in a logout with a browser: told both ways,
confirmed when the server call confirmed, else as its iframe answered (login/logout.py,
logout_run.py); and run records of the workers before this, read and completed (a rolling
upgrade)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.core.errors import StoreUnavailable
from broker.login.logout import (
    ANSWER,
    BACK,
    BY_SERVICE,
    BY_STUDENT,
    CONFIRMED,
    FAILED,
    FRONT,
    PENDING,
    TIMED_OUT,
    UNSUPPORTED,
    Initiator,
    LogoutRun,
    SingleLogout,
    status_summary,
)
from broker.login.logout_run import (
    COUNTED,
    FINAL,
    FRONT_AND_BACK,
    UNFINISHED,
    confirmed_by_back_only,
    counted_status,
    counts_by_status,
    service_counts,
)
from broker.login.participants import Participant
from broker.login.sealed import store_key
from broker.store import MemoryStore
from tests.unit.test_logout_core import (
    SECRET,
    Channel,
    Clock,
    _logout,
    _participant,
    _signed_in,
    _start,
)


class ScriptedChannel(Channel):
    """Answers each server call as the participant's `result` handle says (default confirmed);
    `took` seconds pass on the clock while it does."""

    def __init__(self, clock: Clock, took: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.took = took

    def back_channel(self, participant: Participant, timeout: float) -> str:
        self.notified.append(participant.service_id)
        self.clock.now += self.took
        return participant.handles.get("result", CONFIRMED)


def _both(service_id: str, **handles: Any) -> Participant:
    return _participant(service_id, soap="1", **handles)


def _told(
    *participants: Participant, took: float = 0.0, initiator: Initiator | None = None
) -> tuple[SingleLogout, Clock, ScriptedChannel, LogoutRun]:
    """A run of a session with `participants`, its back channel done (as the first load of
    the propagation page does)."""
    clock = Clock()
    logout, _, _ = _logout(MemoryStore(), clock)
    channel = ScriptedChannel(clock, took)
    logout.register("saml", channel)
    starts, token = _signed_in(logout, *participants)
    run = _start(logout, initiator or Initiator(BY_STUDENT), token, starts)
    return logout, clock, channel, logout.run_back_channels(SECRET, run)


def _iframe_answers(logout: SingleLogout, run: LogoutRun, index: int, status: str) -> LogoutRun:
    logout.expect_answer(
        f"_req{index}", run.run_id, index, run.targets[index].participant.service_id
    )
    assert logout.answered(f"_req{index}", run.targets[index].participant.service_id, status)
    return logout.settle(SECRET, run)


def test_a_service_with_both_endpoints_is_told_over_soap_before_the_page_and_keeps_its_iframe() -> (
    None
):
    logout, clock, channel, run = _told(_both("both"), _participant("front"))
    assert channel.notified == ["both"]  # the front-only one is not called
    both, front = run.targets
    assert (both.mode, both.status, both.back, both.outcome) == (
        FRONT,
        PENDING,
        CONFIRMED,
        CONFIRMED,
    )
    assert (front.mode, front.status, front.back, front.outcome) == (FRONT, PENDING, "", PENDING)
    # Its iframe still goes out: the page waits for it as for any other.
    assert logout.front_message(run, 0).url.startswith("https://sp.example/slo")
    assert not run.services_done
    assert [s["status"] for s in status_summary(run, {})["services"]] == [CONFIRMED, PENDING]
    # The iframe never answers (a blocked third party): at the deadline it counts as timed
    # out, and the service stays confirmed; the run is complete once the other one confirmed.
    run = _iframe_answers(logout, run, 1, CONFIRMED)
    clock.now = run.deadline
    run = logout.settle(SECRET, run)
    assert [t.status for t in run.targets] == [TIMED_OUT, CONFIRMED]
    assert [t.outcome for t in run.targets] == [CONFIRMED, CONFIRMED]
    assert run.services_done and not run.partial
    assert logout.load(SECRET, run.run_id) == run


def test_once_soap_confirmed_a_failed_iframe_changes_nothing() -> None:
    logout, _, _, run = _told(_both("both"))
    run = _iframe_answers(logout, run, 0, FAILED)
    assert (run.targets[0].status, run.targets[0].outcome) == (FAILED, CONFIRMED)
    assert run.services_done and not run.partial
    assert confirmed_by_back_only(run) == 1


def test_when_soap_does_not_confirm_the_iframe_decides() -> None:
    for soap, iframe, outcome in [
        (FAILED, CONFIRMED, CONFIRMED),
        (TIMED_OUT, CONFIRMED, CONFIRMED),
        (FAILED, FAILED, FAILED),
    ]:
        logout, _, _, run = _told(_both("both", result=soap))
        assert run.targets[0].back == soap
        run = _iframe_answers(logout, run, 0, iframe)
        assert run.targets[0].outcome == outcome, (soap, iframe)
        assert run.partial is (outcome != CONFIRMED)
        assert confirmed_by_back_only(run) == 0


def test_soap_failed_and_no_iframe_answer_times_out() -> None:
    logout, clock, _, run = _told(_both("both", result=FAILED))
    clock.now = run.deadline
    run = logout.settle(SECRET, run)
    assert (run.targets[0].back, run.targets[0].outcome) == (FAILED, TIMED_OUT)
    assert run.partial


def test_a_server_call_that_took_the_whole_wait_leaves_the_iframes_theirs() -> None:
    """A SOAP endpoint that does not answer uses the back channel's time; the iframes, shown
    after it, get the whole wait from then on (else the iframe could never decide)."""
    logout, clock, _, run = _told(_both("both", result=TIMED_OUT), took=5.0)
    assert run.deadline == clock.now + logout.wait_seconds
    assert logout.settle(SECRET, run).targets[0].status == PENDING
    run = _iframe_answers(logout, run, 0, CONFIRMED)
    assert run.targets[0].outcome == CONFIRMED


def test_a_back_channel_run_again_after_a_failure_gives_the_iframes_a_full_wait_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first load's back channel fails to save (the store): nothing kept, the next load
    runs it again. Late in the first wait, that one gives its iframes a full wait from its own
    end: past twice the wait + 0.5 s of the first load, still under twice the wait + 1 s of the
    run's start (`_front_deadline`)."""
    clock = Clock()
    logout, _, _ = _logout(MemoryStore(), clock)
    channel = ScriptedChannel(clock)
    logout.register("saml", channel)
    starts, token = _signed_in(logout, _both("both", result=TIMED_OUT))
    run = _start(logout, Initiator(BY_STUDENT), token, starts)
    created, first_deadline = run.created, run.deadline
    with monkeypatch.context() as patch:

        def down(secret: bytes, run: LogoutRun) -> None:
            raise StoreUnavailable("redis: ConnectionError")

        patch.setattr(logout, "save", down)
        with pytest.raises(StoreUnavailable):
            logout.run_back_channels(SECRET, run)
    clock.now = first_deadline - 0.2
    # Its server call takes all it may: the half second's minimum, and the grace.
    channel.took = 1.0
    run = logout.run_back_channels(SECRET, logout.settle(SECRET, run))
    assert channel.notified == ["both", "both"]
    assert run.deadline == clock.now + logout.wait_seconds
    assert created + 2 * logout.wait_seconds + 0.5 < run.deadline
    assert run.deadline < created + 2 * logout.wait_seconds + 1


def test_a_back_channel_run_again_after_the_first_wait_moves_no_deadline() -> None:
    """A load after the run's first wait finds its iframes timed out (`settle`) before it runs
    the back channel again: nothing is still pending, the deadline stays."""
    clock = Clock()
    logout, _, _ = _logout(MemoryStore(), clock)
    logout.register("saml", ScriptedChannel(clock, took=1.0))
    starts, token = _signed_in(logout, _both("both"))
    run = _start(logout, Initiator(BY_STUDENT), token, starts)
    clock.now = run.deadline + 30
    again = logout.run_back_channels(SECRET, logout.settle(SECRET, run))
    assert again.deadline == run.deadline
    assert (again.targets[0].status, again.targets[0].outcome) == (TIMED_OUT, CONFIRMED)


def test_a_run_without_iframes_keeps_its_deadline() -> None:
    clock = Clock()
    logout, _, _ = _logout(MemoryStore(), clock)
    logout.register("saml", ScriptedChannel(clock, took=2.0))
    starts, token = _signed_in(logout, _participant("back", mode=BACK))
    run = _start(logout, Initiator(BY_STUDENT), token, starts)
    assert logout.run_back_channels(SECRET, run).deadline == run.deadline


def test_the_initiator_is_left_out_and_the_others_are_told_both_ways() -> None:
    _, _, channel, run = _told(
        _both("initiator"), _both("other"), initiator=Initiator(BY_SERVICE, "saml", "initiator")
    )
    assert channel.notified == ["other"]
    assert [(t.participant.service_id, t.back) for t in run.targets] == [("other", CONFIRMED)]


def test_the_counts_say_which_way_each_service_was_told() -> None:
    logout, clock, _, run = _told(
        _both("both"),
        _both("both-failed", result=FAILED),
        _participant("front"),
        _participant("back", mode=BACK),
        _participant("none", mode=UNSUPPORTED),
    )
    clock.now = run.deadline
    run = logout.settle(SECRET, run)
    assert service_counts(run) == {
        (FRONT_AND_BACK, CONFIRMED): 1,
        (FRONT_AND_BACK, TIMED_OUT): 1,
        (FRONT, TIMED_OUT): 1,
        (BACK, CONFIRMED): 1,
        (UNSUPPORTED, UNSUPPORTED): 1,
    }


def test_a_service_without_a_final_status_is_counted_unfinished() -> None:
    """The final page opened before an iframe answered: its service is still PENDING, and is
    counted UNFINISHED (one bucket for whatever is not final), never by a status of its own."""
    _, _, _, run = _told(_both("both"), _participant("front"))
    assert [t.outcome for t in run.targets] == [CONFIRMED, PENDING]
    assert service_counts(run) == {(FRONT_AND_BACK, CONFIRMED): 1, (FRONT, UNFINISHED): 1}
    assert {status for _, status in service_counts(run)} <= set(COUNTED)
    assert [counted_status(s) for s in (*FINAL, PENDING, "anything")] == [*FINAL, *[UNFINISHED] * 2]


def test_the_end_counts_every_status_in_its_order_and_cannot_miss_one() -> None:
    """The done page's log line (logout_routes.py `_count_ended`): every final status and
    UNFINISHED, in that order, zeros included; a status no list names (a FINAL one added
    without thought for the count) is counted after them, never a KeyError (a 500)."""
    assert COUNTED == (CONFIRMED, FAILED, TIMED_OUT, UNSUPPORTED, UNFINISHED)
    counts = {(FRONT, CONFIRMED): 2, (BACK, CONFIRMED): 1, (FRONT, UNFINISHED): 1}
    assert list(counts_by_status(counts).items()) == [
        (CONFIRMED, 3), (FAILED, 0), (TIMED_OUT, 0), (UNSUPPORTED, 0), (UNFINISHED, 1),
    ]  # fmt: skip
    assert counts_by_status({(BACK, "withdrawn"): 2, (FRONT, FAILED): 1}) == {
        **dict.fromkeys(COUNTED, 0), FAILED: 1, "withdrawn": 2,
    }  # fmt: skip


# -- run records of the workers before this (a rolling upgrade) ---------------------------------

# A run record as a worker without `back` wrote it: a front-channel service whose iframe is
# outstanding, a back-channel one already told, the back channel done.
OLD_RECORD = json.loads(
    """{
  "run_id": "old-run", "created": 1000.0, "deadline": 1005.0,
  "initiator": {"kind": "student", "protocol": "", "service_id": "", "answer": {}},
  "targets": [
    {"id": "front", "p": {"p": "saml", "h": {"name_id": "n", "soap": "1"}, "s": "fp"},
     "mode": "front", "status": "pending", "origin": "https://sp.example"},
    {"id": "back", "p": {"p": "saml", "h": {"name_id": "n", "mode": "back"}, "s": "fp"},
     "mode": "back", "status": "confirmed", "origin": ""}
  ],
  "school_id": "", "school_protocol": "", "upstream": {}, "school_status": "not_told",
  "back_done": true, "answered": false, "answer": null
}"""
)
# Every key of a target such a worker reads.
OLD_TARGET_KEYS = {"id", "p", "mode", "status", "origin"}


def test_an_old_workers_run_record_is_completed_by_a_new_one() -> None:
    clock = Clock()
    logout, _, _ = _logout(MemoryStore(), clock)
    channel = ScriptedChannel(clock)
    logout.register("saml", channel)
    run = LogoutRun.from_payload(OLD_RECORD)
    assert [t.back for t in run.targets] == ["", ""]
    logout.save(SECRET, run)
    run = logout.load(SECRET, "old-run")
    # Its back channel ran already: nobody is told over SOAP now, the iframe goes on as it was.
    assert logout.run_back_channels(SECRET, run) is run and channel.notified == []
    assert logout.front_message(run, 0).url
    run = _iframe_answers(logout, run, 0, CONFIRMED)
    assert [t.outcome for t in run.targets] == [CONFIRMED, CONFIRMED]
    answered, made = logout.final_answer(SECRET, run)
    assert made and answered.services_done and not answered.partial
    # Written again as it was read: nothing new in it.
    assert logout.load(SECRET, "old-run").to_payload()["targets"][1] == OLD_RECORD["targets"][1]


def test_a_new_record_keeps_what_old_workers_read_and_stays_small() -> None:
    _, _, _, run = _told(_both("both"), _participant("front"))
    targets = run.to_payload()["targets"]
    # The keys an old worker reads, with their meaning: an old worker sees a front-channel
    # service whose iframe is outstanding, and completes the run as it always did.
    assert all(OLD_TARGET_KEYS <= set(t) for t in targets)
    assert [(t["mode"], t["status"]) for t in targets] == [(FRONT, PENDING), (FRONT, PENDING)]
    assert targets[0]["back"] == CONFIRMED
    assert "back" not in targets[1]  # written only when set


def test_a_record_an_old_worker_saved_again_is_completed_by_a_new_one() -> None:
    """An old worker that loads and saves a new record drops `back` (it does not know it):
    the service then counts as its iframe answered, as before this change; a SOAP
    confirmation is lost, the safe way (docs/operations.md, the upgrade's notes)."""
    logout, clock, channel, run = _told(_both("both"))
    assert run.targets[0].outcome == CONFIRMED
    payload = run.to_payload()
    for target in payload["targets"]:
        target.pop("back", None)
    logout.save(SECRET, LogoutRun.from_payload(payload))
    run = logout.load(SECRET, run.run_id)
    assert run.back_done and run.targets[0].back == ""
    assert logout.run_back_channels(SECRET, run) is run and channel.notified == ["both"]
    clock.now = run.deadline
    settled = logout.settle(SECRET, run)
    assert settled.targets[0].outcome == TIMED_OUT and settled.partial


def test_a_new_record_whose_back_channel_an_old_worker_ran_first() -> None:
    """Filed by a new worker (`back` pending), its first page load served by an old one: that
    one tells its BACK services, marks the back channel done and drops `back`; the new worker
    then has an ordinary front-channel service, decided by its iframe."""
    clock = Clock()
    logout, _, _ = _logout(MemoryStore(), clock)
    channel = ScriptedChannel(clock)
    logout.register("saml", channel)
    starts, token = _signed_in(logout, _both("both"))
    run = _start(logout, Initiator(BY_STUDENT), token, starts)
    payload = run.to_payload()
    assert payload["back_done"] is False and payload["targets"][0]["back"] == PENDING
    payload["back_done"] = True
    del payload["targets"][0]["back"]
    logout.save(SECRET, LogoutRun.from_payload(payload))
    run = logout.run_back_channels(SECRET, logout.load(SECRET, run.run_id))
    assert channel.notified == []
    assert logout.store.get(store_key(ANSWER, f"{run.run_id}/0")) is None
    assert _iframe_answers(logout, run, 0, CONFIRMED).targets[0].outcome == CONFIRMED
