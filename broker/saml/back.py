"""The SAML back: the broker as service provider towards schools' identity providers.

Out: an AuthnRequest to the chosen school's IdP (Redirect binding, signed).
In: the school's Response at our ACS → a neutral `UpstreamIdentity`, after every check of
security.md: firewall, signature from the issuer's own metadata keys, issuer = the school the
student chose, audience, recipient, time window, InResponseTo, and (by the caller) replay.

An identity is read by one reader only, the broker's own (assertion_reader.py), from every
Response with status Success, plain or with an assertion the broker decrypted itself
(encrypted_assertion.py). pysaml2 sees only error statuses, which carry no assertion: it names
the status, and nothing it returns is ever read (`_refuse_status`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.mdstore import UnknownSystemEntity
from saml2.response import (
    IncorrectlySigned,
    StatusError,
    StatusNoAuthnContext,
    UnsolicitedResponse,
)
from saml2.s_utils import UnknownPrincipal, UnsupportedBinding
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.sigver import SignatureError, SigverError
from saml2.validate import ResponseLifetimeExceed, ToEarly

from broker.core.assurance import (
    ASK_NOTHING,
    AUTHN_METHODS_REFERENCES,
    Assurance,
    SchoolContexts,
)
from broker.core.catalogue import canonical_name_for
from broker.core.endpoints import is_acceptable_endpoint
from broker.core.errors import (
    AnswerTimeRefused,
    AssuranceNotMet,
    InvalidMessage,
    NameIdIsAddress,
    NameIdNotPersistent,
    SchoolAnswerOutOfTime,
    SchoolRefused,
    SchoolSaid,
    SchoolSsoNotHttps,
    UnsignedSchoolRefusal,
    UpstreamFailure,
)
from broker.core.model import School, UpstreamIdentity
from broker.core.origins import written_origin
from broker.core.ports import RegistryReader
from broker.core.subjects import name_id_is_address
from broker.login.login_model import IdpEntry
from broker.login.school_values import (
    accepted_values,
    check_asserted_school,
    school_must_be_named,
)
from broker.saml import assertion_reader, encrypted_assertion, firewall, schema
from broker.saml.assertion_reader import NameId, ReadResponse
from broker.saml.entities import ACS_PATH, SamlEntities
from broker.saml.firewall import status_names
from broker.saml.redirect_signature import signed_redirect_url
from broker.saml.response_checks import Expectations, check_destination, issuer_of
from broker.saml.unknown_attributes import UnknownAttributeNotes
from broker.saml.upstream_request import (
    AuthnRequestContent,
    authn_request_xml,
    deflate_and_encode,
    new_request_id,
)

log = logging.getLogger(__name__)

NAME_ID_SUBJECT = "name_id"


@dataclass(frozen=True)
class UpstreamRequest:
    request_id: str
    redirect_url: str


@dataclass(frozen=True)
class VerifiedResponse:
    identity: UpstreamIdentity
    assertion_id: str
    issued_at: float  # IssueInstant: the store epoch rule (broker/login/replay.py) needs it
    expires_at: float  # until then the broker would accept it: the replay cache keeps its id
    authn_instant: float


class SamlBack:
    def __init__(
        self,
        entities: SamlEntities,
        registry: RegistryReader,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.entities = entities
        self.registry = registry
        # What a school's answer is held to (the Response's times); a test pins it.
        self.clock = clock
        # Names of attributes the broker does not know, logged for the school's ICT officer.
        self.unknown_attributes = UnknownAttributeNotes()

    def sso_origin(self, school: School) -> str | None:
        """The origin of the school's Redirect SSO endpoint, for the discovery page's CSP."""
        try:
            destination = self.entities.client.metadata.single_sign_on_service(
                school.idp_entity_id, BINDING_HTTP_REDIRECT
            )
        except (UnknownPrincipal, UnknownSystemEntity):
            return None
        if not destination:
            return None
        return written_origin(destination[0]["location"])

    def authn_request(
        self,
        school: School,
        relay_state: str,
        *,
        force_authn: bool = False,
        authn_contexts: SchoolContexts = ASK_NOTHING,
        proxy_count: int | None = None,
        idp_list: tuple[IdpEntry, ...] = (),
        idp_list_get_complete: str | None = None,
    ) -> UpstreamRequest:
        """`authn_contexts`: the class references the school is asked for and their Comparison
        (assurance.py's `school_request`); the flow judges its answer by level. `proxy_count`:
        the service's ProxyCount less one, passed on in a Scoping (None: no limit, none sent);
        `idp_list`: the service's IDPList, passed on unchanged (core 3.4.1.5.1)."""
        client = self.entities.client
        try:
            destination = client.metadata.single_sign_on_service(
                school.idp_entity_id, BINDING_HTTP_REDIRECT
            )
        except (UnknownPrincipal, UnknownSystemEntity):
            # pysaml2 names an entity it holds no metadata of either way (its indexed store).
            raise UpstreamFailure(
                f"no metadata for school {school.id}", code="school_metadata_missing"
            ) from None
        if not destination:
            raise UpstreamFailure(
                f"school {school.id} has no Redirect SSO endpoint", code="school_metadata_missing"
            )
        location = destination[0]["location"]
        if not is_acceptable_endpoint(location):
            # A copy registered before metadata intake checked SSO URLs (metadata_check.py),
            # kept until it is read again: the student is not sent to type a password over
            # plain http (or to `javascript:`). A check on the string in hand, no parse.
            log.error("saml login refused school=%s code=%s", school.id, SchoolSsoNotHttps.code)
            raise SchoolSsoNotHttps(f"school {school.id}: its SSO URL is not https")
        # Built and signed here, not by pysaml2 (upstream_request.py says why): the same message,
        # with no enveloped XML signature, since over the Redirect binding the query string is
        # signed and the message itself must carry none (SAML bindings 3.4.4.1).
        request_id = new_request_id()
        xml = authn_request_xml(
            AuthnRequestContent(
                issuer=self.entities.settings.sp_entity_id,
                destination=location,
                acs_url=self.entities.settings.url(ACS_PATH),
                # A service that demands a fresh login gets one at the school too, not just here.
                force_authn=force_authn,
                authn_contexts=authn_contexts.references,
                comparison=authn_contexts.comparison,
                proxy_count=proxy_count,
                idp_list=idp_list,
                idp_list_get_complete=idp_list_get_complete,
            ),
            request_id,
            datetime.now(UTC),
        )
        url = signed_redirect_url(
            location,
            ("SAMLRequest", deflate_and_encode(xml)),
            relay_state,
            self.entities.redirect_signing_key(),
        )
        return UpstreamRequest(request_id, url)

    def parse_response(
        self, saml_response: str, school: School, request_id: str
    ) -> VerifiedResponse:
        xml = firewall.decode_post(saml_response)
        doc = firewall.inspect(xml, root="Response", assertions=None)
        firewall.require_assertion_count(doc)
        # The schema check pysaml2 would run twice in pure Python, once in C on what was sent.
        seen_whole = schema.validate_message(doc)
        # Checked before the route is chosen, for error statuses too (pysaml2 would drop it
        # silently): the student and the log hear the precise reason, the same one the reader
        # gives a signed Response that names no Destination.
        check_destination(doc, "Response", self.entities.settings.url(ACS_PATH), required=False)
        issuer = doc.find(f"{{{firewall.SAML}}}Issuer")
        if issuer is not None and issuer.text:
            # Another school's IdP registered a moment ago moves the registry view on, so the
            # refusal below is the precise one (issuer_mismatch), not "unknown issuer". Only a
            # refresh: the school is the chosen one, whichever schools the issuer serves.
            self.registry.schools_by_idp(issuer.text.strip())
        if encrypted_assertion.is_encrypted(doc):
            return self._read_encrypted(doc, school, request_id)
        if not seen_whole:
            # An EncryptedID or EncryptedAttribute: nothing the broker decrypts, and no
            # identity is read from anywhere else (encrypted_assertion.py opens only an
            # EncryptedAssertion).
            raise InvalidMessage(
                "encrypted element in the response", code="encrypted_element_refused"
            )
        if firewall.is_success(doc):
            # The only Responses that carry an assertion (`require_assertion_count`): verified
            # and read on the tree parsed above, by the broker's reader alone.
            return self._read(doc, school, request_id, None)
        self._refuse_status(saml_response, xml, doc, school, request_id)

    def _refuse_status(
        self, saml_response: str, xml: bytes, doc: etree._Element, school: School, request_id: str
    ) -> NoReturn:
        """An error status, which carries no assertion: pysaml2 names the status (StatusError
        and its subclasses), and the school's signature decides whether it counts. Nothing here
        reads an identity: whatever pysaml2 returns instead of raising is refused unread."""
        # Which status the school sent, for its ICT contact (InvalidNameIDPolicy is a missing
        # NameID rule, NoPassive another thing): the codes' standard names only, never its
        # text. Signed or not, the refusal's own line says (upstream_status, unsigned_status).
        status = status_names(firewall.top_status(doc), firewall.second_status(doc))
        log.warning("school status school=%s status=%s", school.id, status)
        client = self.entities.client
        try:
            with schema.prevalidated():
                client.parse_authn_request_response(
                    saml_response, BINDING_HTTP_POST, outstanding={request_id: school.id}
                )
        except StatusError as err:
            if not self._error_signed_by(client, xml, doc, school):
                # pysaml2 reports a status before it checks any signature; an unsigned "no"
                # must not end the student's login (the real answer may still arrive). The
                # student still hears what the school answered, in the broker's own words.
                raise UnsignedSchoolRefusal(
                    "unsigned error response", said=school_said(doc)
                ) from None
            if isinstance(err, StatusNoAuthnContext):
                # The school cannot meet the level the service required: the service hears so in
                # its own protocol (NoAuthnContext / unmet_authentication_requirements).
                raise AssuranceNotMet(f"school {school.id} answered NoAuthnContext") from None
            # The school's own "no", signed: the service hears AuthnFailed, and the student's
            # page says what the school answered, with a way to try again (refuse_to_service).
            raise SchoolRefused(
                f"school {school.id} returned status {type(err).__name__}", said=school_said(doc)
            ) from None
        except (IncorrectlySigned, SignatureError, SigverError):
            raise InvalidMessage(
                "school response signature invalid", code="bad_signature"
            ) from None
        except UnsolicitedResponse:
            raise InvalidMessage("response to no request of ours", code="unsolicited") from None
        except (ResponseLifetimeExceed, ToEarly):
            raise InvalidMessage("assertion outside its time window", code="time_window") from None
        except (UnknownPrincipal, UnsupportedBinding):
            raise InvalidMessage("response from an unknown issuer", code="unknown_issuer") from None
        except Exception as err:
            # The one broad catch, at the adapter's edge on purpose: pysaml2 signals a wrong
            # audience, destination or shape with bare `Exception`, ValueError and friends. Any
            # of them means "refuse"; the reason code keeps the class name, never the message,
            # which can quote the assertion.
            raise InvalidMessage(
                f"school response refused: {type(err).__name__}", code="response_refused"
            ) from None
        # pysaml2 raises for every status but Success; had it returned, it and the broker
        # disagree about this message, and an error status never yields an identity.
        raise InvalidMessage("error status not refused by pysaml2", code="status_parse_mismatch")

    def _read_encrypted(
        self, doc: etree._Element, school: School, request_id: str
    ) -> VerifiedResponse:
        """Opened here and then read like a plain Response; never by pysaml2, whose decryption
        let an unsigned assertion in (encrypted_assertion.py). The Response's own signature
        covers the ciphertext, so it is verified on the tree as received, before decryption.
        (A Response with an assertion, encrypted or not, has status Success: the firewall's
        `require_assertion_count`.)"""
        keys = self.entities.decryption_keys()
        signed_as_sent = None
        if keys:
            signed_as_sent = assertion_reader.verify_before_decryption(
                doc, self.entities.client.metadata, school.idp_entity_id
            )
        encrypted_assertion.open_in_place(doc, keys)
        return self._read(doc, school, request_id, signed_as_sent)

    def _read(
        self,
        doc: etree._Element,
        school: School,
        request_id: str,
        signed_as_sent: assertion_reader.SignedAsSent | None,
    ) -> VerifiedResponse:
        try:
            read = assertion_reader.read_response(
                doc,
                self.entities.client.metadata,
                school.idp_entity_id,
                self._expectations(request_id),
                signed_as_sent,
            )
        except SchoolAnswerOutOfTime as refusal:
            # Signed by the school, for this login: which school's clock, which time, by how
            # many seconds, for the operator (render_error's line has the page's error id).
            log.warning(
                "refused school=%s code=%s offset=%ds: %s",
                school.id,
                refusal.code,
                refusal.offset,
                refusal.explanation,
            )
            raise
        except AnswerTimeRefused as refusal:
            # A time the school wrote in another form than SAML's, or one nobody signed: the
            # real reason, never "check the clock".
            log.warning(
                "refused school=%s code=%s: %s", school.id, refusal.code, refusal.explanation
            )
            raise
        # A board's IdP must name the chosen school (core/shared_idp.py): the registry's
        # flag for it, or several schools on it, from the cached view.
        must_name = school_must_be_named(self.registry, school)
        return _verified(
            read,
            school,
            self.entities.settings.assurance,
            must_name=must_name,
            unknown=self.unknown_attributes,
        )

    @staticmethod
    def _error_signed_by(client: Any, xml: bytes, doc: etree._Element, school: School) -> bool:
        """Whether an error Response carries a valid signature of the school's own IdP."""
        if issuer_of(doc) != school.idp_entity_id:
            return False
        try:
            with schema.prevalidated():
                client.sec.correctly_signed_response(
                    xml.decode(), must=True, require_response_signature=True
                )
        except (SignatureError, SigverError, IncorrectlySigned, ValueError, TypeError):
            return False
        return True

    def _expectations(self, request_id: str) -> Expectations:
        settings = self.entities.settings
        return Expectations(
            acs_url=settings.url(ACS_PATH),
            sp_entity_id=settings.sp_entity_id,
            request_id=request_id,
            now=self.clock(),
            skew=settings.saml.clock_skew_seconds,
            max_age=settings.login_ttl_seconds,
        )


# The status codes a student's page words (core 3.2.2.2), second-level ones as schools send
# them under Responder or Requester; any other says nothing more than "not signed in".
_SAID: dict[str, SchoolSaid] = {
    "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed": "authn_failed",
    "urn:oasis:names:tc:SAML:2.0:status:RequestDenied": "request_denied",
    "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext": "no_authn_context",
    # ADFS without its persistent NameID rule (MSIS7070), Shibboleth IdP without a persistent
    # generator: a setting at the school, which a second try does not change.
    "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy": "name_id_policy",
}


def school_said(doc: etree._Element) -> SchoolSaid:
    """What an error Response's status codes say, among the few the student's page words. Only
    the codes' `Value`s are compared with fixed names: no text of the message goes anywhere."""
    for value in (firewall.second_status(doc), firewall.top_status(doc)):
        said = _SAID.get(value)
        if said:
            return said
    return ""


def _verified(
    read: ReadResponse,
    school: School,
    assurance: Assurance,
    *,
    must_name: bool,
    unknown: UnknownAttributeNotes | None = None,
) -> VerifiedResponse:
    """What the flow gets from a read Response: the school's attributes under the catalogue's
    names, the subject, the logout handles, and the times the replay cache needs. `must_name`:
    the school's IdP is a board's (core/shared_idp.py), and must name this school as the
    student's."""
    collected, dropped = _collect_attributes(
        (a.name, a.friendly_name, a.values) for a in read.attributes
    )
    if unknown is not None:
        # Microsoft's authentication methods are read above all, for the assurance level.
        unknown.note(school.id, (name for name in dropped if name != AUTHN_METHODS_REFERENCES))
    check_asserted_school(collected, school, must_name=must_name)
    attributes = accepted_values(collected, school, must_name=must_name)
    subject = _subject_from(read.name_id, school, attributes)
    # Entra ID names the first factor's class, and lists MFA among the methods beside it.
    methods = [
        value.strip()
        for a in read.attributes
        if a.name == AUTHN_METHODS_REFERENCES
        for value in a.values
        if value
    ]
    identity = UpstreamIdentity(
        school.id,
        subject,
        attributes,
        assurance.reported(read.authn_context, methods),
        _handles(read.name_id, read.session_index),
        session_ends=read.session_not_on_or_after,
        authorities=read.authorities,
    )
    return VerifiedResponse(
        identity,
        read.assertion_id,
        read.window.issued,
        read.window.accept_until,
        read.authn_instant,
    )


def _collect_attributes(
    attributes: Iterable[tuple[str, str | None, Iterable[str | None]]],
) -> tuple[dict[str, list[str]], list[str]]:
    """(Name, FriendlyName, values) of the assertion's attributes → their values (trimmed, as
    sent) under the catalogue's names, which `accepted_values` then keeps those that fit; and
    the Names not in the catalogue."""
    collected: dict[str, list[str]] = {}
    dropped: list[str] = []
    for name, friendly_name, raw_values in attributes:
        canonical = canonical_name_for(name) or canonical_name_for(friendly_name or "")
        if canonical is None:
            dropped.append(name)
            continue  # not in the catalogue: the broker never passes it on
        values = [v.strip() for v in raw_values if v]
        collected.setdefault(canonical, []).extend(values)
    return collected, dropped


def _subject_from(
    name_id: NameId | None, school: School, attributes: dict[str, tuple[str, ...]]
) -> str:
    if school.use_eck_id:
        return ""  # the core takes the ECK iD from the attributes
    if school.subject_attribute == NAME_ID_SUBJECT:
        if name_id is None or not name_id.text.strip():
            return ""  # the core refuses (missing_subject): no fallback to another value
        if name_id.format != NAMEID_FORMAT_PERSISTENT:
            # No Format is `unspecified` (SAML core 2.2.2), as unfit as transient: nothing
            # promises it stays the student's, and the pseudonym would change with it.
            refusal = NameIdNotPersistent(school.id, name_id.format)
            # The Format only, never the value; the school and what to change, for its ICT.
            log.warning(
                "refused school=%s code=%s: %s", school.id, refusal.code, refusal.explanation
            )
            raise refusal
        if name_id_is_address(name_id.text.strip(), school):
            # Never the value: that it is an address, the school, and what to change.
            address = NameIdIsAddress(f"school {school.id}: {NameIdIsAddress.explanation}")
            log.warning(
                "refused school=%s code=%s: %s", school.id, address.code, address.explanation
            )
            raise address
        return name_id.text.strip()
    values = attributes.get(school.subject_attribute, ())
    return values[0] if len(values) == 1 else ""


def _handles(name_id: NameId | None, session_index: str | None) -> dict[str, str]:
    """What a LogoutRequest to the school must name: its NameID (with qualifiers) and the
    SessionIndex of its login (SAML core 3.7.1). Kept sealed in the SSO session."""
    handles: dict[str, str] = {"protocol": "saml"}
    if name_id is not None and name_id.text:
        handles["name_id"] = name_id.text.strip()
        if name_id.format:
            handles["name_id_format"] = name_id.format
        if name_id.name_qualifier:
            handles["name_qualifier"] = name_id.name_qualifier
        if name_id.sp_name_qualifier:
            handles["sp_name_qualifier"] = name_id.sp_name_qualifier
    if session_index:
        handles["session_index"] = session_index
    return handles
