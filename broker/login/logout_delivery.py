"""One server-to-server logout notification, whatever the protocol: OIDC Back-Channel Logout
(a form with a logout token) or SAML's SOAP binding (a LogoutRequest in a SOAP envelope).

Both go out through the same `BackChannelPost` (broker/oidc/backchannel.py implements it under
the outbound rules of rp_http.py: https, or loopback http only when the broker runs on
loopback; no redirects; the answer capped; the whole call within the time given), and end in
the same statuses, with the same log lines: confirmed, failed (refused, unreachable, an answer
that does not hold) or timed out. The lines name the service and a reason code or HTTP status,
never the student, the session or the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from broker.core.errors import InvalidMessage, PlatformTimeout, UpstreamFailure
from broker.login.logout_run import CONFIRMED, FAILED, TIMED_OUT

log = logging.getLogger("broker.logout")


@dataclass(frozen=True)
class Notification:
    """One server-to-server message: `body` POSTed to `url` as `content_type`."""

    url: str
    body: str
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PostAnswer:
    """A peer's answer to a back-channel POST, read whole (within the cap)."""

    status_code: int
    content: bytes


class BackChannelPost(Protocol):
    """POST a notification to a platform within `timeout` seconds in all. Raises
    `PlatformTimeout` when it does not answer in time, `UpstreamFailure` when the call cannot be
    made or is refused on the way (endpoint rule, network as `platform_unreachable`, redirect,
    size cap)."""

    def __call__(self, notification: Notification, timeout: float) -> PostAnswer: ...


# Judges a peer's answer: "" when it confirms the logout, else what to log as its refusal (an
# HTTP status, a SAML status); raises InvalidMessage for an answer that does not hold.
Judge = Callable[[PostAnswer], str]


def deliver(
    post: BackChannelPost,
    service_id: str,
    notification: Notification,
    timeout: float,
    judge: Judge,
) -> str:
    """Tell one service server to server: CONFIRMED, FAILED or TIMED_OUT (never raises for the
    peer's fault)."""
    try:
        refusal = judge(post(notification, timeout))
    except PlatformTimeout as late:
        log.info("back-channel logout timed out service=%s code=%s", service_id, late.code)
        return TIMED_OUT
    except (UpstreamFailure, InvalidMessage) as failure:
        log.info("back-channel logout failed service=%s code=%s", service_id, failure.code)
        return FAILED
    if refusal:
        log.info("back-channel logout refused service=%s status=%s", service_id, refusal)
        return FAILED
    return CONFIRMED
