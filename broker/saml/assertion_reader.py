"""A school's successful Response, verified and read straight from the firewall's lxml tree.

pysaml2 spent about 7.5 ms per login on a Response the broker had already parsed, shape-checked
and schema-validated: it parsed the string twice into its own classes, serialised them back for a
schema check that is skipped, and parsed the whole message again for each signature
(docs/performance.md, "The ACS and pysaml2"). Here the signatures are verified on the tree the
firewall parsed, with the broker's own libxmlsec context and keys from the school's metadata
(pysaml2's MetadataStore stays the source of those), and the identity is read from the element
whose signature verified, or from the direct child of the verified Response.

This is the one place an identity is read from a school's SAML Response. Every Response whose
status is Success comes here, once `schema.validate_message` saw it whole: a plain one as
received, an encrypted one after encrypted_assertion.py put its decrypted Assertion in place (the
Response's own signature, which covers the ciphertext, verified before that by
`verify_before_decryption`). pysaml2 parses error statuses only, and nothing it returns is read
(back.py). Every check pysaml2 made on a successful Response is made here, each with its
refusal code, and on top of them the ones pysaml2 never made (audience required, every bearer
confirmation for this ACS and login, a maximum age of the Response and the Assertion (the login's
lifetime, where pysaml2 took a day), Destination on a signed Response,
an Issuer on a signed Response or one that carried an encrypted assertion, the Issuers' Format);
docs/security.md names the test of each, and tests/security/test_saml_direct_route.py
compares what is read here with pysaml2's own parse of the same message.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import xmlsec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree  # type: ignore[import-untyped,unused-ignore]  # no stubs pinned

from broker.core.errors import InvalidMessage
from broker.saml.firewall import DS, SAML, SAMLP
from broker.saml.metadata_keys import certificate_der, metadata_public_key
from broker.saml.response_checks import (
    BEARER,
    Expectations,
    Window,
    check_destination,
    check_issue_instant,
    check_issuer_format,
    check_not_before,
    check_not_on_or_after,
    element_text,
    saml_epoch,
)
from broker.saml.xmlsig import verification_context
from broker.saml.xmlsig_policy import PolicyViolation, locate_signed_element

RESPONSE_NODE = f"{SAMLP}:Response"
ASSERTION_NODE = f"{SAML}:Assertion"
# Condition elements the broker understands. OneTimeUse is honoured by the replay cache (one
# assertion completes one login); AudienceRestriction is checked below. A generic Condition (an
# xsi:type pysaml2 did not know either) or a ProxyRestriction (limits on a proxy, which the
# broker is) is refused: a condition nobody evaluates must not be treated as met.
KNOWN_CONDITIONS = frozenset({f"{{{SAML}}}AudienceRestriction", f"{{{SAML}}}OneTimeUse"})

_KEY_CACHE_SIZE = 256


def _q(local: str) -> str:
    return f"{{{SAML}}}{local}"


@dataclass(frozen=True)
class NameId:
    text: str
    format: str | None
    name_qualifier: str | None
    sp_name_qualifier: str | None


@dataclass(frozen=True)
class Attribute:
    name: str
    friendly_name: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class ReadResponse:
    """What the broker takes from a verified Response."""

    assertion_id: str
    window: Window
    name_id: NameId | None
    attributes: tuple[Attribute, ...]
    authn_instant: float
    authn_context: str | None
    session_index: str | None
    session_not_on_or_after: float | None  # when the school's session ends, if it said
    # The AuthenticatingAuthority values of its AuthnContext, in order (the school's IdP
    # proxied the login: core 3.4.1.5.1); empty ones are not kept.
    authorities: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignedAsSent:
    """The Response whose own signature verified on the tree as received, before its
    EncryptedAssertion was replaced by the plaintext: the signature covers the ciphertext, so
    it no longer verifies afterwards, and the plaintext is covered through it."""

    response: etree._Element


def verify_before_decryption(
    doc: etree._Element, metadata: Any, school_idp: str
) -> SignedAsSent | None:
    """Verify the signature of the Response `doc` (the firewall's tree, still encrypted), when
    it carries one, with the chosen school's keys; None when it is unsigned (its Assertion's
    own signature must then do, checked after decryption).

    Its Issuer is required, signed or not (SAML profiles 4.1.4.2: a Response that carries an
    encrypted assertion names its issuer), and must be the chosen school's IdP: checked here,
    before anything is decrypted."""
    outer = _issuer(doc)
    if outer is None:
        raise InvalidMessage(
            "response with an encrypted assertion without Issuer", code="issuer_missing"
        )
    if outer != school_idp:
        _refuse_issuer(outer, metadata)
    if doc.find(f"{{{DS}}}Signature") is None:
        return None
    _verify_element(doc, RESPONSE_NODE, _signing_keys(metadata, school_idp))
    return SignedAsSent(doc)


def read_response(
    doc: etree._Element,
    metadata: Any,
    school_idp: str,
    expect: Expectations,
    signed_as_sent: SignedAsSent | None = None,
) -> ReadResponse:
    """Verify and read the Response `doc` (the firewall's tree, schema-valid, Success) that
    answers `expect.request_id` for the school whose IdP is `school_idp`. `signed_as_sent`:
    `verify_before_decryption`'s answer for this very tree, once its assertion is decrypted."""
    assertion = _the_assertion(doc)
    keys = _school_keys(doc, assertion, metadata, school_idp)
    response_signed = _verify_signatures(doc, assertion, keys, signed_as_sent)
    _check_response(doc, expect, response_signed)
    # Whose answer to which login, before any time: the Response's InResponseTo is signed only
    # when the Response is, the confirmations' always (the Assertion is signed when the Response
    # is not). So a signed assertion of another login, wrapped in an unsigned Response naming
    # this one, is `unsolicited`, never a time of that other login read as this school's clock.
    bearers = _check_confirmations(assertion, expect)
    if response_signed:
        # Signed by the school: its IssueInstant is the school's clock.
        check_issue_instant(doc.get("IssueInstant"), expect, "the Response's IssueInstant")
    window, session_end = _check_assertion(assertion, bearers, expect)
    if not response_signed:
        # Anyone could have set it; out of bounds it is a plain refusal (`time_window`) whose
        # log line says so, checked after the signed times so a school's clock that is off
        # shows in those first.
        check_issue_instant(
            doc.get("IssueInstant"), expect, "the Response's IssueInstant", signed=False
        )
    return _read(assertion, window, session_end)


# -- which element is read -----------------------------------------------------------------------


def _the_assertion(doc: etree._Element) -> etree._Element:
    """The one Assertion, as a direct child of the Response. The firewall already allows only
    one Assertion anywhere in the message; one hidden elsewhere (in Extensions, in a signature's
    KeyInfo) is not where a Response carries it, and is never read."""
    direct = doc.findall(_q("Assertion"))
    anywhere = list(doc.iter(_q("Assertion")))
    if len(direct) != 1 or len(anywhere) != 1:
        raise InvalidMessage("response without assertion", code="no_assertion")
    return direct[0]


def _issuer(element: etree._Element) -> str | None:
    """The entity id `element`'s Issuer names; None without an Issuer. An Issuer of another
    Format than entity is refused (SAML profiles 4.1.4.2), for the Response and the Assertion
    alike: a persistent or unspecified name that happens to equal an IdP's entity id is not
    that IdP."""
    issuer = element.find(_q("Issuer"))
    check_issuer_format(issuer)
    if issuer is None:
        return None
    return element_text(issuer).strip()


def _school_keys(
    doc: etree._Element, assertion: etree._Element, metadata: Any, school_idp: str
) -> list[Any]:
    """The chosen school's signing keys, once the issuers are known to be that school.

    Signed or not, an assertion of another IdP than the school the student chose is refused
    before any key is chosen, so only the chosen school's keys are ever tried. Every signing
    key of its metadata counts: a school rolling its key publishes old and new side by side.

    The Response's own Issuer may be left out, unless the Response is signed (SAML profiles
    4.1.4.2; one that carried an encrypted assertion needs it too: `verify_before_decryption`).
    A signed Response still has its signature here, also once its assertion is decrypted."""
    issuer = _issuer(assertion) or ""  # required by the schema; empty is nobody
    outer = _issuer(doc)
    if outer is None and doc.find(f"{{{DS}}}Signature") is not None:
        raise InvalidMessage("signed response without Issuer", code="issuer_missing")
    if issuer != school_idp or (outer is not None and outer != issuer):
        _refuse_issuer(issuer, metadata)
    return _signing_keys(metadata, school_idp)


def _refuse_issuer(issuer: str, metadata: Any) -> None:
    if not _known(metadata, issuer):
        raise InvalidMessage("response from an unknown issuer", code="unknown_issuer")
    raise InvalidMessage("issuer is not the chosen school's IdP", code="issuer_mismatch")


def _signing_keys(metadata: Any, school_idp: str) -> list[Any]:
    try:
        certs = metadata.certs(school_idp, "idpsso", "signing")
    except KeyError:
        # No metadata (any more), or no IdP role in it: nobody the broker knows as an IdP.
        raise InvalidMessage("response from an unknown issuer", code="unknown_issuer") from None
    return [_key(cert) for _, cert in certs]


def _known(metadata: Any, entity_id: str) -> bool:
    try:
        metadata[entity_id]
    except KeyError:
        return False
    return True


# -- signatures ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_KEY_CACHE_SIZE)
def _key(cert: str) -> Any:
    """A metadata certificate's public key, parsed once per certificate (not per login);
    `ctx.key = key` copies it, so one cached key serves every thread.

    Loaded as the bare public key: a key loaded from the certificate carries the certificate
    too, and every `ctx.key = key` copied that (OpenSSL re-reading its DER, ~25 us, twice per
    login). libxmlsec verifies with the key alone either way (the key is set on the context,
    so no certificate is looked up or checked), so the bare key verifies exactly the same
    signatures. A certificate `cryptography` will not read keeps the certificate route."""
    public = metadata_public_key(cert)
    if public is not None:
        try:
            pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            return xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem)
        except (ValueError, TypeError, xmlsec.Error):
            pass
    der = certificate_der(cert)
    if der is None:
        return None  # a certificate in metadata we cannot read verifies nothing; the next one may
    try:
        return xmlsec.Key.from_memory(der, xmlsec.constants.KeyDataFormatCertDer)
    except xmlsec.Error:
        return None


def _verify_signatures(
    doc: etree._Element,
    assertion: etree._Element,
    keys: list[Any],
    signed_as_sent: SignedAsSent | None,
) -> bool:
    """Verify every signature the identity depends on; returns whether the Response is signed.

    At least one of Response and Assertion must be signed (either covers the Assertion: the
    Response's signature covers its direct child). Each present signature must verify with one
    of the school's metadata keys; keys in the message are never used. A Response verified
    before its assertion was decrypted (`signed_as_sent`, for this very tree) is not verified
    again: its signature covers the ciphertext the Assertion came from, not the Assertion."""
    verified_as_sent = signed_as_sent is not None and signed_as_sent.response is doc
    signed = [
        (node, element)
        for node, element in ((RESPONSE_NODE, doc), (ASSERTION_NODE, assertion))
        if element.find(f"{{{DS}}}Signature") is not None
        and not (element is doc and verified_as_sent)
    ]
    if not signed and not verified_as_sent:
        raise InvalidMessage("school response not signed", code="bad_signature")
    for node, element in signed:
        _verify_element(element, node, keys)
    return verified_as_sent or doc.find(f"{{{DS}}}Signature") is not None


def _verify_element(element: etree._Element, node: str, keys: list[Any]) -> None:
    """Refuse unless `element`'s own signature verifies with one of `keys`."""
    usable = [key for key in keys if key is not None]
    try:
        # The element is found again by its ID (unique in the message, or refused) and must be
        # the one that is read: a signature over anything else counts for nothing.
        located, signature = locate_signed_element(element.getroottree(), node, element.get("ID"))
    except PolicyViolation:
        raise InvalidMessage("school response signature refused", code="bad_signature") from None
    if located is not element or not _verifies(located, signature, usable):
        raise InvalidMessage("school response signature invalid", code="bad_signature")


def _verifies(element: etree._Element, signature: etree._Element, keys: Iterable[Any]) -> bool:
    for key in keys:
        context = verification_context(key)
        try:
            # Only the element under scrutiny gets an ID, so "#id" resolves nowhere else.
            context.register_id(element, "ID")
            context.verify(signature)
        except xmlsec.Error:
            # Not this key: a school in rollover publishes two, maybe of two types (libxmlsec
            # raises VerificationError for a wrong key of the signature's type, a plain Error
            # for an EC key under an RSA signature). A signature no key verifies stays False.
            continue
        return True
    return False


# -- the Response --------------------------------------------------------------------------------


def _check_response(doc: etree._Element, expect: Expectations, signed: bool) -> None:
    if doc.get("Version") != "2.0":
        raise InvalidMessage("not a SAML 2.0 response", code="response_refused")
    if doc.get("InResponseTo") != expect.request_id:
        raise InvalidMessage("response to no request of ours", code="unsolicited")
    # A signed Response must say where it is going (a present one was compared with our ACS
    # already, before the route was chosen, `SamlBack.parse_response`).
    check_destination(doc, "Response", expect.acs_url, required=signed)


# -- the Assertion -------------------------------------------------------------------------------


def _check_assertion(
    assertion: etree._Element, bearers: list[etree._Element], expect: Expectations
) -> tuple[Window, float | None]:
    """The assertion's acceptance window, and when the school's session ends (if it said).
    `bearers`: its bearer confirmations' data, already found to answer this login."""
    if assertion.get("Version") != "2.0":
        raise InvalidMessage("not a SAML 2.0 assertion", code="response_refused")
    expires = _check_conditions(assertion.find(_q("Conditions")), expect)
    for data in bearers:
        _check_bearer_times(data, expect)
    session_end = _check_authn_statement(assertion)
    issued = check_issue_instant(
        assertion.get("IssueInstant"), expect, "the Assertion's IssueInstant"
    )
    # Whatever NotOnOrAfter says, the broker stops accepting the assertion when it is older
    # than max_age; a ten-year lifetime must not mean a ten-year replay-cache entry.
    window = Window(issued, min(expires, issued + expect.max_age) + expect.skew)
    return window, session_end


def _check_conditions(conditions: etree._Element | None, expect: Expectations) -> float:
    """The Conditions' time window, audience and condition types; returns NotOnOrAfter."""
    if conditions is None:
        raise InvalidMessage("assertion without AudienceRestriction", code="wrong_audience")
    not_before = saml_epoch(conditions.get("NotBefore"), what="the Conditions' NotBefore")
    expires = saml_epoch(conditions.get("NotOnOrAfter"), what="the Conditions' NotOnOrAfter")
    if expires is None:
        raise InvalidMessage("assertion without NotOnOrAfter", code="time_window")
    if not_before is not None and not_before >= expires:
        # SAML core 2.5.1.2: NotBefore MUST be earlier than NotOnOrAfter; valid at no time.
        raise InvalidMessage("assertion valid at no time", code="time_window")
    check_not_on_or_after(expires, expect, "the Conditions' NotOnOrAfter")
    check_not_before(not_before, expect, "the Conditions' NotBefore")
    restrictions = conditions.findall(_q("AudienceRestriction"))
    if not restrictions:
        raise InvalidMessage("assertion without AudienceRestriction", code="wrong_audience")
    for restriction in restrictions:
        # The whole text: lxml's `.text` stops at a comment, and exclusive c14n drops comments,
        # so `<Audience>ours<!---->.evil</Audience>` signed for "ours.evil" must not read "ours".
        audiences = {element_text(a).strip() for a in restriction.findall(_q("Audience"))}
        if expect.sp_entity_id not in audiences:
            raise InvalidMessage("assertion for another audience", code="wrong_audience")
    for condition in conditions:
        if isinstance(condition.tag, str) and condition.tag not in KNOWN_CONDITIONS:
            raise InvalidMessage(
                "assertion with a condition not understood", code="response_refused"
            )
    return expires


def _check_confirmations(assertion: etree._Element, expect: Expectations) -> list[etree._Element]:
    """Every bearer confirmation binds the assertion to this ACS and this login, and there is at
    least one (SAML profiles 4.1.4.2); returns their data, whose times `_check_bearer_times`
    holds once every confirmation is known to answer this login. One that fits does not outvote
    another that names another Recipient or request, has expired or has no data: the school
    said both, and the broker cannot tell which it meant.

    As pysaml2 did, every confirmation that carries data, of any method, must answer this
    login's request (an InResponseTo naming another request, or none, is `unsolicited`); other
    methods than bearer prove nothing for a browser login and are not read further."""
    confirmations = assertion.findall(f"{_q('Subject')}/{_q('SubjectConfirmation')}")
    datas = [c.find(_q("SubjectConfirmationData")) for c in confirmations]
    for data in datas:
        if data is not None and data.get("InResponseTo") != expect.request_id:
            raise InvalidMessage("confirmation for another request", code="unsolicited")
    bearers = [
        data
        for confirmation, data in zip(confirmations, datas, strict=True)
        if confirmation.get("Method") == BEARER
    ]
    if not bearers:
        raise InvalidMessage("no bearer confirmation", code="wrong_recipient")
    return [_check_bearer(data, expect) for data in bearers]


def _check_bearer(data: etree._Element | None, expect: Expectations) -> etree._Element:
    """One bearer confirmation's data: present, for our ACS, an Address (if any) an IP address.
    Its InResponseTo was checked above, its times (a NotOnOrAfter required) are checked after."""
    if data is None:
        raise InvalidMessage("bearer confirmation without data", code="wrong_recipient")
    if data.get("Recipient") != expect.acs_url:
        raise InvalidMessage("bearer confirmation for another Recipient", code="wrong_recipient")
    if not _address_ok(data.get("Address")):
        raise InvalidMessage("bearer confirmation from no address", code="wrong_recipient")
    return data


def _check_bearer_times(data: etree._Element, expect: Expectations) -> None:
    """A bearer confirmation's NotOnOrAfter present and not passed, its NotBefore (if any) not
    ahead.

    SAML profiles 4.1.4.2 says the bearer data MUST NOT carry a NotBefore. One that does is
    held as the time bound SAML core 2.4.1.2 makes it, with the skew, not refused for being
    there: it can only narrow when the assertion is accepted, and Shibboleth SP
    (BearerConfirmationRule), SimpleSAMLphp and pysaml2 read it so too; a school's IdP that
    sends one loses nothing by it while its clock is right."""
    expires = saml_epoch(data.get("NotOnOrAfter"), what="a bearer confirmation's NotOnOrAfter")
    if expires is None:
        raise InvalidMessage("bearer confirmation without NotOnOrAfter", code="wrong_recipient")
    not_before = saml_epoch(data.get("NotBefore"), what="a bearer confirmation's NotBefore")
    if not_before is not None and not_before >= expires:
        # SAML core 2.4.1.2: NotBefore MUST be earlier than NotOnOrAfter; valid at no time.
        raise InvalidMessage("bearer confirmation valid at no time", code="time_window")
    check_not_on_or_after(expires, expect, "a bearer confirmation's NotOnOrAfter")
    check_not_before(not_before, expect, "a bearer confirmation's NotBefore")


def _address_ok(address: str | None) -> bool:
    """An Address, when given, must at least be an IP address (pysaml2's rule; the broker does
    not bind logins to the student's address, which changes under mobile networks)."""
    if address is None:
        return True
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _check_authn_statement(assertion: etree._Element) -> float | None:
    """One AuthnStatement; returns its SessionNotOnOrAfter.

    A SessionNotOnOrAfter that has passed is no reason to refuse: SAML core 2.7.2 makes it the
    end of the session the service provider may keep on the strength of this assertion, not a
    bound on accepting it (the Conditions' and the bearer confirmations' NotOnOrAfter are that).
    The login is answered and no SSO session is opened (`LoginFlow.new_session`), as within the
    skew before."""
    statements = assertion.findall(_q("AuthnStatement"))
    if len(statements) != 1:
        raise InvalidMessage("not exactly one AuthnStatement", code="response_refused")
    return saml_epoch(
        statements[0].get("SessionNotOnOrAfter"), what="the AuthnStatement's SessionNotOnOrAfter"
    )


# -- reading -------------------------------------------------------------------------------------


def _read(assertion: etree._Element, window: Window, session_end: float | None) -> ReadResponse:
    name_id = assertion.find(f"{_q('Subject')}/{_q('NameID')}")
    statement = assertion.find(_q("AuthnStatement"))
    assert statement is not None  # _check_authn_statement
    context = statement.find(_q("AuthnContext"))
    ref = context.find(_q("AuthnContextClassRef")) if context is not None else None
    ref_text = element_text(ref) if ref is not None else ""
    authorities = (
        ()
        if context is None
        else tuple(
            text
            for text in (
                element_text(a).strip() for a in context.iterfind(_q("AuthenticatingAuthority"))
            )
            if text
        )
    )
    instant = saml_epoch(statement.get("AuthnInstant"), what="the AuthnStatement's AuthnInstant")
    if instant is None:
        # Required by the schema; never replaced by "now", which would pass any login as fresh.
        raise InvalidMessage("AuthnStatement without AuthnInstant", code="time_window")
    return ReadResponse(
        assertion_id=assertion.get("ID") or "",
        window=window,
        name_id=_name_id(name_id),
        attributes=tuple(
            Attribute(
                attribute.get("Name") or "",
                attribute.get("FriendlyName"),
                tuple(
                    text
                    for text in map(element_text, attribute.findall(_q("AttributeValue")))
                    if text
                ),
            )
            for attribute in assertion.iterfind(f"{_q('AttributeStatement')}/{_q('Attribute')}")
        ),
        authn_instant=instant,
        authn_context=ref_text.strip() if ref_text else None,
        session_index=statement.get("SessionIndex") or None,
        session_not_on_or_after=session_end,
        authorities=authorities,
    )


def _name_id(element: etree._Element | None) -> NameId | None:
    if element is None:
        return None
    text = element_text(element)
    if not text:
        return None
    return NameId(
        text, element.get("Format"), element.get("NameQualifier"), element.get("SPNameQualifier")
    )
