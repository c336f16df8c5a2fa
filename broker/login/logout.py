"""Single logout: end the SSO session, tell every service of it and the school, report back.

A logout *run* starts from any side: the student's button on a broker page, a service (SAML
LogoutRequest, OIDC end_session) or the school's identity provider. Starting a run ends the SSO
session first (logout_start.py), so whatever happens after, the broker no longer answers from
it. The run then notifies the session's other services, each in its own protocol, through a
channel:

- `BACK`: server to server (OIDC Back-Channel Logout, SAML's SOAP binding), all at once with
  one short deadline;
- `FRONT`: the propagation page loads one iframe per service, which carries a logout message
  to it (SAML LogoutRequest); its answer comes back to the broker and is matched by the id of
  the message sent, through a short-lived store record, never by a cookie inside the iframe.
  A FRONT service that can also be told server to server (a SOAP SingleLogoutService) is told
  both ways: with the back channel, before the page is shown, and by its iframe. The iframe
  is a third party, which Safari and cookie blocking send without the service's cookie; the
  server call names the session itself. It counts as confirmed when the server call confirmed
  (`Target.outcome`), else as its iframe answered;
- `UNSUPPORTED`: the service registered no way to hear of a logout: the final page says so.

Then the school is told (unless it started the run) and the initiator is answered. A service
that does not answer does not block the rest: after `wait_seconds` it counts as timed out.

The run is sealed under the browser's secret (sealed.py); the answers of the iframes are kept
beside it unsealed, as (run id, index) → status: service ids and statuses, nothing personal.
Nothing here knows SAML, OIDC or Flask: the adapters implement the channel protocols of
logout_channels.py.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from broker.core.errors import StateExpired
from broker.core.ports import KeyValueStore, StoreOp
from broker.login.logout_channels import SchoolChannel, ServiceChannel, SessionEnding
from broker.login.logout_run import (
    BACK,
    BY_SCHOOL,
    BY_SERVICE,
    BY_STUDENT,
    CONFIRMED,
    FAILED,
    FINAL,
    FRONT,
    INITIATOR,
    MAX_RUN_ID,
    NOT_TOLD,
    PENDING,
    TIMED_OUT,
    UNSUPPORTED,
    Initiator,
    LogoutRun,
    Outbound,
    Target,
    status_summary,
)
from broker.login.participants import Participant, SessionServiceBook, SessionServices
from broker.login.sealed import SealedStore, store_key

RUN = "logout"
ANSWER = "logout-answer"
OUTSTANDING = "logout-outstanding"
ANSWERING = "logout-answering"
TELLING = "logout-telling"

log = logging.getLogger("broker.logout")


@dataclass(frozen=True)
class EndedSession:
    """What ending an SSO session leaves for the run: the school and its logout handles."""

    school_id: str
    school_protocol: str
    upstream: dict[str, str]


class SingleLogout:
    def __init__(
        self,
        store: KeyValueStore,
        services: SessionServiceBook,
        *,
        run_ttl: int,
        wait_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sealed = SealedStore(store)
        self.services = services
        self.run_ttl = run_ttl
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.channels: dict[str, ServiceChannel] = {}
        self.schools: dict[str, SchoolChannel] = {}
        self.endings: dict[str, SessionEnding] = {}

    # -- wiring --------------------------------------------------------------------------------
    def register(
        self,
        protocol: str,
        service: ServiceChannel,
        school: SchoolChannel | None = None,
        ending: SessionEnding | None = None,
    ) -> None:
        self.channels[protocol] = service
        if school is not None:
            self.schools[protocol] = school
        if ending is not None:
            self.endings[protocol] = ending

    # -- the session's end ---------------------------------------------------------------------
    def ending(self, sso_token: str, services: SessionServices) -> list[StoreOp]:
        """What ending the session `sso_token` writes beside its own record's deletion, for
        that batch: its record of services goes, and each service's protocol ends what that
        service holds of the session (OIDC: its tokens, by their families' revocation marks).
        Every way a session ends (logout_start.py, school_logout.py) sends these, and so does
        a session replaced by another student's login (`replaced`)."""
        writes = [self.services.forget_op(sso_token)]
        for participant in services.participants:
            end = self.endings.get(participant.protocol)
            if end is not None:
                writes.extend(end(participant))
        return writes

    def replaced(
        self, sso_token: str, services: SessionServices, *, same_student: bool
    ) -> list[StoreOp]:
        """What a fresh school login in the browser of session `sso_token` writes beside that
        session's deletion; the new session takes `services` over either way, so a logout still
        reaches every service the browser was logged in to (web/login_finish.py). The record of
        services goes. The same student's service sessions stay as they are: their platforms
        are still signed in. Another student's (the next one at a shared laptop) end as at any
        logout (`ending`): the previous student's OIDC tokens must not outlive their turn."""
        if same_student:
            return [self.services.forget_op(sso_token)]
        return self.ending(sso_token, services)

    # -- a new run (logout_start.py ends the session and files it) -----------------------------
    def compose(
        self, ended: EndedSession | None, initiator: Initiator, participants: SessionServices
    ) -> LogoutRun:
        """A new run telling `participants` (and the school of `ended`), not saved yet."""
        targets = []
        for participant in participants.participants:
            if (
                initiator.kind == BY_SERVICE
                and initiator.own_session
                and participant.service_id == initiator.service_id
            ):
                continue
            mode = self.mode(participant)
            status = UNSUPPORTED if mode == UNSUPPORTED else PENDING
            channel = self.channels.get(participant.protocol)
            origin = back = ""
            if channel is not None and mode == FRONT:
                origin = channel.front_origin(participant)
                # Told server to server as well when it can be: its iframe is a third party,
                # which Safari and cookie blocking send without the service's cookie.
                back = PENDING if channel.can_be_told_server_to_server(participant) else ""
            targets.append(Target(participant, mode, status, origin, back))
        if ended is None:
            school_status = NOT_TOLD
        elif initiator.kind == BY_SCHOOL:
            school_status = INITIATOR
        else:
            school_status = PENDING
        now = self.clock()
        return LogoutRun(
            run_id=secrets.token_urlsafe(18),
            created=now,
            deadline=now + self.wait_seconds,
            initiator=initiator,
            targets=tuple(targets),
            school_id=ended.school_id if ended else "",
            school_protocol=ended.school_protocol if ended else "",
            upstream=dict(ended.upstream) if ended else {},
            school_status=school_status,
            back_done=not any(t.server_to_server for t in targets),
        )

    def load(self, browser_secret: bytes, run_id: str) -> LogoutRun:
        if not run_id or len(run_id) > MAX_RUN_ID:
            raise StateExpired("logout run id malformed")
        data = self.sealed.get(browser_secret, RUN, run_id)
        if data is None:
            raise StateExpired("logout run absent or expired")
        return LogoutRun.from_payload(data)

    def save(self, browser_secret: bytes, run: LogoutRun) -> None:
        self.sealed.put(browser_secret, RUN, run.run_id, run.to_payload(), self.run_ttl)

    # -- back channel --------------------------------------------------------------------------
    def run_back_channels(self, browser_secret: bytes, run: LogoutRun) -> LogoutRun:
        """Notify every back-channel service at once (the FRONT ones told that way too: their
        iframes follow), with one deadline for all of them; once
        per run: a second load of the run's page while the first is still waiting for them (a
        second press sent on to this run, a reload) leaves them pending, and the first saves
        their answers with the run, where the page's next look finds them."""
        if run.back_done:
            return run
        if not self.store.add_if_absent(store_key(TELLING, run.run_id), b"1", self.run_ttl):
            return run
        try:
            jobs = {i: t.participant for i, t in enumerate(run.targets) if t.server_to_server}
            results = self.notify_all(jobs, max(run.deadline - self.clock(), 0.5))
            targets = tuple(
                t.told(results.get(i, TIMED_OUT)) if t.server_to_server else t
                for i, t in enumerate(run.targets)
            )
            run = replace(run, targets=targets, back_done=True, deadline=self._front_deadline(run))
            self.save(browser_secret, run)
        except BaseException:
            # Nothing was kept: the next load tells them rather than nobody.
            self.store.delete(store_key(TELLING, run.run_id))
            raise
        return run

    def _front_deadline(self, run: LogoutRun) -> float:
        """The run's deadline once the back channel is done: the iframes, shown only now, get
        the whole wait from now on. A server call that took the back channel's whole time (a
        service's SOAP endpoint that does not answer) must not take its own iframe's time: that
        iframe decides for the service then.

        The bound comes from when the back channel ran, not from the first load. It runs with
        what is left of the run's first wait (`run.deadline`), at least half a second, and
        `notify_all` gives half a second's grace, so it ends less than a second after that
        deadline at the latest; and it moves the deadline only while a FRONT service is still
        pending, which no load after that deadline finds (`settle` times them out first). So
        the iframes' deadline is at most the wait after the back channel ended, and less than
        `created` + twice the wait + 1 s, whichever load ran it: the first (twice the wait
        + 0.5 s when that load comes at once), or one running it again after the first attempt
        failed (a store error; its iframes then get a full wait from its own end, so a retry
        late in the first wait takes the run to that bound). A back channel never retried
        (the worker died holding the TELLING mark) moves nothing."""
        if any(t.mode == FRONT and t.status == PENDING for t in run.targets):
            return max(run.deadline, self.clock() + self.wait_seconds)
        return run.deadline

    def notify_all(self, jobs: Mapping[int, Participant], timeout: float) -> dict[int, str]:
        """Tell every participant of `jobs` server to server at once, within `timeout` in all;
        its status per key (one that did not answer in time is left out: timed out)."""
        results: dict[int, str] = {}
        pool = ThreadPoolExecutor(max_workers=min(len(jobs), 8) or 1)
        try:
            futures = {pool.submit(self._notify, p, timeout): i for i, p in jobs.items()}
            done, _ = wait(futures, timeout=timeout + 0.5)
            for future in done:
                try:
                    results[futures[future]] = future.result()
                except Exception as err:  # one service's failure is its own, not the run's
                    log.warning("logout channel failed: %s", type(err).__name__)
                    results[futures[future]] = FAILED
        finally:
            # Not waiting for the stragglers: the deadline is the deadline (their calls are
            # bounded by their own timeouts and end in the background).
            pool.shutdown(wait=False, cancel_futures=True)
        return results

    def mode(self, participant: Participant, *, browser: bool = True) -> str:
        """How this participant hears of a logout: FRONT, BACK or UNSUPPORTED. Without a
        `browser` to carry front-channel messages, a FRONT service that can also be told server
        to server is told that way (BACK); one that cannot stays FRONT, and is not told."""
        channel = self.channels.get(participant.protocol)
        if channel is None:
            return UNSUPPORTED
        mode = channel.mode(participant)
        if not browser and mode == FRONT and channel.can_be_told_server_to_server(participant):
            return BACK
        return mode

    def _notify(self, participant: Participant, timeout: float) -> str:
        channel = self.channels.get(participant.protocol)
        if channel is None:
            return FAILED
        return channel.back_channel(participant, timeout)

    # -- front channel -------------------------------------------------------------------------
    def front_message(self, run: LogoutRun, index: int) -> Outbound:
        if not 0 <= index < len(run.targets) or run.targets[index].mode != FRONT:
            raise StateExpired("no front-channel service at this index")
        target = run.targets[index]
        return self.channels[target.participant.protocol].front_channel(
            run.run_id, index, target.participant
        )

    def expect_answer(self, message_id: str, run_id: str, index: int, service_id: str) -> None:
        """Remember a sent LogoutRequest until its answer (or the run's end)."""
        value = f"{run_id} {index} {service_id}".encode()
        self.store.put(store_key(OUTSTANDING, message_id), value, self.run_ttl)

    def answered(self, in_response_to: str, service_id: str, status: str) -> bool:
        """An answer to `in_response_to` from `service_id`: filed for its run, once only.
        False when no such request is outstanding (unsolicited, replayed, another sender)."""
        raw = self.store.get(store_key(OUTSTANDING, in_response_to))
        if raw is None:
            return False
        run_id, index, expected = raw.decode().split(" ", 2)
        if expected != service_id:
            return False
        if self.store.take(store_key(OUTSTANDING, in_response_to)) is None:
            return False  # a racing copy of the same answer filed it first
        key = store_key(ANSWER, f"{run_id}/{index}")
        self.store.put(key, status.encode(), self.run_ttl)
        return True

    def outstanding(self, message_id: str) -> tuple[str, int, str] | None:
        """(run id, index, service id) of an outstanding request, left in place."""
        raw = self.store.get(store_key(OUTSTANDING, message_id))
        if raw is None:
            return None
        run_id, index, service_id = raw.decode().split(" ", 2)
        return run_id, int(index), service_id

    def settle(self, browser_secret: bytes, run: LogoutRun) -> LogoutRun:
        """The run with every filed answer taken in, and past its deadline, every service still
        pending counted as timed out."""
        now = self.clock()
        targets = []
        changed = False
        for index, target in enumerate(run.targets):
            status = target.status
            if status == PENDING and target.mode == FRONT:
                raw = self.store.get(store_key(ANSWER, f"{run.run_id}/{index}"))
                if raw is not None:
                    status = raw.decode()
            if status == PENDING and now >= run.deadline:
                status = TIMED_OUT
            changed = changed or status != target.status
            targets.append(replace(target, status=status))
        if not changed:
            return run
        run = replace(run, targets=tuple(targets))
        self.save(browser_secret, run)
        return run

    @staticmethod
    def services_done(run: LogoutRun) -> bool:
        return run.services_done

    # -- the school ----------------------------------------------------------------------------
    def school_request(self, browser_secret: bytes, run: LogoutRun) -> Outbound | None:
        """The message to the school, or None (and NOT_TOLD filed) when it cannot be told."""
        if run.school_status != PENDING:
            return None
        channel = self.schools.get(run.school_protocol)
        message = channel.request(run) if channel is not None else None
        if message is None:
            self.save(browser_secret, replace(run, school_status=NOT_TOLD))
        return message

    def school_answered(
        self, browser_secret: bytes, run: LogoutRun, status: str, *, partial: bool = False
    ) -> LogoutRun:
        """The school's answer: its `status`, and whether it said PartialLogout (`partial`)."""
        run = replace(run, school_status=status, school_partial=partial)
        self.save(browser_secret, run)
        return run

    def final_answer(self, browser_secret: bytes, run: LogoutRun) -> tuple[LogoutRun, bool]:
        """The run with its answer to the initiator, made once and kept with the run; True
        when this call made it (the outcome is then counted once).

        A reload of the final page (or a second tab) shows the same message again: a fresh one
        would be a second signed LogoutResponse, with a new id, to one request. Two requests
        at the same moment: a store mark lets one make it; the other shows what is kept, and
        if the maker has not saved yet, the outcome without the way back.
        """
        if run.answered:
            return run, False
        if not self.store.add_if_absent(store_key(ANSWERING, run.run_id), b"1", self.run_ttl):
            return self.load(browser_secret, run.run_id), False
        try:
            run = replace(run, answered=True, answer=self._answer_initiator(run))
            self.save(browser_secret, run)
        except BaseException:
            # Nothing was kept: let the next load make it rather than never answer.
            self.store.delete(store_key(ANSWERING, run.run_id))
            raise
        return run, True

    def _answer_initiator(self, run: LogoutRun) -> Outbound | None:
        initiator = run.initiator
        if initiator.kind == BY_SERVICE:
            channel = self.channels.get(initiator.protocol)
            return channel.answer_initiator(run) if channel is not None else None
        if initiator.kind == BY_SCHOOL:
            school = self.schools.get(initiator.protocol)
            return school.answer_initiator(run) if school is not None else None
        return None


# The run's data types live in logout_run.py; adapters import them from here too.
__all__ = [
    "ANSWER",
    "ANSWERING",
    "BACK",
    "BY_SCHOOL",
    "BY_SERVICE",
    "BY_STUDENT",
    "CONFIRMED",
    "FAILED",
    "FINAL",
    "FRONT",
    "INITIATOR",
    "MAX_RUN_ID",
    "NOT_TOLD",
    "OUTSTANDING",
    "PENDING",
    "RUN",
    "TIMED_OUT",
    "UNSUPPORTED",
    "EndedSession",
    "Initiator",
    "LogoutRun",
    "Outbound",
    "SchoolChannel",
    "ServiceChannel",
    "SingleLogout",
    "Target",
    "status_summary",
]
