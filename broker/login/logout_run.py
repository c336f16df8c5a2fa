"""A logout run as data: who started it, the services it tells and how each answered, and
what the school needs to hear (login/logout.py runs it). Frozen, JSON in and out: the run is
kept sealed under the browser's secret between the pages of a logout."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from broker.login.participants import Participant

# Channel modes
FRONT = "front"
BACK = "back"
UNSUPPORTED = "unsupported"

# Statuses of a service (and of the school)
PENDING = "pending"
CONFIRMED = "confirmed"
FAILED = "failed"
TIMED_OUT = "timed_out"
# The school: not told (no logout endpoint, or the run answers the school itself).
NOT_TOLD = "not_told"
INITIATOR = "initiator"
# What the page says of a school that answered PartialLogout (`LogoutRun.school_outcome`).
SCHOOL_PARTIAL = "partial"
# A service's final statuses, in the order they are counted (COUNTED).
FINAL = (CONFIRMED, FAILED, TIMED_OUT, UNSUPPORTED)

# How a service was told, as counted when a run ends (`service_counts`): FRONT, BACK,
# UNSUPPORTED, or both ways (a FRONT target with `back`).
FRONT_AND_BACK = "front_and_back"
# The statuses a service is counted by when a run ends (metrics, the log line), in that order:
# its final outcome (FINAL), or for any other UNFINISHED: a service still PENDING because the
# final page was opened before it answered or timed out (`/done` reached early, by hand).
UNFINISHED = "unfinished"
COUNTED = (*FINAL, UNFINISHED)

# Who started a run
BY_STUDENT = "student"
BY_SERVICE = "service"
BY_SCHOOL = "school"

MAX_RUN_ID = 64


@dataclass(frozen=True)
class Outbound:
    """A message the browser carries: a redirect to `url` (fields None) or a form POST."""

    url: str
    fields: dict[str, str] | None = None


@dataclass(frozen=True)
class Initiator:
    """Who started the run and what it takes to answer them at the end.

    `answer` is the adapter's own data (SAML: request id, response location and binding,
    RelayState; OIDC: post_logout_redirect_uri and state); the run only carries it."""

    kind: str
    protocol: str = ""
    service_id: str = ""
    answer: dict[str, str] = field(default_factory=dict)
    # Whether the initiating service is logging out of *this* session (it is then left out of
    # the services told). An OIDC hint naming an older session: the service is told as well.
    own_session: bool = True


@dataclass(frozen=True)
class Target:
    participant: Participant
    mode: str
    # How its own channel went: BACK, the server call; FRONT, the iframe's answer.
    status: str
    # FRONT: the origin the iframe is sent to (the propagation page's CSP must allow it).
    origin: str = ""
    # FRONT with a SOAP endpoint too: told server to server as well, because the iframe is a
    # third party that the browser may send no cookie (docs/saml-profile.md). PENDING until
    # the back channel ran, then its result; "" when not told so (a run record from before).
    back: str = ""

    @property
    def outcome(self) -> str:
        """What the page, the initiator's answer and the metrics say of the service: confirmed
        when the server call confirmed (the iframe's answer then changes nothing, failed or
        not), else its own channel's status."""
        return CONFIRMED if self.back == CONFIRMED else self.status

    @property
    def server_to_server(self) -> bool:
        """Whether the run's back channel tells it: a BACK service, or a FRONT one with `back`."""
        return self.mode == BACK or bool(self.back)

    def told(self, result: str) -> Target:
        """This target with the back channel's `result` filed where it belongs."""
        return replace(self, back=result) if self.mode == FRONT else replace(self, status=result)


@dataclass(frozen=True)
class LogoutRun:
    run_id: str
    created: float
    deadline: float
    initiator: Initiator
    targets: tuple[Target, ...]
    school_id: str
    school_protocol: str
    # What the school gave to name its session (SAML NameID/SessionIndex, OIDC id_token/sid).
    upstream: dict[str, str]
    school_status: str
    back_done: bool = False
    # The school's answer carried the second-level PartialLogout (SAML core 3.7.3.2: the
    # student's session with the school may stand on, at the school or at other services the
    # school told). Filed beside `school_status` FAILED, not as a status of its own: a worker
    # from before it reads the run as the school's "did not confirm", which is what it is.
    school_partial: bool = False
    # The initiator's answer was made (and the outcome counted, metrics): `answer` is that one
    # message, kept so a reload of the final page shows it again instead of signing a new one.
    answered: bool = False
    answer: Outbound | None = None

    @property
    def partial(self) -> bool:
        """Some service (or the school) did not confirm: SAML's PartialLogout."""
        return any(t.outcome != CONFIRMED for t in self.targets) or self.school_status in (
            FAILED,
            TIMED_OUT,
        )

    @property
    def school_outcome(self) -> str:
        """What the page and the status endpoint say of the school: its status, or
        SCHOOL_PARTIAL when it did not confirm and answered PartialLogout."""
        if self.school_partial and self.school_status == FAILED:
            return SCHOOL_PARTIAL
        return self.school_status

    @property
    def services_done(self) -> bool:
        """Every service answered, timed out or cannot be told (the back channel's included).
        A service confirmed over SOAP still has its iframe waited for (up to the deadline):
        leaving the page would cut its message off, and it may be the only one that reaches a
        service keeping its sessions by cookie."""
        return self.back_done and all(t.status in FINAL for t in self.targets)

    @property
    def confirmed_everywhere(self) -> bool:
        """Every service confirmed, and the school did (or started the run, or no session stood,
        so there was no school to tell): nothing the student must read before the final page
        sends them on to whoever started the run. Stricter than `partial`: a school that could
        not be told is no PartialLogout (nobody failed), but the student may still be signed
        in there, and the page must stay to say so."""
        school_done = self.school_status in (CONFIRMED, INITIATOR) or not self.school_id
        return school_done and all(t.outcome == CONFIRMED for t in self.targets)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "run_id": self.run_id,
            "created": self.created,
            "deadline": self.deadline,
            "initiator": {
                "kind": self.initiator.kind,
                "protocol": self.initiator.protocol,
                "service_id": self.initiator.service_id,
                "answer": dict(self.initiator.answer),
            },
            "targets": [_target_payload(t) for t in self.targets],
            "school_id": self.school_id,
            "school_protocol": self.school_protocol,
            "upstream": dict(self.upstream),
            "school_status": self.school_status,
            "back_done": self.back_done,
            "answered": self.answered,
            "answer": (
                {"url": self.answer.url, "fields": self.answer.fields}
                if self.answer is not None
                else None
            ),
        }
        if self.school_partial:
            payload["school_partial"] = True  # only when set, as a target's `back`
        return payload

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> LogoutRun:
        initiator = data["initiator"]
        return cls(
            run_id=str(data["run_id"]),
            created=float(data["created"]),
            deadline=float(data["deadline"]),
            initiator=Initiator(
                str(initiator["kind"]),
                str(initiator.get("protocol", "")),
                str(initiator.get("service_id", "")),
                {str(k): str(v) for k, v in (initiator.get("answer") or {}).items()},
            ),
            targets=tuple(
                Target(
                    Participant.from_payload(t["id"], t["p"]),
                    str(t["mode"]),
                    str(t["status"]),
                    str(t.get("origin", "")),
                    str(t.get("back", "")),
                )
                for t in data["targets"]
            ),
            school_id=str(data["school_id"]),
            school_protocol=str(data.get("school_protocol", "")),
            upstream={str(k): str(v) for k, v in (data.get("upstream") or {}).items()},
            school_status=str(data["school_status"]),
            back_done=bool(data.get("back_done")),
            school_partial=bool(data.get("school_partial")),
            answered=bool(data.get("answered")),
            answer=_outbound(data.get("answer")),
        )


def _target_payload(target: Target) -> dict[str, Any]:
    """A target as the run record keeps it; `back` written only when set, so a run without it
    stays as small as it was.

    A rolling upgrade (docs/operations.md, "Logout runs during the upgrade to telling services
    both ways"): the keys a worker of before `back` reads keep their meaning, so either kind of
    worker reads a record the other filed and completes the run. Not preserved: `back` itself,
    which such a worker drops whenever it saves the run again (its from_payload reads none),
    so a service confirmed over SOAP then counts as its iframe answered (did not answer,
    PartialLogout: the safe direction); and a record whose back channel such a worker runs
    first tells its FRONT services by their iframes alone (it knows BACK targets only). Both
    last only while old and new workers serve side by side."""
    payload: dict[str, Any] = {
        "id": target.participant.service_id,
        "p": target.participant.to_payload(),
        "mode": target.mode,
        "status": target.status,
        "origin": target.origin,
    }
    if target.back:
        payload["back"] = target.back
    return payload


def _outbound(data: Any) -> Outbound | None:
    if not isinstance(data, dict):
        return None
    fields = data.get("fields")
    return Outbound(
        str(data["url"]),
        {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else None,
    )


def status_summary(run: LogoutRun, names: Mapping[str, str]) -> dict[str, Any]:
    """The run as the status endpoint reports it: service names and statuses, nothing else."""
    return {
        "services": [
            {
                "name": names.get(t.participant.service_id, t.participant.service_id),
                "status": t.outcome,
            }
            for t in run.targets
        ],
        "school": run.school_outcome,
        "done": run.services_done,
    }


def counted_status(outcome: str) -> str:
    """The status (of COUNTED) a service's `outcome` is counted by: a final one as it is, any
    other UNFINISHED."""
    return outcome if outcome in FINAL else UNFINISHED


def service_counts(run: LogoutRun) -> Counter[tuple[str, str]]:
    """How many services of the run were told which way (FRONT, BACK, FRONT_AND_BACK or
    UNSUPPORTED) with which status (`counted_status`): what the metrics count when the run
    ends."""
    return Counter(
        (FRONT_AND_BACK if t.mode == FRONT and t.back else t.mode, counted_status(t.outcome))
        for t in run.targets
    )


def counts_by_status(counts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """`service_counts` summed by status: every COUNTED status in its order, zeros included
    (the log line's fixed columns), then any other status it holds, so none is lost."""
    by_status = dict.fromkeys(COUNTED, 0)
    for (_, status), count in counts.items():
        by_status[status] = by_status.get(status, 0) + count
    return by_status


def confirmed_by_back_only(run: LogoutRun) -> int:
    """FRONT services that count as logged out only because the server call confirmed: their
    iframe did not (blocked, no cookie sent to it, no answer in time). The log line's measure
    of what telling them both ways saves."""
    return sum(
        1 for t in run.targets if t.mode == FRONT and t.back == CONFIRMED and t.status != CONFIRMED
    )
