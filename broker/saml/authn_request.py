"""Reading a publisher's AuthnRequest: the SAML front's way in.

An AuthnRequest (Redirect or POST binding) is checked (known service, signature where its
metadata asks for one, freshness, Destination, ACS URL from metadata, what the broker never
does) and read into a neutral `LoginRequest`. The answers are built in front.py.
"""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import replace
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.mdstore import UnknownSystemEntity
from saml2.response import IncorrectlySigned
from saml2.s_utils import OtherError, UnknownPrincipal, UnsupportedBinding, VersionMismatch
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT, NAMEID_FORMAT_UNSPECIFIED
from saml2.server import Server
from saml2.sigver import SignatureError
from saml2.time_util import str_to_time
from saml2.validate import NotValid

from broker.config import Settings
from broker.core.assurance import EXACT
from broker.core.catalogue import canonical_name_for
from broker.core.errors import (
    AssuranceNotMet,
    InvalidMessage,
    UnknownService,
    UnsupportedRequest,
)
from broker.core.model import School, Service
from broker.core.ports import RegistryReader
from broker.core.shared_idp import is_shared_idp
from broker.login.login_model import IdpEntry, LoginRequest
from broker.saml import firewall
from broker.saml.entities import SamlEntities
from broker.saml.front import (
    MAX_RELAY_STATE,
    STATUS_INVALID_NAMEID_POLICY,
    STATUS_NO_AUTHN_CONTEXT,
    STATUS_PROXY_COUNT_EXCEEDED,
    STATUS_REQUEST_UNSUPPORTED,
    AnswerableRefusal,
)
from broker.saml.publisher_encryption import EncryptionUnusable
from broker.saml.redirect_query import SAML_REQUEST, SIGNATURE, RedirectQuery
from broker.saml.redirect_signature import check_redirect_signature
from broker.saml.response_checks import check_parsed_issuer, issuer_of
from broker.saml.service_acs import ACS_NOT_IN_METADATA, check_acs_scheme, post_acs_endpoints

log = logging.getLogger(__name__)

ACCEPTED_NAME_ID_FORMATS = (
    NAMEID_FORMAT_PERSISTENT,
    NAMEID_FORMAT_UNSPECIFIED,
    NAMEID_FORMAT_TRANSIENT,
)


def _in_metadata(server: Server, entity_id: str) -> bool:
    try:
        server.metadata[entity_id]
    except KeyError:
        return False
    return True


class AuthnRequestReader:
    def __init__(
        self, settings: Settings, registry: RegistryReader, entities: SamlEntities
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.entities = entities

    def parse_authn_request(
        self,
        binding: str,
        saml_request: str,
        relay_state: str | None,
        query: RedirectQuery | None = None,
    ) -> LoginRequest:
        """`query`: with the Redirect binding, the query as received (redirect_query.py), of
        which `saml_request` and `relay_state` are the decoded values."""
        if relay_state is not None and len(relay_state.encode()) > MAX_RELAY_STATE:
            raise InvalidMessage("RelayState over the cap", code="relay_state_too_long")
        if binding == BINDING_HTTP_REDIRECT:
            xml = firewall.inflate_redirect(saml_request)
        else:
            xml = firewall.decode_post(saml_request)
        doc = firewall.inspect(xml, root="AuthnRequest", assertions=0)
        claimed = issuer_of(doc)
        # The service is looked up before pysaml2 parses anything: an unknown sender costs no
        # more work, and a service registered a moment ago moves the worker's registry view
        # on, so the entities below already know its metadata.
        service = self.registry.service_by_entity_id(claimed)
        server = self.entities.server
        if service is None or not _in_metadata(server, claimed):
            raise UnknownService("AuthnRequest from an entity not in the registry")
        issuer = claimed
        try:
            parsed = server.parse_authn_request(saml_request, binding)
        except IncorrectlySigned:
            # A POST signature that does not verify with the service's metadata keys.
            raise InvalidMessage("AuthnRequest signature invalid", code="bad_signature") from None
        except OtherError:
            # pysaml2 raises this (only) for a Destination that is not our SSO endpoint.
            raise InvalidMessage(
                "AuthnRequest for another Destination", code="wrong_destination"
            ) from None
        except (SignatureError, UnknownPrincipal, UnsupportedBinding, VersionMismatch) as err:
            raise InvalidMessage(f"AuthnRequest refused: {type(err).__name__}") from None
        except (ValueError, KeyError, TypeError, AttributeError, NotValid) as err:
            # NotValid: pysaml2's schema check (a malformed time, boolean or index).
            raise InvalidMessage(f"AuthnRequest unreadable: {type(err).__name__}") from None
        if parsed is None:
            raise InvalidMessage("AuthnRequest refused by the parser")
        message: samlp.AuthnRequest = parsed.message
        check_parsed_issuer(message, issuer)  # the keys pysaml2 verified with are the issuer's
        query = query if binding == BINDING_HTTP_REDIRECT else None
        self._check_signature(server, issuer, binding, message, (saml_request, relay_state), query)
        query_signed = query is not None and query.has(SIGNATURE)
        self._check_fresh_and_addressed(message, signed=query_signed or bool(message.signature))
        acs_url, index_known = self._acs_url(server, issuer, message)
        check_acs_scheme(issuer, acs_url)
        front = {
            "protocol": "saml",
            "request_id": message.id,
            "acs_url": acs_url,
            "relay_state": relay_state or "",
            "sp_entity_id": issuer,
            "name_id_format": "",
        }
        if is_true(message.is_passive):
            # Before any refusal below: a passive request's refusal goes back to the service at
            # once, never as a page (core 3.4.1: the IdP must not visibly take control).
            front["is_passive"] = "1"
        request = LoginRequest(
            service_id=service.id, force_authn=is_true(message.force_authn), front=front
        )
        request = self._with_scoping(message, request)
        # From here the request is trusted and its ACS URL is the service's own: every refusal
        # is a signed SAML status sent there (AnswerableRefusal), not a bare error page.
        _check_acs_index(request, known=index_known)
        self._check_supported(message, request)
        self._check_encryption(issuer, service, request)
        name_id_format = self._name_id_format(message, issuer)
        if name_id_format is None:
            raise AnswerableRefusal(
                InvalidMessage("NameID format not offered", code="invalid_nameid_policy"),
                request,
                STATUS_INVALID_NAMEID_POLICY,
            )
        front["name_id_format"] = name_id_format
        proxy_count = _proxy_count(message)
        request = replace(
            request,
            requested=self._requested(server, issuer, message, request),
            # Passed on to a SAML school less one (core 3.4.1.5.1: "MUST ... one less"); 0 was
            # refused above.
            proxy_count=None if proxy_count is None else proxy_count - 1,
        )
        return self._with_assurance(request, message)

    def _with_scoping(self, message: samlp.AuthnRequest, request: LoginRequest) -> LoginRequest:
        """`request` with what the service's IDPList says: the school it names (its hint and
        choices) and the list itself, to pass on. Its length is checked first, before its
        entries are looked up in the registry one by one."""
        _check_idp_list_length(message, request)
        hint, choices = self._school_hint(message)
        idp_list, get_complete = _idp_list(message)
        return replace(
            request,
            school_hint=hint,
            school_choices=choices,
            idp_list=idp_list,
            idp_list_get_complete=get_complete,
        )

    @staticmethod
    def _check_supported(message: samlp.AuthnRequest, request: LoginRequest) -> None:
        """What the broker never does, answered at once: the student could not change it."""
        if message.subject is not None:
            # Core 3.4.1: the assertion would have to be about that subject. The broker keeps
            # no accounts to match one against, and proves nothing about who a student is
            # beyond what the school says now.
            raise AnswerableRefusal(
                UnsupportedRequest("AuthnRequest names a Subject", code="subject_unsupported"),
                request,
                STATUS_REQUEST_UNSUPPORTED,
                at_once=True,
            )
        # Core 3.4.1.5.1: ProxyCount 0 forbids proxying, and every login here is proxied to the
        # school (the broker authenticates no one itself, an SSO session included).
        if _proxy_count(message) == 0:
            raise AnswerableRefusal(
                UnsupportedRequest("ProxyCount 0", code="proxy_count_exceeded"),
                request,
                STATUS_PROXY_COUNT_EXCEEDED,
                at_once=True,
            )

    def _check_encryption(self, issuer: str, service: Service, request: LoginRequest) -> None:
        """A service that asked for encrypted assertions in a way the broker cannot meet (a
        key too small, only CBC listed: publisher_encryption.py) hears so before the student
        is sent to a school: it would never get a readable assertion instead. Unless the
        operator set its assertion encryption `off`: then it is sent signed assertions, and
        its key is never used."""
        try:
            self.entities.publisher_encryption(issuer, service.assertion_encryption)
        except EncryptionUnusable as err:
            log.warning("refused service=%s code=%s: %s", issuer, err.code, err.detail)
            raise AnswerableRefusal(err, request, STATUS_REQUEST_UNSUPPORTED) from None

    def _with_assurance(self, request: LoginRequest, message: samlp.AuthnRequest) -> LoginRequest:
        """RequestedAuthnContext as the assurance levels that answer it (assurance.py).

        `Comparison` is judged on the configured order of the levels: `minimum` PPT accepts an
        MFA login. The class references the service named are kept, so that the assertion
        names one of them when the school's level has one (`exact` means that reference)."""
        requested = message.requested_authn_context
        if requested is None:
            return request
        if not requested.authn_context_class_ref:
            # Declarations only (AuthnContextDeclRef): the broker has none to hold a school's
            # login against, so the requirement cannot be met (core 3.3.2.2.1), and ignoring
            # it would claim a login the service did not accept.
            raise AnswerableRefusal(
                AssuranceNotMet("authentication context declarations are not supported"),
                request,
                STATUS_NO_AUTHN_CONTEXT,
            )
        assurance = self.settings.assurance
        references = [ref.text.strip() for ref in requested.authn_context_class_ref if ref.text]
        comparison = requested.comparison or EXACT
        levels = assurance.acceptable(assurance.from_saml(references), comparison)
        if not levels:
            raise AnswerableRefusal(
                AssuranceNotMet("no known level answers the requested contexts"),
                request,
                STATUS_NO_AUTHN_CONTEXT,
            )
        named = dict.fromkeys(ref for ref in references if assurance.level_of(ref) is not None)
        front = {**request.front, "authn_contexts": " ".join(named)}
        return replace(request, acr=levels, acr_required=True, front=front)

    def _check_signature(
        self,
        server: Server,
        issuer: str,
        binding: str,
        message: samlp.AuthnRequest,
        received: tuple[str, str | None],
        query: RedirectQuery | None,
    ) -> None:
        """`received`: (SAMLRequest, RelayState) as decoded from the message's binding."""
        descriptors = server.metadata[issuer].get("spsso_descriptor", [])
        must_sign = any(is_true(d.get("authn_requests_signed")) for d in descriptors)
        if binding == BINDING_HTTP_REDIRECT:
            if (query is None or not query.has(SIGNATURE)) and not must_sign:
                return
            check_redirect_signature(
                server, issuer, "spsso", (SAML_REQUEST, received[0]), received[1], query
            )
        elif must_sign and message.signature is None:
            # A present POST signature was verified by pysaml2 against the metadata keys.
            raise InvalidMessage("unsigned AuthnRequest", code="request_unsigned")

    def _check_fresh_and_addressed(self, message: samlp.AuthnRequest, *, signed: bool) -> None:
        """pysaml2 computes but ignores a stale IssueInstant, and checks Destination only when
        present; an old captured request must not start a login, and a signed request must say
        where it is going (SAML bindings 3.4.5.2, 3.5.5.2)."""
        try:
            issued = calendar.timegm(str_to_time(message.issue_instant))
        except (TypeError, ValueError):
            raise InvalidMessage(
                "AuthnRequest without a valid IssueInstant", code="stale_request"
            ) from None
        now = time.time()
        skew = self.settings.saml.clock_skew_seconds
        if not now - self.settings.login_ttl_seconds - skew <= issued <= now + skew:
            raise InvalidMessage(
                "AuthnRequest issued outside the accepted window", code="stale_request"
            )
        if signed and not message.destination:
            raise InvalidMessage(
                "signed AuthnRequest without Destination", code="wrong_destination"
            )

    def acs_urls(self, entity_id: str) -> list[str]:
        """The service's HTTP-POST ACS URLs in its metadata, the default first (what an
        AuthnRequest naming none is answered at); none when it has none, or left the
        registry. The addresses of it the broker may link to."""
        try:
            endpoints = post_acs_endpoints(self.entities.server, entity_id)
        except UnknownService:
            return []
        if not endpoints:
            return []
        default = _default_location(endpoints)
        return [default, *(str(e["location"]) for e in endpoints if e["location"] != default)]

    def _acs_url(
        self, server: Server, issuer: str, message: samlp.AuthnRequest
    ) -> tuple[str, bool]:
        """The ACS URL the request is answered at, and whether the index it names (if any) is
        in the metadata: if not, the default ACS, for the error the caller answers with."""
        binding = message.protocol_binding
        if binding is not None and binding != BINDING_HTTP_POST:
            # The broker answers by HTTP-POST only; answering an Artifact request by POST would
            # hand the service a message it did not ask for.
            raise InvalidMessage("ProtocolBinding other than HTTP-POST", code="unsupported_binding")
        endpoints = post_acs_endpoints(server, issuer)
        locations = [e["location"] for e in endpoints]
        if not locations:
            raise InvalidMessage("service has no HTTP-POST ACS in metadata", code="acs_unknown")
        if message.assertion_consumer_service_url:
            # Exact match only: `<acs>-evil` or a javascript: URL is not in metadata.
            if message.assertion_consumer_service_url not in locations:
                # Never an answer to an address the request chose (an attacker's, perhaps).
                raise InvalidMessage("ACS URL not in metadata", code=ACS_NOT_IN_METADATA)
            return str(message.assertion_consumer_service_url), True
        if message.assertion_consumer_service_index is not None:
            for endpoint in endpoints:
                if str(endpoint.get("index")) == str(message.assertion_consumer_service_index):
                    return str(endpoint["location"]), True
            return _default_location(endpoints), False
        return _default_location(endpoints), True

    @staticmethod
    def _requested(
        server: Server, issuer: str, message: samlp.AuthnRequest, request: LoginRequest
    ) -> frozenset[str] | None:
        """What the service asks for in its metadata's AttributeConsumingService (the one the
        request names by index, else all of them); None when it asks for nothing there.

        The release never exceeds the service's declaration; this only lets a service leave
        out what it does not need for this login."""
        index = message.attribute_consuming_service_index
        wanted = server.metadata.attribute_requirement(issuer, index)
        attributes = wanted.get("required", []) + wanted.get("optional", [])
        if index is not None and not attributes:
            # An index the metadata does not have must not switch the narrowing off.
            raise AnswerableRefusal(
                InvalidMessage(
                    "AttributeConsumingServiceIndex not in metadata",
                    code="attribute_service_unknown",
                ),
                request,
                STATUS_REQUEST_UNSUPPORTED,
            )
        if not attributes:
            return None
        names = {
            canonical_name_for(a.get("name", ""))
            or canonical_name_for(a.get("friendly_name") or "")
            for a in attributes
        }
        return frozenset(name for name in names if name)

    def _school_hint(self, message: samlp.AuthnRequest) -> tuple[str | None, tuple[str, ...]]:
        """The school the service's `Scoping/IDPList` names, or the schools: its first entry
        whose ProviderID is a registered IdP that can serve decides (else the first registered
        one, whose failure the student then sees, with the ways on). An IdP several schools
        share (a school board's) names no single school: the login is kept to its schools (an
        SSO session of another school does not answer; the student chooses among them on the
        discovery page), and the login through it must name the chosen one
        (core/shared_idp.py). (None, ()): no IdP named, any school."""
        scoping = message.scoping
        if scoping is None or scoping.idp_list is None:
            return None, ()
        # A SAML school whose metadata the broker does not hold cannot serve: a later entry
        # that can is taken instead. Only when none can does the first decide, and its page
        # offers the school choice and "Back to <platform>" (NoAvailableIDP: the profile's
        # "none of the supported identity providers are available").
        chosen: tuple[School, ...] | None = None
        for entry in scoping.idp_list.idp_entry:
            schools = self.registry.schools_by_idp(entry.provider_id or "")
            if not schools:
                continue
            if self._can_sign_in(schools[0]):
                chosen = schools
                break
            chosen = chosen or schools
        if chosen is None:
            return None, ()
        if is_shared_idp(chosen):
            return None, tuple(school.id for school in chosen)
        return chosen[0].id, ()

    def _can_sign_in(self, school: School) -> bool:
        """Whether a request can be sent to `school`'s IdP as far as metadata tells, without a
        network call: an OpenID Connect school is taken to (its provider is asked only when
        the student goes there), a SAML one needs a Redirect SSO endpoint in metadata."""
        if school.oidc is not None:
            return True
        metadata = self.entities.client.metadata
        try:
            found = metadata.single_sign_on_service(school.idp_entity_id, BINDING_HTTP_REDIRECT)
        except (UnknownPrincipal, UnknownSystemEntity):
            return False
        return bool(found)

    @staticmethod
    def _name_id_format(message: samlp.AuthnRequest, issuer: str) -> str | None:
        """The NameID format to answer with, or None when the policy cannot be met."""
        policy = message.name_id_policy
        if policy is not None and policy.sp_name_qualifier not in (None, "", issuer):
            # Core 3.4.1.1: an identifier in another service's (or an affiliation's) namespace.
            # The broker makes identifiers for the requester only; answering with its own
            # would be a NameID qualified otherwise than the policy asked.
            return None
        requested = (
            policy.format if policy is not None and policy.format else NAMEID_FORMAT_PERSISTENT
        )
        return requested if requested in ACCEPTED_NAME_ID_FORMATS else None


# The most IDPEntry elements a service's IDPList may hold (they all go on to the school).
MAX_IDP_ENTRIES = 100


def is_true(value: object) -> bool:
    """An xs:boolean as pysaml2 hands it over (the text as written, or a bool): "1" is true
    as much as "true" is. Metadata that says AuthnRequestsSigned="1" asks for signed
    requests (until 2026-11-30 only "true" was read as true there and for isDefault)."""
    return value is True or value in ("true", "1")


def _check_acs_index(request: LoginRequest, *, known: bool) -> None:
    """Core 3.4.1: for an AssertionConsumerServiceIndex it does not know (`known` False), the
    IdP "MAY return an error <Response> or it MAY use the default location". An error, so that
    the service hears its request is wrong, sent to the default ACS of its metadata (the
    request's `acs_url` is that one then): the one address of the answer no request chooses.
    The request's signature was checked before (`_check_signature`: a service that must sign
    and did not, or signed with another key, is refused with a page and gets nothing); a
    service that need not sign may receive an error to a request it did not send, at its own
    ACS, which carries no assertion and names an InResponseTo it does not know."""
    if not known:
        raise AnswerableRefusal(
            InvalidMessage("ACS index not in metadata", code="acs_index_unknown"),
            request,
            STATUS_REQUEST_UNSUPPORTED,
        )


def _proxy_count(message: samlp.AuthnRequest) -> int | None:
    """The request's `Scoping ProxyCount`, or None when it sets no limit. The schema check made
    it a non-negative integer."""
    scoping = message.scoping
    if scoping is None or scoping.proxy_count is None:
        return None
    return int(str(scoping.proxy_count))


def _check_idp_list_length(message: samlp.AuthnRequest, request: LoginRequest) -> None:
    """An IDPList is passed on whole or not at all (core 3.4.1.5.1: none removed), in the
    school's Redirect URL and the sealed login record, and each entry is looked up in the
    registry: a bound for all three, far above a real list, answered at once."""
    scoping = message.scoping
    if (
        scoping is not None
        and scoping.idp_list is not None
        and len(scoping.idp_list.idp_entry) > MAX_IDP_ENTRIES
    ):
        raise AnswerableRefusal(
            UnsupportedRequest("IDPList too long", code="idp_list_too_long"),
            request,
            STATUS_REQUEST_UNSUPPORTED,
            at_once=True,
        )


def _idp_list(message: samlp.AuthnRequest) -> tuple[tuple[IdpEntry, ...], str | None]:
    """The request's `Scoping/IDPList` entries and GetComplete, as sent, for the school's
    request (core 3.4.1.5.1). The schema check made each ProviderID and Loc an anyURI."""
    scoping = message.scoping
    if scoping is None or scoping.idp_list is None:
        return (), None
    listed = scoping.idp_list
    complete = (listed.get_complete.text or "").strip() if listed.get_complete is not None else ""
    entries = tuple(
        IdpEntry(str(entry.provider_id), entry.name, entry.loc) for entry in listed.idp_entry
    )
    return entries, complete or None


def _default_location(endpoints: list[dict[str, Any]]) -> str:
    """The endpoint marked default, else the first (SAML Metadata 2.2.3); `endpoints` is not
    empty."""
    defaults = [e["location"] for e in endpoints if is_true(e.get("is_default"))]
    return str((defaults or [e["location"] for e in endpoints])[0])
