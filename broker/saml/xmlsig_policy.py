"""What an XML signature must look like before we let libxmlsec verify it (security.md, SAML).

libxmlsec checks that a signature is mathematically right; it does not check that the signature
covers the element the caller is about to trust, nor that it avoids weak or dangerous algorithms.
These checks run on the parsed tree, before any cryptography, and fail with a reason code only:
the message text ends up in pysaml2's log lines, so it never quotes the XML.
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped,unused-ignore]  # no stubs pinned
from saml2.sigver import SignatureError

from broker.saml.xml_parsing import has_doctype, parse_untrusted

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XENC_NS = "http://www.w3.org/2001/04/xmlenc#"

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
# In the broker's order of preference, as its metadata announces them (saml/entities.py).
SIGNING_METHODS = (RSA_SHA256, RSA_SHA384, RSA_SHA512, ECDSA_SHA256, ECDSA_SHA384, ECDSA_SHA512)
ALLOWED_SIGNATURE_ALGORITHMS = frozenset(SIGNING_METHODS)

SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
DIGEST_METHODS = (SHA256, SHA384, SHA512)
ALLOWED_DIGESTS = frozenset(DIGEST_METHODS)

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ALLOWED_TRANSFORMS = frozenset({ENVELOPED, EXC_C14N})

_SIGNATURE = f"{{{DS_NS}}}Signature"


class PolicyViolation(SignatureError):  # type: ignore[misc]  # saml2 ships no type hints
    """A signature shape the broker refuses; `reason` is the reason code alone."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"xmlsig: {reason}")
        self.reason = reason


def refuse(reason: str) -> PolicyViolation:
    """The one exception type pysaml2's callers understand, carrying only a reason code."""
    return PolicyViolation(reason)


def parse_document(text: str | bytes) -> etree._ElementTree:
    # lxml refuses a str that carries an encoding declaration, and pysaml2 hands us exactly
    # that when it signs twice (assertion, then response); bytes avoid the special case.
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        root = parse_untrusted(data)
    except etree.XMLSyntaxError as err:
        raise refuse("malformed_xml") from err
    if has_doctype(root):
        raise refuse("doctype_present")
    return root.getroottree()


def serialise(tree: etree._ElementTree) -> str:
    # With a declaration, as `xmlsec1` writes it: pysaml2 feeds one signer's output to the next.
    data: bytes = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return data.decode("utf-8")


# Compiled once: `element.xpath(...)` compiles the expression again on every call. lxml
# serialises evaluations of one XPath object with a lock of its own, so threads may share it.
_BY_ID = etree.XPath("//*[@ID=$node_id]")


def find_by_id(tree: etree._ElementTree, node_id: str) -> etree._Element:
    """The single element carrying ID=node_id; two of them is a wrapping attempt."""
    found = _BY_ID(tree.getroot(), node_id=node_id)
    if not isinstance(found, list) or len(found) != 1:
        raise refuse("id_not_unique" if isinstance(found, list) and found else "id_not_found")
    element = found[0]
    if not isinstance(element, etree._Element):
        raise refuse("id_not_found")
    return element


def check_node_name(element: etree._Element, node_name: str | None) -> None:
    # pysaml2 names the signed class as "<namespace>:<local name>"; the element we verify must be
    # that class, so an Assertion ID can never vouch for a Response or the other way round.
    if not node_name:
        return
    qname = etree.QName(element)
    if f"{qname.namespace}:{qname.localname}" != node_name:
        raise refuse("node_name_mismatch")


def enveloped_signature(element: etree._Element) -> etree._Element:
    """The one ds:Signature that is a direct child of `element`."""
    signatures = [child for child in element if child.tag == _SIGNATURE]
    if len(signatures) != 1:
        raise refuse("signature_count")
    return signatures[0]


def _one(parent: etree._Element, local: str) -> etree._Element:
    found = parent.findall(f"{{{DS_NS}}}{local}")
    if len(found) != 1:
        raise refuse(f"{local.lower()}_count")
    return found[0]


def check_signature_shape(signature: etree._Element, element: etree._Element) -> None:
    """Refuse anything but the SAML profile's one enveloped, exclusive-c14n, SHA-2 signature.

    Used for verifying and for signing, so we never emit what we would not accept.
    """
    element_id = element.get("ID")
    if not element_id:
        raise refuse("parent_without_id")
    if signature.find(f".//{{{DS_NS}}}Object") is not None:
        raise refuse("object_present")

    signed_info = _one(signature, "SignedInfo")
    if _one(signed_info, "CanonicalizationMethod").get("Algorithm") != EXC_C14N:
        raise refuse("canonicalization_refused")
    if _one(signed_info, "SignatureMethod").get("Algorithm") not in ALLOWED_SIGNATURE_ALGORITHMS:
        raise refuse("signature_algorithm_refused")

    reference = _one(signed_info, "Reference")
    if reference.get("URI") != f"#{element_id}":
        raise refuse("reference_not_parent")
    if _one(reference, "DigestMethod").get("Algorithm") not in ALLOWED_DIGESTS:
        raise refuse("digest_algorithm_refused")

    transforms = reference.findall(f"{{{DS_NS}}}Transforms/{{{DS_NS}}}Transform")
    algorithms = [transform.get("Algorithm") for transform in transforms]
    if len(reference.findall(f"{{{DS_NS}}}Transforms")) > 1:
        raise refuse("transforms_count")
    if ENVELOPED not in algorithms or len(algorithms) != len(set(algorithms)):
        raise refuse("transforms_refused")
    if not set(algorithms) <= ALLOWED_TRANSFORMS:
        raise refuse("transforms_refused")


def locate_signed_element(
    tree: etree._ElementTree, node_name: str | None, node_id: str | None
) -> tuple[etree._Element, etree._Element]:
    """The element pysaml2 asks about and its enveloped signature, both checked."""
    element = find_by_id(tree, node_id) if node_id else tree.getroot()
    check_node_name(element, node_name)
    signature = enveloped_signature(element)
    check_signature_shape(signature, element)
    return element, signature
