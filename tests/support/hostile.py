"""Hostile SAML messages for the attack suite, built for this project.

A message starts as the unsigned Response pysaml2 builds for a school (tests/support/forge.py),
is parsed with lxml, mutated, and signed with libxmlsec under whatever key, algorithm or
transform the attack needs, so a refusal is caused by the policy under test and not by a
signature that happened to be broken. The XML signature wrapping family (XSW1-XSW8) follows the
catalogue of Somorovsky et al., "On Breaking SAML" (USENIX Security 2012), in the form tools such
as SAML Raider apply it: a signed original kept somewhere the verifier finds it, an evil copy
where the application reads.
"""

from __future__ import annotations

import base64
import copy
import socket
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import xmlsec
from lxml import etree

from broker.saml.xmlsig import _BACKEND
from tests.support.forge import NS, SAML, SAMLP

if TYPE_CHECKING:
    # xmlsec's stubs name the type of its transform constants only privately.
    from xmlsec.constants import __Transform as Transform

DS = NS["ds"]
XSLT_TRANSFORM = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XSL = "http://www.w3.org/1999/XSL/Transform"
T = xmlsec.constants


def parse(saml_response: str) -> etree._Element:
    return etree.fromstring(base64.b64decode(saml_response))


def encode(doc: etree._Element | bytes) -> str:
    data = doc if isinstance(doc, bytes) else etree.tostring(doc)
    return base64.b64encode(data).decode()


def deflate(data: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode()


def assertion_of(doc: etree._Element) -> etree._Element:
    found = doc.find("saml:Assertion", NS)
    assert found is not None, "no assertion"
    return found


def name_id_of(element: etree._Element) -> etree._Element:
    found = element.find(".//saml:Subject/saml:NameID", NS)
    assert found is not None, "no NameID"
    return found


def drop_signature(element: etree._Element) -> etree._Element:
    for signature in element.findall("ds:Signature", NS):
        element.remove(signature)
    return element


@dataclass(frozen=True)
class Signer:
    """Signs elements the way an IdP does: enveloped, exclusive c14n, reference to the parent
    `ID`. Everything else is a knob an attack can turn."""

    key_file: Path
    cert_file: Path
    method: Transform = T.TransformRsaSha256
    digest: Transform = T.TransformSha256
    extra_transforms: tuple[Transform, ...] = ()
    key_info_cert: Path | None = None  # a certificate to embed in KeyInfo
    hmac_key: bytes | None = None  # sign with HMAC under these bytes instead of the RSA key
    reference_id: str | None = None  # reference another ID than the parent's
    stylesheet: bool = False  # fill an XSLT transform with a stylesheet

    def sign(self, element: etree._Element) -> etree._Element:
        element_id = element.get("ID")
        assert element_id, "only elements with an ID are signed"
        signature = xmlsec.template.create(element, T.TransformExclC14N, self.method, ns="ds")
        issuer = element.find("saml:Issuer", NS)
        element.insert(0 if issuer is None else element.index(issuer) + 1, signature)
        reference = xmlsec.template.add_reference(
            signature, self.digest, uri=f"#{self.reference_id or element_id}"
        )
        xmlsec.template.add_transform(reference, T.TransformEnveloped)
        for transform in self.extra_transforms:
            node = xmlsec.template.add_transform(reference, transform)
            if transform is T.TransformXslt and self.stylesheet:
                node.append(_identity_stylesheet())
        xmlsec.template.add_transform(reference, T.TransformExclC14N)
        if self.key_info_cert is not None:
            key_info = xmlsec.template.ensure_key_info(signature)
            x509 = xmlsec.template.add_x509_data(key_info)
            xmlsec.template.x509_data_add_certificate(x509)
        context = xmlsec.SignatureContext()
        if self.hmac_key is not None:
            context.key = xmlsec.Key.from_binary_data(T.KeyDataHmac, self.hmac_key)
        else:
            context.key = xmlsec.Key.from_file(str(self.key_file), T.KeyDataFormatPem)
            cert = self.key_info_cert or self.cert_file
            context.key.load_cert_from_file(str(cert), T.KeyDataFormatPem)
        for node in element.getroottree().getroot().iter():
            if isinstance(node.tag, str) and node.get("ID"):
                context.register_id(node, "ID")
        context.sign(signature)
        return element


def _identity_stylesheet() -> etree._Element:
    return etree.fromstring(
        f'<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0">'
        '<xsl:template match="@*|node()"><xsl:copy>'
        '<xsl:apply-templates select="@*|node()"/></xsl:copy></xsl:template>'
        "</xsl:stylesheet>"
    )


def signed(
    doc: etree._Element, signer: Signer, *, response: bool = True, assertion: bool = True
) -> etree._Element:
    """Sign the assertion, then the Response over it (each only where asked)."""
    if assertion:
        signer.sign(assertion_of(doc))
    if response:
        signer.sign(doc)
    return doc


# -- the signature wrapping family --------------------------------------------------------------


def evil_copy(assertion: etree._Element, subject: str) -> etree._Element:
    """The assertion, unsigned, about somebody else."""
    evil = drop_signature(copy.deepcopy(assertion))
    name_id_of(evil).text = subject
    return evil


def _replace(parent: etree._Element, old: etree._Element, new: etree._Element) -> None:
    parent.replace(old, new)


def xsw(variant: int, doc: etree._Element, subject: str, *, fresh_id: bool = False) -> None:
    """Apply XSW<variant> (1-8) to a signed Response `doc` in place: `subject` is the identity
    the attacker wants read. XSW1-2 need a signed Response, XSW3-8 a signed assertion.
    `fresh_id` gives the evil element an ID of its own (no duplicate ID to trip over), so the
    signature's reference no longer points at its parent."""
    original = assertion_of(doc)
    if variant in (1, 2):
        signature = doc.find("ds:Signature", NS)
        assert signature is not None, "XSW1-2 wrap a signed Response"
        kept = copy.deepcopy(doc)  # the signed original, whole
        drop_signature(kept)
        evil = evil_copy(original, subject)
        _replace(doc, original, evil)
        if fresh_id:
            doc.set("ID", "_evil-response")
            evil.set("ID", "_evil-assertion")
        if variant == 1:
            signature.append(kept)  # inside the Signature element
        else:
            doc.insert(doc.index(signature), kept)  # detached, before the Signature
        return
    signature = original.find("ds:Signature", NS)
    assert signature is not None, "XSW3-8 wrap a signed assertion"
    evil = evil_copy(original, subject)
    if fresh_id:
        evil.set("ID", "_evil-assertion")
    if variant == 3:
        doc.insert(doc.index(original), evil)  # evil first, original after it
    elif variant == 4:
        _replace(doc, original, evil)
        evil.append(original)  # original inside the evil one
    elif variant == 5:
        evil.insert(1, copy.deepcopy(signature))  # evil carries the original's signature
        _replace(doc, original, evil)
        doc.append(drop_signature(copy.deepcopy(original)))
    elif variant == 6:
        moved = copy.deepcopy(signature)
        evil.insert(1, moved)
        _replace(doc, original, evil)
        moved.append(drop_signature(copy.deepcopy(original)))  # original inside the signature
    elif variant == 7:
        extensions = etree.SubElement(doc, f"{{{SAMLP}}}Extensions")
        doc.insert(1, extensions)
        _replace(doc, original, evil)
        extensions.append(original)  # original in Extensions, where schema checks are lax
    elif variant == 8:
        moved = copy.deepcopy(signature)
        evil.insert(1, moved)
        _replace(doc, original, evil)
        holder = etree.SubElement(moved, f"{{{DS}}}Object")
        holder.append(drop_signature(copy.deepcopy(original)))
    else:
        raise ValueError(f"no XSW{variant}")


# -- encryption ---------------------------------------------------------------------------------

XENC = "http://www.w3.org/2001/04/xmlenc#"


def encrypted_data_for(fragment: etree._Element | str, cert: str) -> etree._Element:
    """An xenc:EncryptedData (AES-GCM, RSA-OAEP) for the holder of `cert` (PEM) whose plaintext
    is `fragment`, one element: serialised on its own, with its namespace declarations, as an
    IdP encrypts (exclusive c14n keeps a signature inside it valid)."""
    text = fragment if isinstance(fragment, str) else etree.tostring(fragment).decode()
    xml = _BACKEND.encrypt_assertion(f"<w>{text}</w>", cert, None, "aes128-gcm", "/w/*[1]")
    found = etree.fromstring(xml.encode()).find(f"{{{XENC}}}EncryptedData")
    assert found is not None
    return found


def encrypt_assertion(doc: etree._Element, cert: str) -> etree._Element:
    """Replace the Response's Assertion (signed or not) by an EncryptedAssertion for `cert`."""
    assertion = assertion_of(doc)
    wrapper = etree.Element(f"{{{SAML}}}EncryptedAssertion")
    wrapper.append(encrypted_data_for(assertion, cert))
    doc.replace(assertion, wrapper)
    return doc


# -- text tricks --------------------------------------------------------------------------------


def inject_comment(element: etree._Element, at: int) -> None:
    """Split the element's text with an empty comment after `at` characters: exclusive c14n
    drops comments, so the signature still verifies; a reader that takes only the first text
    node would see the shorter value."""
    text = element.text or ""
    element.text = text[:at]
    comment = etree.Comment("")
    comment.tail = text[at:]
    element.insert(0, comment)


def attribute_value(doc: etree._Element, friendly_or_name: str) -> etree._Element:
    for attribute in doc.iter(f"{{{SAML}}}Attribute"):
        if friendly_or_name in (attribute.get("Name"), attribute.get("FriendlyName")):
            value = attribute.find("saml:AttributeValue", NS)
            assert value is not None
            return value
    raise AssertionError(f"no attribute {friendly_or_name}")


# -- DTD payloads -------------------------------------------------------------------------------


def with_prolog(doc: etree._Element, prolog: str, *, reference: str | None = None) -> bytes:
    """The serialised message with `prolog` (a DOCTYPE) in front and, when given, `reference`
    (an entity reference) as the NameID's text."""
    if reference is not None:
        name_id_of(doc).text = "@@REF@@"
    xml = etree.tostring(doc).decode()
    if reference is not None:
        xml = xml.replace("@@REF@@", reference)
    return f'<?xml version="1.0"?>\n{prolog}\n{xml}'.encode()


def billion_laughs(levels: int = 10) -> str:
    lines = ['<!ENTITY lol0 "lol">']
    for level in range(1, levels):
        refs = f"&lol{level - 1};" * 10
        lines.append(f'<!ENTITY lol{level} "{refs}">')
    return "<!DOCTYPE samlp:Response [" + "".join(lines) + "]>"


def nested(depth: int, root: str = "Response") -> bytes:
    inner = "<x>" * depth + "</x>" * depth
    return (
        f'<samlp:{root} xmlns:samlp="{SAMLP}" ID="_deep" Version="2.0">'
        f'<samlp:Extensions xmlns="urn:x">{inner}</samlp:Extensions></samlp:{root}>'
    ).encode()


@dataclass
class Listener:
    """A loopback TCP listener that counts connections: proof that nothing was fetched."""

    port: int
    hits: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/evil.dtd"


@contextmanager
def loopback_listener() -> Iterator[Listener]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    listener = Listener(server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                try:
                    listener.hits.append(conn.recv(4096) or b"<connected>")
                except OSError:
                    listener.hits.append(b"<connected>")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join(2)
        server.close()
