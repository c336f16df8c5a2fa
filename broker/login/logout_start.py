"""Starting a logout run: the SSO session ends, and the run that tells its services is filed.

Every way in through the browser (the student's button, a service's SAML LogoutRequest or OIDC
end_session, a SAML school's LogoutRequest) starts a run here; the web routes only read the
request and render the answer. An OIDC school's back-channel logout token comes with no browser
to show a run's pages: school_logout.py ends that session and tells the services it can
reach itself, without a run.

The session ends first, so whatever happens after, the broker no longer answers from it: one
store batch files the run, files the mark that it is this browser's last (logout_marks.py), and
ends the session and its record of services. The writes go first: a batch keeps its order but
is not atomic, so a request that finds the session gone finds the run and the mark too.

A request that finds no session, from this browser, asking what its last run was asked for
(the same form sent twice), goes on to that run instead of starting an empty one.

Two requests of one browser that both read the session before either ended it (a double
click, or a platform's LogoutRequest posted twice, arriving within the same few milliseconds)
would each start a full run, and the browser
would show the second. So the one that files the run first claims the session (`add_if_absent`
on a key derived from its SSO token, the run id sealed under the browser's secret); the other
waits, briefly and within a bound, for the winner's mark and goes where a request arriving a
moment later would have gone: the winner's run when it asked the same, else a run of its own
that finds the session gone. Each look is one round trip (the mark and the claim in one
batch). A winner that fails between its claim and its batch removes its claim, and the other,
seeing it gone, stops waiting and claims the session itself before it files its run, so a
third request finds that claim and waits for that run, instead of starting a second one. A
winner that never files its mark and leaves its claim (it died) holds the other up at most
`CLAIM_WAIT_SECONDS`; the other then starts its run as if there had been no claim.

A SAML LogoutRequest is taken once (the replay cache). Its check (`first_use`) is made here, by
the request that won the claim, just before its batch: the same request posted twice at once
(the platform's auto-post submitted twice) then lands, as the loser, on the run the first copy
started, where checked before the claim it would have been refused as a replay. A replayed
copy waits only while a claim of this browser's on the same session stands (a logout of it
in flight): one that finds none wins the claim and is refused at once, and a refused winner
removes its claim and ends nothing. One from another browser cannot open the claim, so
it does not wait either.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.core.errors import StateExpired, StoreUnavailable
from broker.core.model import UpstreamIdentity
from broker.core.ports import StoreOp, StoreReply
from broker.login.flow import LoginFlow
from broker.login.logout import RUN, EndedSession, SingleLogout
from broker.login.logout_marks import LastRuns, asked
from broker.login.logout_run import MAX_RUN_ID, Initiator, LogoutRun
from broker.login.participants import SessionServices, session_and_services
from broker.login.sealed import SealedStore, seal, store_key

Session = tuple[UpstreamIdentity, float]

CLAIM = "logout-claim"
# The winner files its mark in the round trip after its claim: a loser waits this long at most
# (only a winner that died in between makes it wait the whole time). It looks first after
# CLAIM_POLL_SECONDS, then twice as long each time: a winner that is merely slow (a store
# round trip under load) costs few reads, one that answers at once little waiting.
CLAIM_WAIT_SECONDS = 2.0
CLAIM_POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Started:
    """Where a logout request goes on to: the run `run_id`. `run` is the run this request
    started; None when the request goes on to one started before (the same request again).
    `second`: the run was started by the second of two requests at the same moment, which
    asked something else than the first and found the session ended by it (one logout, not
    two: the metrics count it apart)."""

    run_id: str
    run: LogoutRun | None = None
    second: bool = False


class LogoutStart:
    def __init__(
        self,
        logout: SingleLogout,
        flow: LoginFlow,
        *,
        claim_wait: float = CLAIM_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logout = logout
        self.flow = flow
        self.store = logout.store
        self.last_runs = LastRuns(logout.store, logout.run_ttl)
        self.claim_wait = claim_wait
        self.sleep = sleep
        self.clock = clock

    def start(
        self,
        browser_secret: bytes,
        initiator: Initiator,
        sso_token: str | None,
        known: tuple[Session | None, SessionServices] | None = None,
        first_use: Callable[[], None] | None = None,
    ) -> Started:
        """End the session `sso_token` names (the browser's cookie, checked by the protocol
        route against what the message names) and start the run that tells its services.
        `known`: that session and its record of services, when the route read them already
        (`participants.session_and_services`); read here if not. `first_use`: the replay check
        of the message that asked (raises when it was taken before), made only by a request
        that acts on it, never by one sent on to the run its copy started."""
        if known is None:
            known = session_and_services(self.flow, self.logout.services, sso_token)
        session, services = known
        if session is None:
            earlier = self.started_before(browser_secret, initiator)
            if earlier is not None:
                return Started(earlier)
        identity = session[0] if session is not None else None
        ending = self.logout.ending(sso_token, services) if sso_token else []
        try:
            run = self.logout.compose(self._ended(identity), initiator, services)
        except BaseException:
            # A run that cannot be made still ends the session: a logout never leaves it
            # standing. A replayed copy is refused first and ends nothing (no claim here: the
            # run id it would hold is what failed to be made).
            if first_use is not None:
                first_use()
            if sso_token:
                self.flow.end_session(sso_token, identity, also=ending)
            raise
        if sso_token and identity is not None:
            claimed = self._claim_or_wait(browser_secret, sso_token, run, initiator, first_use)
            if isinstance(claimed, Started):
                return claimed
            filing = [
                self.logout.sealed.put_op(
                    browser_secret, RUN, run.run_id, run.to_payload(), self.logout.run_ttl
                ),
                self.last_runs.mark_op(browser_secret, run),
            ]
            try:
                if first_use is not None:
                    first_use()
                self.flow.end_session(sso_token, identity, before=filing, also=ending)
            except BaseException:
                # Refused, or nothing (or not all) was filed: a second try must not wait for
                # this run. Only the claim this request holds: one it lost stays its winner's.
                if claimed:
                    self._release(store_key(CLAIM, sso_token))
                raise
            return Started(run.run_id, run)
        if first_use is not None:
            first_use()
        if sso_token:  # no session stood; its record of services may have outlived it
            self.flow.end_session(sso_token, None, also=ending)
        self.logout.save(browser_secret, run)
        return Started(run.run_id, run)

    def _claim_or_wait(
        self,
        browser_secret: bytes,
        sso_token: str,
        run: LogoutRun,
        initiator: Initiator,
        first_use: Callable[[], None] | None,
    ) -> Started | bool:
        """Claim the session for `run`: True when this request holds the claim (and files
        `run`). Else wait for the run of the request that holds it, and go where that leads
        (`_went_on`, a Started). False: file `run` without the claim, when the claim is another
        browser's (it does not open here) or its holder filed no mark within `claim_wait` (it
        died holding it).

        A holder that lets go without filing its run (its batch failed, or it was refused) is
        claimed from again: of the requests that waited for it, one files its run and holds
        the claim, the others wait for that one, as does a request that comes later still.
        (Filing without the claim then, as a waiting request once did, let a third request
        claim the session and start a second run beside it.)"""
        key = store_key(CLAIM, sso_token)
        claim = seal(browser_secret, CLAIM, sso_token, {"run": run.run_id}, key)
        if self.store.add_if_absent(key, claim, self.logout.run_ttl):
            return True
        deadline = self.clock() + self.claim_wait
        pause = CLAIM_POLL_SECONDS
        winner = ""
        while True:
            # One round trip: the mark, then the claim (a batch keeps that order, so a
            # holder that files its mark and keeps its claim is never seen without its mark).
            replies = self.store.batch([self.last_runs.last_op(browser_secret), StoreOp.get(key)])
            last = self.last_runs.last_of(browser_secret, replies[0])
            holder = self._holder(browser_secret, sso_token, replies[1])
            if holder == "":
                return False  # another browser's claim, or one that does not open
            winner = holder or winner
            if winner and last is not None and last[0] == winner:
                return self._went_on(browser_secret, winner, last[1], initiator, first_use)
            if holder is None and self.store.add_if_absent(key, claim, self.logout.run_ttl):
                return True  # its holder let go: this request files its run instead
            left = deadline - self.clock()
            if left <= 0:
                return False
            self.sleep(min(pause, left))
            pause *= 2

    @staticmethod
    def _holder(browser_secret: bytes, sso_token: str, reply: StoreReply) -> str | None:
        """The run id a claim on `sso_token` holds: None when there is no claim, "" when it
        does not open in this browser (another browser's) or holds no run id."""
        if reply is None:
            return None
        try:
            data = SealedStore.opened(browser_secret, CLAIM, sso_token, reply)
        except StateExpired:
            return ""
        holder = data.get("run") if data is not None else None
        return holder if isinstance(holder, str) and 0 < len(holder) <= MAX_RUN_ID else ""

    def _release(self, key: str) -> None:
        """Remove a claim whose run was not filed. A store that fails here must not hide why
        the run was not filed (the error being raised): the claim then lapses with its TTL,
        holding the next logout of this session up by the bounded wait only."""
        with contextlib.suppress(StoreUnavailable):
            self.store.delete(key)

    def _went_on(
        self,
        browser_secret: bytes,
        winner: str,
        winners_ask: str,
        initiator: Initiator,
        first_use: Callable[[], None] | None,
    ) -> Started:
        """Where a request that lost the claim goes once the winner's mark is filed: the
        winner's run when this request asked the same (`winners_ask`: its digest); else a run
        of its own, started as when no session stands (the winner ended it)."""
        if winners_ask == asked(initiator):
            return Started(winner)
        # Another request than the winner's: it is acted on, so it is checked.
        if first_use is not None:
            first_use()
        run = self.logout.compose(None, initiator, SessionServices())
        self.logout.save(browser_secret, run)
        return Started(run.run_id, run, second=True)

    def started_before(self, browser_secret: bytes, initiator: Initiator) -> str | None:
        """This browser's last run if `initiator` asked for it (read where no session stood)."""
        return self.last_runs.find(browser_secret, initiator)

    def _ended(self, identity: UpstreamIdentity | None) -> EndedSession | None:
        """What the school needs to hear of the session that held `identity`, if one stood."""
        if identity is None:
            return None
        school = self.flow.registry.school(identity.school_id)
        protocol = school.protocol.value if school is not None else ""
        return EndedSession(identity.school_id, protocol, dict(identity.upstream_session))
