"""Starting a logout run: the SSO session ends, and the run that tells its services is filed.

Every way in (the student's button, a service's LogoutRequest or end_session, the school's
LogoutRequest) starts a run here; the web routes only read the request and render the answer.
The session ends first, so whatever happens after, the broker no longer answers from it: one
store batch files the run, files the mark that it is this browser's last (logout_marks.py), and
ends the session and its record of services. The writes go first: a batch keeps its order but
is not atomic, so a request that finds the session gone finds the run and the mark too.

A request that finds no session, from this browser, asking what its last run was asked for
(the same form sent twice), goes on to that run instead of starting an empty one.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.core.model import UpstreamIdentity
from broker.login.flow import LoginFlow
from broker.login.logout import RUN, EndedSession, SingleLogout
from broker.login.logout_marks import LastRuns
from broker.login.logout_run import Initiator, LogoutRun
from broker.login.participants import SessionServices, session_and_services

Session = tuple[UpstreamIdentity, float]


@dataclass(frozen=True)
class Started:
    """Where a logout request goes on to: the run `run_id`. `run` is the run this request
    started; None when the request goes on to one started before (the same request again)."""

    run_id: str
    run: LogoutRun | None = None


class LogoutStart:
    def __init__(self, logout: SingleLogout, flow: LoginFlow) -> None:
        self.logout = logout
        self.flow = flow
        self.last_runs = LastRuns(logout.store, logout.run_ttl)

    def start(
        self,
        browser_secret: bytes,
        initiator: Initiator,
        sso_token: str | None,
        known: tuple[Session | None, SessionServices] | None = None,
    ) -> Started:
        """End the session `sso_token` names (the browser's cookie, checked by the protocol
        route against what the message names) and start the run that tells its services.
        `known`: that session and its record of services, when the route read them already
        (`participants.session_and_services`); read here if not."""
        if known is None:
            known = session_and_services(self.flow, self.logout.services, sso_token)
        session, services = known
        if session is None:
            earlier = self.started_before(browser_secret, initiator)
            if earlier is not None:
                return Started(earlier)
        identity = session[0] if session is not None else None
        ending = [self.logout.services.forget_op(sso_token)] if sso_token else []
        try:
            run = self.logout.compose(self._ended(identity), initiator, services)
        except BaseException:
            # A run that cannot be made still ends the session: a logout never leaves it standing.
            if sso_token:
                self.flow.end_session(sso_token, identity, also=ending)
            raise
        if sso_token and identity is not None:
            filing = [
                self.logout.sealed.put_op(
                    browser_secret, RUN, run.run_id, run.to_payload(), self.logout.run_ttl
                ),
                self.last_runs.mark_op(browser_secret, run),
            ]
            self.flow.end_session(sso_token, identity, before=filing, also=ending)
            return Started(run.run_id, run)
        if sso_token:  # no session stood; its record of services may have outlived it
            self.flow.end_session(sso_token, None, also=ending)
        self.logout.save(browser_secret, run)
        return Started(run.run_id, run)

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
