"""How the protocols' services and schools hear of a logout: the channels a logout run
(logout.py) is told through. broker/saml and broker/oidc implement them; nothing here knows
either protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from broker.core.ports import StoreOp
from broker.login.logout_run import LogoutRun, Outbound
from broker.login.participants import Participant

# What the end of an SSO session writes for one of its services, in the batch that ends it
# (SingleLogout.ending): the writes that end what the service holds of the session (OIDC:
# its tokens' revocation marks), whether or not the service hears of the logout.
SessionEnding = Callable[[Participant], list[StoreOp]]


class ServiceChannel(Protocol):
    """How one protocol's services hear of a logout (broker/saml, broker/oidc implement it)."""

    def mode(self, participant: Participant) -> str:
        """FRONT, BACK or UNSUPPORTED for this service, from its registration/metadata."""
        ...

    def can_be_told_server_to_server(self, participant: Participant) -> bool:
        """Whether a FRONT service can be told server to server as well (a SAML service with a
        SOAP SingleLogoutService; `back_channel` then tells it). Used two ways: in every run
        with a browser it is told so *besides* its iframe, which the browser may send without
        the service's cookie (logout.py, `Target.back`); in a logout with no browser to carry
        the message (a school's back channel, a frame without the broker's cookies) it is told
        so *instead* (`SingleLogout.mode`, BACK). False for a service that only a browser can
        reach, and for one that is BACK already."""
        ...

    def front_origin(self, participant: Participant) -> str:
        """For FRONT: scheme://host[:port] the front-channel message goes to."""
        ...

    def back_channel(self, participant: Participant, timeout: float) -> str:
        """Notify server to server; CONFIRMED, FAILED or TIMED_OUT (never raises for a peer's
        fault; login/logout_delivery.py)."""
        ...

    def front_channel(self, run_id: str, index: int, participant: Participant) -> Outbound:
        """The message the iframe carries to the service. The adapter keeps the id of what it
        sends with `SingleLogout.expect_answer`, so the answer finds its run."""
        ...

    def answer_initiator(self, run: LogoutRun) -> Outbound | None:
        """The way back to a service that started the run (status from `run.partial`)."""
        ...


class SchoolChannel(Protocol):
    """How one protocol's schools hear of a logout, and how a school's own request is answered."""

    def request(self, run: LogoutRun) -> Outbound | None:
        """The message to the school's IdP/OP; None when it offers no logout (NOT_TOLD)."""
        ...

    def answer_initiator(self, run: LogoutRun) -> Outbound | None:
        """The answer to a school that started the run."""
        ...
