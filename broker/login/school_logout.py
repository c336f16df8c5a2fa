"""A school's logout without the browser's cookie: its OpenID provider ends the student's SSO
session at the broker server to server (Back-Channel Logout 1.0), or its SAML IdP's
LogoutRequest reaches the broker in a frame where the browser withholds the broker's cookies
(saml_logout_routes.py), or server to server over SOAP (saml_soap_logout_routes.py). Either way
nobody's cookie finds the session.

The session is found through its filing under the school's sid (school_sessions.py), ended
first (record and services record, as every logout run does), and then every service of it that
can hear of a logout without a browser is told: OIDC platforms that registered a back-channel
logout URI, SAML services whose metadata lists a SOAP SingleLogoutService, all at once within
one short deadline (logout.py's back channel). Services that are told only through the browser
(SAML services with Redirect/POST SLO endpoints alone) are not told; they are counted, never
named, and their own sessions end when they end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from broker.core.model import UpstreamIdentity
from broker.login.flow import LoginFlow
from broker.login.logout import BACK, CONFIRMED, FRONT, TIMED_OUT, UNSUPPORTED, SingleLogout
from broker.login.participants import Participant, session_and_services
from broker.login.school_sessions import SchoolSessionIndex


@dataclass(frozen=True)
class SchoolLogoutOutcome:
    """What a school's logout token did: whether a session stood, and per status how many of
    its services heard of it (`not_told`: reachable only through the browser; `unsupported`:
    registered no way to hear of a logout)."""

    ended: bool
    statuses: dict[str, int] = field(default_factory=dict)
    # A session was filed there, but it is another student's than the message named (a SAML
    # NameID that differs): nothing ended.
    other: bool = False

    @property
    def complete(self) -> bool:
        """Every service of the ended session confirmed (none: nothing left to tell)."""
        return self.count(CONFIRMED) == sum(self.statuses.values())

    def count(self, status: str) -> int:
        return self.statuses.get(status, 0)


NOT_TOLD = "not_told"  # a front-channel service without SOAP, with no browser to carry it


class SchoolBackChannelLogout:
    def __init__(
        self,
        flow: LoginFlow,
        index: SchoolSessionIndex,
        logout: SingleLogout,
        *,
        wait_seconds: float,
    ) -> None:
        self.flow = flow
        self.index = index
        self.logout = logout
        self.wait_seconds = wait_seconds

    def end(self, school_id: str, sid: str) -> SchoolLogoutOutcome:
        """End the SSO session the school's `sid` names and tell its back-channel services.
        Nothing to end (never filed, already ended, expired) is no error: the school's token
        was valid, and the outcome says `ended=False`. A session whose record is gone but
        whose services record stands (an ending the store failed half way) counts as ended
        now: its services are told."""
        return self.end_any([school_id], [sid])

    def end_any(
        self,
        school_ids: Sequence[str],
        sids: Sequence[str],
        names: Callable[[UpstreamIdentity], bool] | None = None,
    ) -> SchoolLogoutOutcome:
        """`end` for a message that may concern one of several schools (a board's IdP) and
        name several sessions (a SAML LogoutRequest's SessionIndexes): the first one filed,
        looked up in one round trip, ended only if `names` (when given) says the message names
        its student."""
        found = self.index.find_any(school_ids, sids)
        if found is None:
            return SchoolLogoutOutcome(ended=False)
        return self._end_filed(*found, names)

    def _end_filed(
        self,
        school_id: str,
        sid: str,
        token: str,
        names: Callable[[UpstreamIdentity], bool] | None,
    ) -> SchoolLogoutOutcome:
        """End the session `token` (found filed under `school_id` and `sid`), as `end` does;
        `names`: whether the school's message names the student of that session (a SAML
        NameID), else nothing ends and the outcome says `other`."""
        books = self.logout.services
        session, services = session_and_services(self.flow, books, token)
        if session is not None and names is not None and not names(session[0]):
            return SchoolLogoutOutcome(ended=False, other=True)
        participants = services.participants
        # The session ends first: whatever happens after, the broker no longer answers from it.
        # Its record and its services record go in one batch (in that order; not atomic), with
        # what its services hold of it (their OIDC tokens: SingleLogout.ending).
        self.flow.end_session(
            token,
            session[0] if session is not None else None,
            also=self.logout.ending(token, services),
        )
        if session is None and not participants:
            self.index.drop(school_id, sid)  # it outlived its session: nothing else to end
            return SchoolLogoutOutcome(ended=False)
        if session is None:
            # An earlier ending that the store failed half way: the session's record went, its
            # services record stayed, and none of its services were told (the school heard
            # `Responder` and sends again). Without the session there is no NameID to match:
            # the school's signed message named this SessionIndex, and its services are told
            # now, as they would have been then; the filing goes once they were.
            statuses = self._tell(participants)
            self.index.drop(school_id, sid)
            return SchoolLogoutOutcome(ended=True, statuses=statuses)
        return SchoolLogoutOutcome(ended=True, statuses=self._tell(participants))

    def _tell(self, participants: Sequence[Participant]) -> dict[str, int]:
        """Tell the `participants` that can hear of it without a browser; per status, how
        many of them heard (or could not)."""
        modes = [self.logout.mode(p, browser=False) for p in participants]
        jobs = {i: p for i, p in enumerate(participants) if modes[i] == BACK}
        results = self.logout.notify_all(jobs, self.wait_seconds) if jobs else {}
        statuses: Counter[str] = Counter()
        for i, mode in enumerate(modes):
            if mode == BACK:
                statuses[results.get(i, TIMED_OUT)] += 1
            elif mode == FRONT:
                statuses[NOT_TOLD] += 1
            else:
                statuses[UNSUPPORTED] += 1
        return dict(statuses)
