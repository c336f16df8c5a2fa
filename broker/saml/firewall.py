"""The pre-parse firewall: checks every inbound SAML message before pysaml2 sees it.

pysaml2 parses with ElementTree and has had XXE, wrapping and XSLT flaws; refusing DOCTYPEs,
oversized and oddly shaped messages here means its parser only ever sees plain, small documents.
Signature details (algorithms, transforms, references) are enforced again in xmlsig.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from lxml import etree

from broker.core.errors import InvalidMessage
from broker.saml.xml_parsing import has_doctype, parse_untrusted
from broker.saml.xmlsig_policy import PolicyViolation, check_signature_shape

MAX_BODY_BYTES = 256 * 1024
MAX_INFLATED_BYTES = 128 * 1024
MAX_DEPTH = 64

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"

_BASE64_LINE_BREAKS = str.maketrans("", "", " \t\r\n")
# An element with more than MAX_DEPTH ancestors: the path from the document down to it has
# MAX_DEPTH + 2 element steps (the root is the first, at depth 0).
_TOO_DEEP = etree.XPath("/*" * (MAX_DEPTH + 2))
_IDS = etree.XPath("//@ID")
_OBJECTS = etree.XPath("//ds:Object", namespaces={"ds": DS})


def decode_post(value: str) -> bytes:
    """The base64 body of an HTTP-POST binding message, size-capped."""
    if len(value) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise InvalidMessage("POST message over the size cap", code="message_too_large")
    # Line breaks are legitimate (several SAML stacks wrap base64); any other character outside
    # the alphabet is refused rather than silently skipped, as validate=False would do.
    compact = value.translate(_BASE64_LINE_BREAKS)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMessage("POST message is not base64", code="malformed_message") from None


def inflate_redirect(value: str) -> bytes:
    """The deflated body of an HTTP-Redirect binding message, inflated with a streaming cap."""
    if len(value) > MAX_BODY_BYTES:
        raise InvalidMessage("Redirect message over the size cap", code="message_too_large")
    try:
        raw = base64.b64decode(value, validate=False)
        inflater = zlib.decompressobj(-15)
        # max_length stops a deflate bomb after the cap instead of after the damage.
        out = inflater.decompress(raw, MAX_INFLATED_BYTES + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise InvalidMessage(
            "Redirect message is not deflated base64", code="malformed_message"
        ) from None
    if len(out) > MAX_INFLATED_BYTES or inflater.unconsumed_tail:
        raise InvalidMessage("inflated message over the size cap", code="message_too_large")
    return out


def inspect(xml: bytes, *, root: str, assertions: int | None) -> etree._Element:
    """Parse `xml` strictly and check its shape; return the parsed tree for further reads.

    `root` is the expected root element's local name; `assertions` the exact number of
    `saml:Assertion` elements expected (None: not checked).
    """
    doc = parse_message(xml)
    if etree.QName(doc).namespace != SAMLP or etree.QName(doc).localname != root:
        raise InvalidMessage(f"expected samlp:{root}", code="unexpected_message")
    inspect_tree(doc, assertions=assertions)
    return doc


def parse_message(xml: bytes) -> etree._Element:
    """`xml` parsed, if it is within the size cap, carries no DOCTYPE and is well-formed: the
    first step of `inspect`, and of reading a SOAP envelope around a message (logout_soap.py)."""
    if len(xml) > MAX_BODY_BYTES:
        raise InvalidMessage("message over the size cap", code="message_too_large")
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise InvalidMessage("DOCTYPE or ENTITY in message", code="doctype_refused")
    try:
        doc = parse_untrusted(xml)
    except etree.XMLSyntaxError:
        raise InvalidMessage("message is not well-formed XML", code="malformed_message") from None
    if has_doctype(doc):
        raise InvalidMessage("DOCTYPE in message", code="doctype_refused")
    return doc


def inspect_tree(doc: etree._Element, *, assertions: int | None) -> None:
    """`inspect`'s checks of a parsed tree, for a tree the broker changed since: a school's
    decrypted assertion put in place of its EncryptedAssertion (encrypted_assertion.py)."""
    _check_shape(doc)
    _check_signatures(doc)
    if assertions is not None:
        found = doc.findall(f".//{{{SAML}}}Assertion")
        encrypted = doc.findall(f".//{{{SAML}}}EncryptedAssertion")
        if len(found) + len(encrypted) != assertions:
            raise InvalidMessage("wrong number of assertions", code="assertion_count")


def _check_shape(doc: etree._Element) -> None:
    """No element deeper than MAX_DEPTH, no ID twice, no ds:Object anywhere.

    Three compiled XPath queries in libxml2 decide whether the message passes (~6 us, where
    a Python walk over every element and its ancestors took ~32 us of every ACS). Only a
    message that breaks a rule is walked, to name the first breach in document order, as
    before. Comments and processing instructions count for nothing: `*` and `@ID` select
    elements only."""
    ids = _IDS(doc)
    # Anything but a list of values (never seen) is left to the walk to judge: fail closed.
    duplicates = not isinstance(ids, list) or len(ids) != len(set(ids))
    if duplicates or _TOO_DEEP(doc) or _OBJECTS(doc):
        _first_breach(doc)


def _first_breach(doc: etree._Element) -> None:
    """Refuse with the first breach of `_check_shape`'s rules in document order."""
    ids: set[str] = set()
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions carry no identity data
        if _depth(element) > MAX_DEPTH:
            raise InvalidMessage("message nested too deeply", code="message_too_deep")
        ident = element.get("ID")
        if ident is not None:
            if ident in ids:
                raise InvalidMessage("duplicate ID in message", code="duplicate_id")
            ids.add(ident)
        if element.tag == f"{{{DS}}}Object":
            raise InvalidMessage("ds:Object in message", code="signature_object")
    raise InvalidMessage("message shape refused", code="malformed_message")  # not reached


def _depth(element: etree._Element) -> int:
    depth = 0
    parent = element.getparent()
    while parent is not None and depth <= MAX_DEPTH:
        depth += 1
        parent = parent.getparent()
    return depth


def _check_signatures(doc: etree._Element) -> None:
    """Every ds:Signature, wherever it sits, must be the one enveloped signature of its parent,
    referencing that parent's ID, with allowed transforms and algorithms only.

    xmlsig applies the same policy to the signatures pysaml2 asks about; checking every one here
    means a signature pysaml2 would skip (a wrapped copy, one in an Extensions element) cannot
    carry an XSLT transform or a reference elsewhere past the firewall either, and each
    refusal names its precise reason in the audit line.
    """
    for signature in doc.iter(f"{{{DS}}}Signature"):
        parent = signature.getparent()
        if parent is None:
            raise InvalidMessage("signature without parent", code="signature_placement")
        siblings = [child for child in parent if child.tag == f"{{{DS}}}Signature"]
        if len(siblings) != 1:
            raise InvalidMessage("two signatures on one element", code="signature_count")
        try:
            check_signature_shape(signature, parent)
        except PolicyViolation as violation:
            raise InvalidMessage("signature shape refused", code=violation.reason) from None


STATUS_PREFIX = "urn:oasis:names:tc:SAML:2.0:status:"
STATUS_SUCCESS = STATUS_PREFIX + "Success"


def top_status(response: etree._Element) -> str:
    """The top-level StatusCode's Value of a Response or LogoutResponse ("" without one)."""
    code = _top_status_code(response)
    return code.get("Value", "") if code is not None else ""


def second_status(response: etree._Element) -> str:
    """The second-level StatusCode's Value (the one inside the top-level code, SAML core
    3.2.2.2: "Responder/PartialLogout", "Responder/AuthnFailed") of a Response or
    LogoutResponse; "" without one."""
    top = _top_status_code(response)
    code = top.find(f"{{{SAMLP}}}StatusCode") if top is not None else None
    return code.get("Value", "") if code is not None else ""


def status_names(top: str, second: str = "") -> str:
    """A status as the log may carry it: the standard names of its top-level and second-level
    codes ("Responder/PartialLogout"), "other" for any other value: the peer's own text could
    forge log lines."""
    names = [_status_name(value) for value in (top, second) if value]
    return "/".join(names) or "other"


def _status_name(value: str) -> str:
    name = value.removeprefix(STATUS_PREFIX)
    return name if value.startswith(STATUS_PREFIX) and name.isalpha() else "other"


def _top_status_code(response: etree._Element) -> etree._Element | None:
    return response.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")


def is_success(response: etree._Element) -> bool:
    """Whether the Response's top-level status code is Success."""
    return top_status(response) == STATUS_SUCCESS


def require_assertion_count(response: etree._Element) -> None:
    """A successful Response carries exactly one assertion (plain or encrypted); an error
    Response none. More than one is how signature-wrapping attacks smuggle a second identity."""
    success = is_success(response)
    count = len(response.findall(f".//{{{SAML}}}Assertion")) + len(
        response.findall(f".//{{{SAML}}}EncryptedAssertion")
    )
    if count != (1 if success else 0):
        raise InvalidMessage("wrong number of assertions", code="assertion_count")
