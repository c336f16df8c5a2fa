"""OpenID Connect in the logout run (broker/login/logout.py): how OIDC platforms and OIDC
schools hear of a logout, and how a platform that asked for it (end_session) is answered.

- A platform with a registered `backchannel_logout_uri` is told server to server
  (backchannel.py); one without has no way to hear of it: `UNSUPPORTED`, and the final page says
  so. OIDC Front-Channel Logout is not offered (discovery says `frontchannel_logout_supported:
  false`).
- A platform that started the run gets its registered `post_logout_redirect_uri` back, with its
  `state` (RP-Initiated Logout 1.0 section 3), and only when that URI is still registered.
- Whether told or not, a platform's tokens of the session end with it: the session's end
  revokes the token family of each of its logins there (`token_revocations`; Back-Channel
  Logout 1.0 2.7, which asks it for refresh tokens not issued for offline_access: the broker
  issues none of those).
- A school's OpenID provider is told by sending the student to its `end_session_endpoint` (from
  its discovery document) with the school's own ID token as `id_token_hint`, the broker's
  per-school logout callback and the run id as `state`. Without that endpoint (or when its
  document cannot be had) the school is not told, and the final page says so.
"""

from __future__ import annotations

import logging

from broker.config import Settings
from broker.core.errors import StateExpired, UpstreamFailure
from broker.core.model import OidcClient
from broker.core.ports import RegistryReader, StoreOp
from broker.login.logout import BACK, UNSUPPORTED, LogoutRun, Outbound
from broker.login.logout_channels import SessionEnding
from broker.login.logout_run import FAILED
from broker.login.participants import FAMILIES, Participant
from broker.oidc.back import OidcBack
from broker.oidc.backchannel import BackChannelLogout, LogoutSubject
from broker.oidc.grants import TokenVault
from broker.oidc.response_modes import add_query

log = logging.getLogger(__name__)


class OidcServiceChannel:
    """The logout run's channel for OIDC platforms (a `ServiceChannel`)."""

    def __init__(self, registry: RegistryReader, sender: BackChannelLogout | None) -> None:
        """`sender` None: the broker has no OIDC keys, so it signs no logout tokens."""
        self.registry = registry
        self.sender = sender

    def _client(self, service_id: str) -> OidcClient | None:
        service = self.registry.service(service_id)
        return service.oidc if service is not None else None

    def mode(self, participant: Participant) -> str:
        client = self._client(participant.service_id)
        if self.sender is None or client is None or not client.backchannel_logout_uri:
            return UNSUPPORTED
        return BACK

    def can_be_told_server_to_server(self, participant: Participant) -> bool:
        return False  # never FRONT: a platform with a back-channel URI is BACK already

    def front_origin(self, participant: Participant) -> str:
        return ""

    def back_channel(self, participant: Participant, timeout: float) -> str:
        client = self._client(participant.service_id)
        handles = participant.handles
        if self.sender is None or client is None:
            return FAILED
        if not handles.get("client_id") or not handles.get("sid"):
            return FAILED
        subject = LogoutSubject(handles["client_id"], handles.get("sub", ""), handles["sid"])
        return self.sender.notify(participant.service_id, client, subject, timeout)

    def front_channel(self, run_id: str, index: int, participant: Participant) -> Outbound:
        raise StateExpired("OIDC platforms are not told through the front channel")

    def answer_initiator(self, run: LogoutRun) -> Outbound | None:
        answer = run.initiator.answer
        target = answer.get("post_logout_redirect_uri")
        client = self._client(run.initiator.service_id)
        if not target or client is None or target not in client.post_logout_redirect_uris:
            return None
        params = {"state": answer["state"]} if "state" in answer else {}
        return Outbound(add_query(target, params) if params else target)


def token_revocations(vault: TokenVault) -> SessionEnding:
    """The end of an SSO session for an OIDC platform (a `SessionEnding`): the revocation mark
    of each token family its logins in the session were given, so its access and refresh
    tokens (and codes not yet redeemed) stop working with the session. A participant recorded
    without families (COMPAT(oidc-logout-families), participants.py) has none to revoke."""

    def revoke(participant: Participant) -> list[StoreOp]:
        families = participant.handles.get(FAMILIES, "").split()
        return [vault.session_end_op(f) for f in families]

    return revoke


class OidcSchoolChannel:
    """The logout run's channel for schools with an OpenID provider (a `SchoolChannel`)."""

    def __init__(self, settings: Settings, registry: RegistryReader, back: OidcBack) -> None:
        self.settings = settings
        self.registry = registry
        self.back = back

    def request(self, run: LogoutRun) -> Outbound | None:
        school = self.registry.school(run.school_id)
        id_token = run.upstream.get("id_token")
        if school is None or school.oidc is None or not id_token:
            return None
        try:
            endpoint = self.back.directory.metadata(school.oidc.issuer).end_session_endpoint
        except UpstreamFailure as failure:
            log.info("school logout not possible school=%s code=%s", school.id, failure.code)
            return None
        if endpoint is None:
            return None
        params = {
            "id_token_hint": id_token,
            "client_id": school.oidc.client_id,
            "post_logout_redirect_uri": self.settings.oidc_logout_callback_url(school.id),
            "state": run.run_id,
        }
        return Outbound(add_query(endpoint, params))

    def answer_initiator(self, run: LogoutRun) -> Outbound | None:
        return None  # a school's back-channel logout has no browser to answer through
