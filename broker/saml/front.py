"""The SAML front: the broker as identity provider towards publishers' services, its answers.

A completed login → a signed Response to the service's ACS URL from its metadata, its assertion
encrypted when the service's metadata publishes an encryption key; a refusal →
a signed error Response there (`AnswerableRefusal` carries the SAML status). The SAML statuses
it answers with are named here. The way in, an AuthnRequest read into a neutral `LoginRequest`,
is authn_request.py.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from datetime import UTC, datetime

from saml2.saml import NAMEID_FORMAT_TRANSIENT

from broker.config import Settings
from broker.core.assurance import UNSPECIFIED
from broker.core.catalogue import CATALOGUE, OID_FORMAT, PAIRWISE_ID, PREVIOUS_PSEUDONYM
from broker.core.errors import BrokerError
from broker.core.model import Service
from broker.login.login_model import Completion, LoginRequest
from broker.login.post_message import PostMessage
from broker.saml.entities import SamlEntities
from broker.saml.response_builder import (
    AssertionContent,
    SamlAttribute,
    signed_error_response,
    signed_response,
)
from broker.saml.service_acs import check_acs_in_force

MAX_RELAY_STATE = 1024
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
STATUS_REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
STATUS_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
STATUS_AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
STATUS_NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
STATUS_REQUEST_UNSUPPORTED = "urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"
STATUS_PROXY_COUNT_EXCEEDED = "urn:oasis:names:tc:SAML:2.0:status:ProxyCountExceeded"
# Core 3.2.2.2: "none of the supported identity providers are available" (an intermediary's).
STATUS_NO_AVAILABLE_IDP = "urn:oasis:names:tc:SAML:2.0:status:NoAvailableIDP"
# Second-level statuses that say the request asked for something wrong: `Requester` above them;
# every other one is the broker's (or the school's) answer: `Responder` (SAML core 3.2.2.2).
REQUESTER_STATUSES = frozenset({STATUS_INVALID_NAMEID_POLICY, STATUS_REQUEST_UNSUPPORTED})


class AnswerableRefusal(BrokerError):
    """A valid request we refuse: the service gets a SAML error status, the student a page.

    `at_once`: the service gets it by auto-POST without a page (as a passive request's refusal
    always does), for what the student could do nothing about: the request itself asks for
    something the broker never does."""

    def __init__(
        self, cause: BrokerError, request: LoginRequest, status: str, *, at_once: bool = False
    ) -> None:
        super().__init__(cause.detail, code=cause.code)
        self.status = cause.status
        self.public_message = cause.public_message
        self.cause = cause
        self.request = request
        self.saml_status = status
        self.at_once = at_once


class SamlFront:
    def __init__(self, settings: Settings, entities: SamlEntities) -> None:
        self.settings = settings
        self.entities = entities

    def _authn_context(self, completion: Completion) -> str:
        """The school's answer in SAML: its level's class reference (the service's own choice
        of it when it named one), else the school's own value when that was SAML already,
        else `unspecified`: the broker does not claim a way of logging in it was not told."""
        assurance = self.settings.assurance
        level = completion.assurance_level
        if level is not None:
            named = completion.request.front.get("authn_contexts", "").split()
            for reference in named:
                if assurance.level_of(reference) == level:
                    return reference
            first = assurance.saml_reference(level)
            if first is not None:
                return first
        if completion.school.oidc is None and completion.authn_context:
            return completion.authn_context
        return UNSPECIFIED

    def response_for(self, completion: Completion, session_index: str) -> PostMessage:
        front = completion.request.front
        service = completion.service
        acs_url = self._acs_in_force(front)
        release = completion.release
        name_id_format = front["name_id_format"]
        # A transient NameID is fresh per login; the pseudonym then travels in pairwise-id only.
        name_id = (
            "_" + secrets.token_hex(20)
            if name_id_format == NAMEID_FORMAT_TRANSIENT
            else release.pseudonym
        )
        attributes = [
            SamlAttribute(
                PAIRWISE_ID,
                OID_FORMAT,
                "pairwise-id",
                (f"{release.pseudonym}@{self.settings.scope}",),
            )
        ]
        if release.previous_pseudonym:
            attributes.append(
                SamlAttribute(PREVIOUS_PSEUDONYM, OID_FORMAT, None, (release.previous_pseudonym,))
            )
        attributes.extend(self._released(service, release.attributes))
        content = AssertionContent(
            issuer=self.settings.idp_entity_id,
            audience=front["sp_entity_id"],
            destination=acs_url,
            in_response_to=front["request_id"],
            name_id=name_id,
            name_id_format=name_id_format,
            sp_name_qualifier=front["sp_entity_id"],
            attributes=tuple(attributes),
            authn_instant=datetime.fromtimestamp(completion.authn_instant, UTC),
            authn_context=self._authn_context(completion),
            session_index=session_index,
            authorities=completion.authorities,
            session_not_on_or_after=(
                None
                if completion.session_ends is None
                else datetime.fromtimestamp(completion.session_ends, UTC)
            ),
        )
        # Read again at the answer (the request checked it already): metadata that changed
        # meanwhile decides, and a service that asked for encryption never gets a readable
        # assertion (EncryptionUnusable ends the login with a page instead) unless the operator
        # set its assertion encryption `off` (the service as the worker's view holds it now).
        encryption = self.entities.publisher_encryption(
            front["sp_entity_id"], service.assertion_encryption
        )
        xml = signed_response(
            self.entities.server.sec,
            content,
            datetime.now(UTC),
            self.settings.saml.assertion_lifetime_seconds,
            self.settings.saml.clock_skew_seconds,
            encryption,
        )
        message = self._post(front, acs_url, xml)
        # The NameID as the assertion carries it, qualifiers included: a logout must name it
        # exactly so (a service may look its session up by the whole element).
        handles = {
            "name_id": name_id,
            "name_id_format": name_id_format,
            "name_qualifier": content.issuer,
            "sp_name_qualifier": content.sp_name_qualifier,
            "session_index": session_index,
            "sp_entity_id": front["sp_entity_id"],
        }
        return replace(message, logout_handles=handles)

    @staticmethod
    def _released(service: Service, released: dict[str, tuple[str, ...]]) -> list[SamlAttribute]:
        out = []
        for canonical, values in released.items():
            name, name_format, friendly = CATALOGUE[canonical].saml_name(service.naming.value)
            out.append(SamlAttribute(name, name_format, friendly, values))
        return out

    def error_for(self, request: LoginRequest, status: str, message: str) -> PostMessage:
        """A signed error Response: Requester/Responder at the top, the specific status below."""
        front = request.front
        acs_url = self._acs_in_force(front)
        top = STATUS_REQUESTER if status in REQUESTER_STATUSES else STATUS_RESPONDER
        xml = signed_error_response(
            self.entities.server.sec,
            issuer=self.settings.idp_entity_id,
            destination=acs_url,
            in_response_to=front["request_id"],
            top_status=top,
            status=status,
            message=message,
            now=datetime.now(UTC),
        )
        return self._post(front, acs_url, xml)

    def _acs_in_force(self, front: dict[str, str]) -> str:
        """The login's ACS URL, checked again against the service's metadata as the Server
        holds it now: one that left it since the request (service_acs.py) gets nothing, the
        login ends with the student's page. An indexed lookup, no parse."""
        return check_acs_in_force(self.entities.server, front["sp_entity_id"], front["acs_url"])

    @staticmethod
    def _post(front: dict[str, str], acs_url: str, xml: str) -> PostMessage:
        fields = {"SAMLResponse": base64.b64encode(xml.encode()).decode()}
        if front.get("relay_state"):
            # Echoed byte-exact (only UTF-8 text is accepted: web/relay_state.py), never used
            # as a redirect target.
            fields["RelayState"] = front["relay_state"]
        return PostMessage(acs_url, fields)
