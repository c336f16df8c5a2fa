"""SAML Single Logout messages, in and out, for both faces of the broker.

In: a LogoutRequest or LogoutResponse (Redirect or POST binding) passes the firewall, comes from
an entity the registry knows, carries a signature made with a key of that entity's metadata
(the query-string signature over Redirect, an XML signature over POST: SAML profiles 4.4.4 want
both messages signed), is addressed to our endpoint, fresh, and then parsed by pysaml2.
Out: LogoutRequest and LogoutResponse signed the same way, with the in-process backend.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT, BINDING_SOAP, class_name, saml, samlp
from saml2.request import LogoutRequest as Saml2LogoutRequest
from saml2.response import LogoutResponse as Saml2LogoutResponse
from saml2.s_utils import UnknownPrincipal, UnsupportedBinding
from saml2.sigver import pre_signature_part, signed_instance_factory

from broker.core.endpoints import is_acceptable_endpoint
from broker.core.errors import InvalidMessage
from broker.core.origins import written_origin
from broker.saml import firewall
from broker.saml.firewall import STATUS_SUCCESS, status_names
from broker.saml.front import MAX_RELAY_STATE
from broker.saml.message_ids import new_message_id
from broker.saml.metadata_check import LOGOUT_BINDINGS
from broker.saml.redirect_query import SAML_REQUEST, SAML_RESPONSE, SIGNATURE, RedirectQuery
from broker.saml.redirect_signature import check_redirect_signature
from broker.saml.response_builder import RSA_SHA256, SHA256, saml_time
from broker.saml.response_checks import (
    check_destination,
    check_parsed_issuer,
    issuer_of,
    saml_epoch,
)

STATUS_PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
NAMEID_FORMAT_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
LOGOUT_REQUEST = "LogoutRequest"
LOGOUT_RESPONSE = "LogoutResponse"
# A LogoutRequest the broker sends is good for this long (NotOnOrAfter).
REQUEST_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True)
class Received:
    """An inbound Redirect/POST message as the route took it from the request: `value` and
    `relay_state` decoded, and with the Redirect binding the `query` they were decoded from
    (its raw values carry the signature, redirect_query.py)."""

    binding: str
    value: str
    relay_state: str | None = None
    query: RedirectQuery | None = None


@dataclass(frozen=True)
class LogoutMessage:
    """A checked inbound logout message: only what was under the verified signature."""

    kind: str  # LOGOUT_REQUEST or LOGOUT_RESPONSE
    issuer: str
    message_id: str
    issued_at: float
    relay_state: str
    # LogoutRequest
    name_id: str = ""
    session_indexes: tuple[str, ...] = ()
    # LogoutResponse: `success` when its top-level status is Success; `partial` when its
    # second-level one is PartialLogout (SAML core 3.7.3.2: the session may still stand at
    # other participants); `status`: both as `status_names` gives them, for the log.
    in_response_to: str = ""
    success: bool = False
    partial: bool = False
    status: str = ""
    # False only for a school's LogoutResponse that carried no signature (`unsigned_answers`):
    # nothing of it is verified, so it never counts as a confirmation.
    signed: bool = True

    @property
    def confirms(self) -> bool:
        """Whether this school's LogoutResponse confirms the logout: signed, Success, and not
        PartialLogout. PartialLogout, also under Success (SAML core 3.7.3.2: the school ended
        its own session but not every other one it told), is no confirmation: the student may
        still be signed in somewhere through the school. Nor is an unsigned answer (Entra ID
        signs none), whatever it says: anyone could have sent it, so it only ends the wait for
        the school, with the logout page's warning."""
        return self.signed and self.success and not self.partial


def firewall_logout(received: Received, kind: str) -> tuple[etree._Element, str]:
    """The firewall's checks for a logout message; (parsed tree, claimed issuer)."""
    relay_state = received.relay_state
    if relay_state is not None and len(relay_state.encode()) > MAX_RELAY_STATE:
        raise InvalidMessage("RelayState over the cap", code="relay_state_too_long")
    if received.binding == BINDING_HTTP_REDIRECT:
        xml = firewall.inflate_redirect(received.value)
    else:
        xml = firewall.decode_post(received.value)
    doc = firewall.inspect(xml, root=kind, assertions=0)
    claimed = issuer_of(doc)
    if not claimed:
        raise InvalidMessage(f"{kind} without Issuer", code="unknown_issuer")
    if doc.find(f"{{{firewall.SAML}}}EncryptedID") is not None:
        raise InvalidMessage("encrypted NameID in LogoutRequest", code="unsupported_name_id")
    return doc, claimed


class SignedRefusal(InvalidMessage):
    """A LogoutRequest over SOAP refused after its signature verified (stale, for another
    Destination): the SAML processing's own error, which the binding answers with a signed
    SAML status, not a SOAP fault (bindings 3.2.3.3). `request_id`: what the answer answers."""

    def __init__(self, refusal: InvalidMessage, request_id: str) -> None:
        super().__init__(refusal.detail, code=refusal.code)
        self.request_id = request_id


def read_logout(
    entity: Any,
    role: str,
    received: Received,
    kind: str,
    *,
    destination: str,
    max_age: int,
    skew: int,
    unsigned_answers: bool = False,
) -> LogoutMessage:
    """Check and parse a logout message from the known entity `role` ("spsso" for a
    publisher's service, "idpsso" for a school's IdP) that `entity` (pysaml2 Server or
    Saml2Client) has metadata for. Call `firewall_logout` first to learn the issuer. Over SOAP
    the signature is verified first, and a request refused after it raises `SignedRefusal`.
    `unsigned_answers`: a LogoutResponse without any signature (Redirect or POST) is returned
    as `signed=False`, never a success, with only its InResponseTo, for the caller to match
    with a request of its own (Entra ID signs no LogoutResponse); a bad signature is refused."""
    doc, issuer = firewall_logout(received, kind)
    if unsigned_answers and kind == LOGOUT_RESPONSE and _carries_no_signature(received, doc):
        return LogoutMessage(
            kind,
            issuer,
            str(doc.get("ID") or ""),
            check_fresh(doc, kind, max_age=max_age, skew=skew),
            received.relay_state or "",
            in_response_to=str(doc.get("InResponseTo") or ""),
            status="unsigned",
            signed=False,
        )
    param = SAML_REQUEST if kind == LOGOUT_REQUEST else SAML_RESPONSE
    if received.binding == BINDING_HTTP_REDIRECT:
        check_redirect_signature(
            entity, issuer, role, (param, received.value), received.relay_state, received.query
        )
    elif doc.find(f"{{{firewall.DS}}}Signature") is None:
        raise InvalidMessage(f"unsigned {kind}", code="request_unsigned")
    if received.binding == BINDING_SOAP:
        signed = _soap_signed(entity, received.value)
        try:
            check_destination(doc, kind, destination, required=False)
            issued = check_fresh(doc, kind, max_age=max_age, skew=skew)
        except InvalidMessage as refusal:
            raise SignedRefusal(refusal, str(signed.message.id or "")) from None
        parsed = _soap_verified(signed)
    else:
        # Signed messages must name where they go (SAML bindings 3.4.5.2, 3.5.5.2).
        check_destination(doc, kind, destination, required=True)
        issued = check_fresh(doc, kind, max_age=max_age, skew=skew)
        parsed = parse_checked(entity, received, kind)
    check_parsed_issuer(parsed, issuer)
    message_id = str(parsed.id or "")
    relay_state = received.relay_state or ""
    if kind == LOGOUT_RESPONSE:
        status = parsed.status.status_code if parsed.status is not None else None
        top = str(status.value or "") if status is not None else ""
        inner = status.status_code if status is not None else None
        second = str(inner.value or "") if inner is not None else ""
        return LogoutMessage(
            kind,
            issuer,
            message_id,
            issued,
            relay_state,
            in_response_to=str(parsed.in_response_to or ""),
            success=top == STATUS_SUCCESS,
            partial=second == STATUS_PARTIAL_LOGOUT,
            status=status_names(top, second),
        )
    name_id = parsed.name_id
    if name_id is None or not name_id.text:
        raise InvalidMessage("LogoutRequest without NameID", code="unsupported_name_id")
    return LogoutMessage(
        kind,
        issuer,
        message_id,
        issued,
        relay_state,
        name_id=str(name_id.text).strip(),
        session_indexes=tuple(
            str(index.text).strip() for index in parsed.session_index or [] if index.text
        ),
    )


def _carries_no_signature(received: Received, doc: etree._Element) -> bool:
    """No Signature at all: none in the Redirect query, none in the POSTed message."""
    if received.binding == BINDING_HTTP_REDIRECT:
        return received.query is None or received.query.value(SIGNATURE) is None
    if received.binding == BINDING_SOAP:
        return False  # over SOAP a LogoutResponse is read elsewhere (logout_soap.py)
    return doc.find(f"{{{firewall.DS}}}Signature") is None


def check_fresh(doc: etree._Element, kind: str, *, max_age: int, skew: int) -> float:
    """The message's IssueInstant (epoch seconds), refused unless within `max_age` (and the
    clock `skew`) of now and before its NotOnOrAfter."""
    issued = saml_epoch(doc.get("IssueInstant"), code="stale_request")
    now = time.time()
    if issued is None or not now - max_age - skew <= issued <= now + skew:
        raise InvalidMessage(f"{kind} issued outside the accepted window", code="stale_request")
    expires = saml_epoch(doc.get("NotOnOrAfter"), code="stale_request")
    if expires is not None and now >= expires + skew:
        raise InvalidMessage(f"{kind} past its NotOnOrAfter", code="stale_request")
    return issued


class _StatusLeftToTheBroker(Saml2LogoutResponse):  # type: ignore[misc]
    """pysaml2's reader of a LogoutResponse with every check of its own but the status's.
    pysaml2 raises for any status but Success (a `saml2.response.StatusError` subclass, from
    `status_ok`, the last of its checks: after the signature in `loads`, the version and the
    IssueInstant in `verify`), so a peer's signed "not logged out" (`Responder`/
    `PartialLogout`, as Shibboleth SP answers when it finds no session) never came back read,
    and was refused as a bad message. Here it comes back as a "yes" does, and `read_logout`
    takes the status from the message pysaml2 verified: anything but Success is a service or
    a school that did not confirm."""

    def status_ok(self) -> bool:
        return True


def parse_checked(entity: Any, received: Received, kind: str) -> Any:
    """pysaml2's reading of a Redirect or POST message: with a POST binding it also verifies
    the XML signature against the issuer's metadata keys (through the in-process backend and
    its signature policy). A LogoutResponse is read whatever its status (the caller reads
    that): `parse_logout_request_response` with `_StatusLeftToTheBroker` as its reader (that
    method is `_parse_response` with pysaml2's own reader, nothing more; pysaml2 7.5)."""
    with _refused_by_pysaml2(kind):
        if kind == LOGOUT_REQUEST:
            parsed = entity.parse_logout_request(received.value, received.binding)
        else:
            parsed = entity._parse_response(
                received.value,
                _StatusLeftToTheBroker,
                "single_logout_service",
                received.binding,
            )
    if parsed is None:
        raise InvalidMessage(f"{kind} refused by the parser", code="message_refused")
    message = parsed.message if kind == LOGOUT_REQUEST else parsed.response
    if message is None:
        raise InvalidMessage(f"{kind} unreadable", code="message_refused")
    return message


@contextmanager
def _refused_by_pysaml2(kind: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        # At the adapter's edge on purpose, as in back.py: pysaml2 signals a bad signature,
        # version, destination or shape with a dozen unrelated classes, bare Exception among
        # them. All mean "refuse"; the reason keeps the class name, never the message.
        code = "bad_signature" if "Sign" in type(err).__name__ else "message_refused"
        raise InvalidMessage(f"{kind} refused: {type(err).__name__}", code=code) from None


def _soap_signed(entity: Any, value: str) -> Any:
    """A LogoutRequest taken out of its SOAP envelope (`value`: base64, as over POST), its
    signature verified as pysaml2's `parse_logout_request` verifies one over POST (its request
    class: signature with the issuer's metadata keys, required); `_soap_verified` then checks
    the rest. pysaml2's own SOAP reading re-serialises the envelope's child with ElementTree,
    which renames namespace prefixes and so breaks every signature. No receiver addresses:
    `read_logout` holds the Destination to the SOAP endpoint itself."""
    config = entity.config
    request = Saml2LogoutRequest(
        entity.sec, None, config.attribute_converters, config.accepted_time_diff or 0
    )
    with _refused_by_pysaml2(LOGOUT_REQUEST):
        loaded = request.loads(base64.b64decode(value), BINDING_SOAP, origdoc=value, must=True)
    if loaded is None or loaded.message is None:
        raise InvalidMessage(f"{LOGOUT_REQUEST} unreadable", code="message_refused")
    return loaded


def _soap_verified(signed: Any) -> Any:
    """`_soap_signed`'s request once pysaml2's other checks (version, IssueInstant) hold."""
    with _refused_by_pysaml2(LOGOUT_REQUEST):
        valid = signed.verify()
    if not valid:
        raise InvalidMessage(f"{LOGOUT_REQUEST} refused by the parser", code="message_refused")
    return signed.message


# -- out ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """A peer's SingleLogoutService from its metadata."""

    binding: str
    location: str
    response_location: str

    @property
    def origin(self) -> str:
        return written_origin(self.location) or ""


def slo_endpoint(
    entity: Any, entity_id: str, role: str, bindings: tuple[str, ...] = LOGOUT_BINDINGS
) -> Endpoint | None:
    """The peer's SLO endpoint of the first of `bindings` it has (the browser's: Redirect
    preferred, then POST; logout_soap.py asks for SOAP); None when it has none. One whose
    Location or ResponseLocation is not https (plain http only to loopback) counts as none: a
    copy registered before metadata intake checked SLO URLs (metadata_check.insecure_endpoints)
    is not sent the student's NameID over plain http; `school list` and `publisher list` show
    it."""
    for binding in bindings:
        try:
            found = entity.metadata.single_logout_service(entity_id, binding, role)
        except UnsupportedBinding:
            continue  # no endpoint of this binding (pysaml2 raises rather than answer [])
        except (UnknownPrincipal, KeyError):
            return None  # not (any more) in the registry's metadata
        for endpoint in found or []:
            location = str(endpoint.get("location") or "")
            response = str(endpoint.get("response_location") or location)
            if is_acceptable_endpoint(location) and is_acceptable_endpoint(response):
                return Endpoint(binding, location, response)
    return None


@dataclass(frozen=True)
class Outgoing:
    """A signed message for the browser to carry: a redirect URL or POST form fields."""

    message_id: str
    url: str
    fields: dict[str, str] | None


def logout_request(
    entity: Any,
    issuer: str,
    endpoint: Endpoint,
    *,
    name_id: saml.NameID,
    session_index: str,
    relay_state: str = "",
) -> Outgoing:
    """A signed LogoutRequest for the browser to carry (Redirect or POST `endpoint`)."""
    request = logout_request_message(issuer, endpoint, name_id, session_index)
    return _send(entity, request, endpoint.location, endpoint.binding, "SAMLRequest", relay_state)


def logout_request_message(
    issuer: str, endpoint: Endpoint, name_id: saml.NameID, session_index: str
) -> samlp.LogoutRequest:
    """The LogoutRequest to `endpoint`, unsigned: `logout_request` signs it for the browser,
    logout_soap.py for the SOAP binding."""
    now = datetime.now(UTC)
    return samlp.LogoutRequest(
        id=new_message_id(),
        version="2.0",
        issue_instant=saml_time(now),
        destination=endpoint.location,
        not_on_or_after=saml_time(now + REQUEST_LIFETIME),
        issuer=saml.Issuer(text=issuer, format=NAMEID_FORMAT_ENTITY),
        name_id=name_id,
        session_index=[samlp.SessionIndex(text=session_index)] if session_index else [],
    )


def logout_response(
    entity: Any,
    issuer: str,
    *,
    in_response_to: str,
    location: str,
    binding: str,
    relay_state: str,
    status: str,
    second_status: str | None = None,
) -> Outgoing:
    response = logout_response_message(issuer, in_response_to, location, status, second_status)
    return _send(entity, response, location, binding, "SAMLResponse", relay_state)


def logout_response_message(
    issuer: str,
    in_response_to: str,
    destination: str | None,
    status: str,
    second_status: str | None = None,
) -> samlp.LogoutResponse:
    """The LogoutResponse, unsigned: `logout_response` sends it through the browser, the SOAP
    binding answers with it on the connection (`destination` None: it names none)."""
    code = samlp.StatusCode(value=status)
    if second_status:
        code.status_code = samlp.StatusCode(value=second_status)
    return samlp.LogoutResponse(
        id=new_message_id(),
        version="2.0",
        issue_instant=saml_time(datetime.now(UTC)),
        destination=destination,
        in_response_to=in_response_to,
        issuer=saml.Issuer(text=issuer, format=NAMEID_FORMAT_ENTITY),
        status=samlp.Status(status_code=code),
    )


def _send(
    entity: Any, message: Any, location: str, binding: str, param: str, relay_state: str
) -> Outgoing:
    if binding == BINDING_HTTP_REDIRECT:
        # The query string is signed; the message itself carries no XML signature (SAML
        # bindings 3.4.4.1).
        info = entity.apply_binding(
            BINDING_HTTP_REDIRECT,
            message.to_string().decode(),
            location,
            relay_state,
            response=param == "SAMLResponse",
            sign=True,
            sigalg=RSA_SHA256,
        )
        return Outgoing(str(message.id), str(dict(info["headers"])["Location"]), None)
    xml = signed_xml(entity, message)
    fields = {param: base64.b64encode(xml.encode()).decode()}
    if relay_state:
        fields["RelayState"] = relay_state
    return Outgoing(str(message.id), location, fields)


def signed_xml(entity: Any, message: Any) -> str:
    """`message` with an enveloped XML signature by `entity`'s key (POST and SOAP bindings)."""
    security = entity.sec
    message.signature = pre_signature_part(
        message.id, security.my_cert, 1, sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    return str(signed_instance_factory(message, security, [(class_name(message), message.id)]))
