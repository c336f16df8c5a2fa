"""SAML Single Logout: the broker's logout channels (login/logout.py) in SAML.

Towards publishers (the broker as IdP): a service with a SingleLogoutService in its metadata
hears of a logout by a signed LogoutRequest carried by an iframe of the propagation page; its
LogoutResponse comes back to the IdP's SLO endpoint and is matched by InResponseTo. A service
whose metadata lists a SOAP endpoint gets the same LogoutRequest server to server
(logout_soap.py): alone; instead of the iframe when no browser is there to carry the message;
and as well as the iframe in a logout with a browser, which may send the iframe without the
service's cookie (login/logout.py). A service
that started the run gets a signed LogoutResponse: Success, or Success/PartialLogout when some
other service or the school did not confirm.

Towards schools (the broker as SP): the school's IdP gets a signed LogoutRequest naming the
NameID and SessionIndex it gave; a school that started the run gets a LogoutResponse.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from saml2 import BINDING_SOAP, saml

from broker.config import Settings
from broker.core.errors import InvalidMessage, UnknownSchool, UnknownService
from broker.core.model import School, Service
from broker.core.ports import RegistryReader
from broker.login.logout import (
    BACK,
    FAILED,
    FRONT,
    UNSUPPORTED,
    LogoutRun,
    Outbound,
    SingleLogout,
)
from broker.login.logout_delivery import BackChannelPost
from broker.login.participants import Participant
from broker.saml.entities import IDP_SLO_PATH, SP_SLO_PATH, SP_SOAP_SLO_PATH, SamlEntities
from broker.saml.firewall import STATUS_SUCCESS
from broker.saml.front import STATUS_REQUEST_DENIED, STATUS_RESPONDER
from broker.saml.logout_messages import (
    LOGOUT_REQUEST,
    LOGOUT_RESPONSE,
    STATUS_PARTIAL_LOGOUT,
    STATUS_REQUESTER,
    STATUS_UNKNOWN_PRINCIPAL,
    Endpoint,
    LogoutMessage,
    Outgoing,
    Received,
    firewall_logout,
    logout_request,
    logout_response,
    logout_response_message,
    read_logout,
    slo_endpoint,
)
from broker.saml.logout_soap import (
    SoapAnswerRules,
    SoapTarget,
    soap_answer,
    soap_endpoint,
    tell_by_soap,
)

log = logging.getLogger(__name__)

SPSSO = "spsso"
IDPSSO = "idpsso"
# The index under which a run files the school's answer (services count from 0).
SCHOOL_INDEX = -1


def _outbound(message: Outgoing) -> Outbound:
    return Outbound(message.url, message.fields)


@dataclass(frozen=True)
class Answer:
    """What an immediate answer to a LogoutRequest says, whichever binding carries it (the
    browser's, or the SOAP connection): a status and its second-level status."""

    status: str
    second: str | None = None


def answer_status(*, known: bool, partial: bool = False) -> Answer:
    """Success when there is nothing (left) to end, or when it was ended without a run
    (`partial`: Success/PartialLogout when not every service of it confirmed);
    Requester/UnknownPrincipal (`known` False) when the request names another session."""
    if not known:
        return Answer(STATUS_REQUESTER, STATUS_UNKNOWN_PRINCIPAL)
    return Answer(STATUS_SUCCESS, STATUS_PARTIAL_LOGOUT if partial else None)


# The answer to a checked LogoutRequest the broker could not act on (`answer_failed`).
FAILED_ANSWER = Answer(STATUS_RESPONDER, STATUS_PARTIAL_LOGOUT)
# The answer to a signed LogoutRequest over SOAP the broker refuses to act on (stale, for
# another Destination, a replay): a SAML status, as bindings 3.2.3.3 wants for the SAML
# processing's own errors (SAML core 3.2.2.2).
DENIED_ANSWER = Answer(STATUS_REQUESTER, STATUS_REQUEST_DENIED)


@dataclass(frozen=True)
class PeerLogout:
    """A checked LogoutRequest or LogoutResponse from a known peer."""

    message: LogoutMessage
    # The peer's SLO endpoint, where an answer goes (None: it has none in its metadata).
    endpoint: Endpoint | None


@dataclass(eq=False)
class _SamlLogoutSide(ABC):
    """What both faces share: answering the peer that started a run, or answering at once."""

    settings: Settings
    registry: RegistryReader
    entities: SamlEntities
    logout: SingleLogout

    @abstractmethod
    def _own(self) -> tuple[Any, str]:
        """(the pysaml2 entity that signs, its entity id)."""

    def _respond(
        self, answer: dict[str, str], status: str, second_status: str | None
    ) -> Outbound | None:
        if not answer.get("location"):
            return None
        entity, issuer = self._own()
        message = logout_response(
            entity,
            issuer,
            in_response_to=answer["request_id"],
            location=answer["location"],
            binding=answer["binding"],
            relay_state=answer.get("relay_state", ""),
            status=status,
            second_status=second_status,
        )
        return _outbound(message)

    def _read(self, received: Received, kind: str, issuer: str, role: str, path: str) -> PeerLogout:
        entity, _ = self._own()
        message = read_logout(
            entity,
            role,
            received,
            kind,
            destination=self.settings.url(path),
            max_age=self.settings.login_ttl_seconds,
            skew=self.settings.saml.clock_skew_seconds,
            # A school's unsigned answer to our LogoutRequest (Entra ID signs none) is read,
            # to be matched with our request and counted as not confirmed (saml_logout_routes).
            unsigned_answers=role == IDPSSO,
        )
        return PeerLogout(message, slo_endpoint(entity, issuer, role))

    def answer_initiator(self, run: LogoutRun) -> Outbound | None:
        partial = STATUS_PARTIAL_LOGOUT if run.partial else None
        return self._respond(run.initiator.answer, STATUS_SUCCESS, partial)

    def answer_now(self, peer: PeerLogout, *, known: bool, partial: bool = False) -> Outbound:
        """An immediate answer to a peer's LogoutRequest (`answer_status`)."""
        return required_answer(self.answer(peer, answer_status(known=known, partial=partial)))

    def answer(self, peer: PeerLogout, answer: Answer) -> Outbound | None:
        """`answer` to the peer's LogoutRequest for the browser to carry to the peer's SLO
        endpoint; None: it has none."""
        return self._respond(initiator_answer(peer), answer.status, answer.second)

    def soap_answer(self, request_id: str, answer: Answer) -> str:
        """`answer` to the LogoutRequest `request_id` that came over SOAP: a signed
        LogoutResponse in a SOAP envelope, for the HTTP response. No Destination: it goes back
        on the connection the request came on (bindings 3.2.3), not to an endpoint of the
        peer's metadata."""
        entity, issuer = self._own()
        message = logout_response_message(issuer, request_id, None, answer.status, answer.second)
        return soap_answer(entity, message)

    def answer_failed(self, peer: PeerLogout) -> Outbound | None:
        """The answer to a checked LogoutRequest the broker could not act on (the store down):
        `Responder` (the failure is the broker's, SAML core 3.2.2.2) with `PartialLogout` (the
        other services and the school were not told). Never `Success`: the session may stand
        on in the store. Made without the store, so without the replay check: a copy answered
        twice only hears twice that nothing was done. None: the peer has no SLO endpoint."""
        return self.answer(peer, FAILED_ANSWER)


def required_answer(answer: Outbound | None) -> Outbound:
    """An answer the peer must get: refused (`logout_target`) when its metadata has no SLO
    endpoint to carry it."""
    if answer is None:
        raise InvalidMessage("peer has no SLO endpoint for the answer", code="logout_target")
    return answer


@dataclass(eq=False)
class SamlServiceLogout(_SamlLogoutSide):
    """The broker as IdP: the SAML ServiceChannel, and the reading of publishers' messages.
    `post`: how it tells services over SOAP (None: it does not, and they are FRONT or
    UNSUPPORTED by their other endpoints)."""

    post: BackChannelPost | None = None

    def _own(self) -> tuple[Any, str]:
        return self.entities.server, self.settings.idp_entity_id

    # -- ServiceChannel --------------------------------------------------------------------------
    def _endpoint(self, participant: Participant) -> Endpoint | None:
        entity_id = participant.handles.get("sp_entity_id", "")
        return slo_endpoint(self.entities.server, entity_id, SPSSO) if entity_id else None

    def _soap(self, participant: Participant) -> tuple[BackChannelPost, SoapTarget] | None:
        """How to send the service a LogoutRequest over SOAP, and where; None: it takes none
        (or the broker was given no way to send one)."""
        entity_id = participant.handles.get("sp_entity_id", "")
        if self.post is None or not entity_id:
            return None
        endpoint = soap_endpoint(self.entities.server, entity_id)
        if endpoint is None:
            return None
        return self.post, SoapTarget(participant.service_id, entity_id, endpoint)

    def mode(self, participant: Participant) -> str:
        """FRONT when a browser can carry the message; a service that takes it over SOAP alone
        is told server to server (BACK)."""
        if self._endpoint(participant) is not None:
            return FRONT
        return BACK if self._soap(participant) is not None else UNSUPPORTED

    def can_be_told_server_to_server(self, participant: Participant) -> bool:
        return self._soap(participant) is not None

    def front_origin(self, participant: Participant) -> str:
        endpoint = self._endpoint(participant)
        return endpoint.origin if endpoint is not None else ""

    def back_channel(self, participant: Participant, timeout: float) -> str:
        soap = self._soap(participant)
        if soap is None:
            return FAILED
        post, target = soap
        rules = SoapAnswerRules(
            self.settings.url(IDP_SLO_PATH),
            self.settings.login_ttl_seconds,
            self.settings.saml.clock_skew_seconds,
        )
        return tell_by_soap(
            self.entities.server,
            post,
            target,
            issuer=self.settings.idp_entity_id,
            name_id=self._name_id(participant),
            session_index=participant.handles.get("session_index", ""),
            rules=rules,
            timeout=timeout,
        )

    def _name_id(self, participant: Participant) -> saml.NameID:
        """Exactly the NameID of the assertion, qualifiers included: a service may find its
        session by the whole element (SimpleSAMLphp's store hashes it). A session recorded
        before the handles kept `name_qualifier` had the IdP entity id there, as every
        assertion of the broker has."""
        handles = participant.handles
        return saml.NameID(
            text=handles.get("name_id", ""),
            format=handles.get("name_id_format") or None,
            name_qualifier=handles.get("name_qualifier") or self.settings.idp_entity_id,
            sp_name_qualifier=handles.get("sp_name_qualifier") or None,
        )

    def front_channel(self, run_id: str, index: int, participant: Participant) -> Outbound:
        endpoint = self._endpoint(participant)
        if endpoint is None:
            raise InvalidMessage("service has no SLO endpoint any more", code="logout_target")
        message = logout_request(
            self.entities.server,
            self.settings.idp_entity_id,
            endpoint,
            name_id=self._name_id(participant),
            session_index=participant.handles.get("session_index", ""),
        )
        self.logout.expect_answer(message.message_id, run_id, index, participant.service_id)
        return _outbound(message)

    # -- in --------------------------------------------------------------------------------------
    def read(self, received: Received, kind: str) -> tuple[Service, PeerLogout]:
        """A publisher's LogoutRequest or LogoutResponse at the IdP's SLO endpoint."""
        _, claimed = firewall_logout(received, kind)
        service = self.registry.service_by_entity_id(claimed)
        if service is None or not _known(self.entities.server, claimed):
            raise UnknownService(f"{kind} from an entity not in the registry")
        return service, self._read(received, kind, claimed, SPSSO, IDP_SLO_PATH)


@dataclass(eq=False)
class SamlSchoolLogout(_SamlLogoutSide):
    """The broker as SP: the SAML SchoolChannel, and the reading of schools' messages."""

    def _own(self) -> tuple[Any, str]:
        return self.entities.client, self.settings.sp_entity_id

    def request(self, run: LogoutRun) -> Outbound | None:
        school = self.registry.school(run.school_id)
        upstream = run.upstream
        if school is None or not upstream.get("name_id"):
            return None
        endpoint = slo_endpoint(self.entities.client, school.idp_entity_id, IDPSSO)
        if endpoint is None:
            return None
        name_id = saml.NameID(
            text=upstream["name_id"],
            format=upstream.get("name_id_format") or None,
            name_qualifier=upstream.get("name_qualifier") or None,
            sp_name_qualifier=upstream.get("sp_name_qualifier") or None,
        )
        message = logout_request(
            self.entities.client,
            self.settings.sp_entity_id,
            endpoint,
            name_id=name_id,
            session_index=upstream.get("session_index", ""),
        )
        self.logout.expect_answer(message.message_id, run.run_id, SCHOOL_INDEX, school.id)
        return _outbound(message)

    def read(self, received: Received, kind: str) -> tuple[SchoolIdp, PeerLogout]:
        """A school's LogoutRequest or LogoutResponse at the SP's SLO endpoint, with the schools
        its IdP serves: one, or several for a school board's IdP. Which of them it concerns is
        the session's or the run's school (the caller matches on it), never a guess here.
        A LogoutRequest taken out of a SOAP envelope (`received.binding` SOAP, its value
        base64 as over POST) must name the SOAP endpoint as its Destination."""
        _, claimed = firewall_logout(received, kind)
        schools = self.registry.schools_by_idp(claimed)
        saml_schools = tuple(school for school in schools if school.oidc is None)
        if not saml_schools or not _known(self.entities.client, claimed):
            raise UnknownSchool(f"{kind} from an IdP not in the registry")
        path = SP_SOAP_SLO_PATH if received.binding == BINDING_SOAP else SP_SLO_PATH
        peer = self._read(received, kind, claimed, IDPSSO, path)
        return SchoolIdp(claimed, saml_schools), peer


@dataclass(frozen=True)
class SchoolIdp:
    """A school IdP a logout message came from, and every school registered with it."""

    entity_id: str
    schools: tuple[School, ...]

    def school(self, school_id: str) -> School | None:
        """The school `school_id` (a session's, a run's) if this IdP is its IdP; else None."""
        return next((school for school in self.schools if school.id == school_id), None)

    @property
    def name(self) -> str:
        """What the answer page calls the IdP: its school's name, or none for a shared IdP
        (no one school is the IdP)."""
        return self.schools[0].name if len(self.schools) == 1 else ""


def initiator_answer(peer: PeerLogout) -> dict[str, str]:
    """What a run keeps to answer the peer that started it."""
    endpoint = peer.endpoint
    return {
        "request_id": peer.message.message_id,
        "location": endpoint.response_location if endpoint else "",
        "binding": endpoint.binding if endpoint else "",
        "relay_state": peer.message.relay_state,
    }


def _known(entity: object, entity_id: str) -> bool:
    try:
        entity.metadata[entity_id]  # type: ignore[attr-defined]
    except KeyError:
        return False
    return True


__all__ = [
    "LOGOUT_REQUEST",
    "LOGOUT_RESPONSE",
    "PeerLogout",
    "Received",
    "SamlSchoolLogout",
    "SamlServiceLogout",
    "SchoolIdp",
    "initiator_answer",
]
