"""Assertion encryption in process: AES-GCM content keys, RSA-OAEP key transport, nothing else.

CBC modes (3DES, AES-CBC) are open to padding-oracle attacks on XML encryption and RSA PKCS#1 v1.5
key transport to Bleichenbacher's attack, so neither is accepted, in either direction
(security.md: "Encrypted assertions: AES-GCM with RSA-OAEP only").
"""

from __future__ import annotations

import base64
import logging
import secrets

import xmlsec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree  # type: ignore[import-untyped,unused-ignore]  # no stubs pinned
from saml2.sigver import DecryptError, EncryptError, SignatureError

from broker.saml.xmlsig_policy import DS_NS, XENC_NS, parse_document, serialise

log = logging.getLogger(__name__)

AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
AES192_GCM = "http://www.w3.org/2009/xmlenc11#aes192-gcm"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"

# Content algorithm -> AES key length in bytes.
_CONTENT_ALGORITHMS = {AES128_GCM: 16, AES256_GCM: 32}
_KEY_TRANSPORT = frozenset({RSA_OAEP_MGF1P, RSA_OAEP})
# OAEP's own digest (not a signature digest): SHA-1 is the default and still sound inside OAEP.
_OAEP_DIGESTS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)

# pysaml2's Server always asks for "des-192" and a 3DES template (entity._encrypt_assertion has no
# way to choose), so that name means "the default" here and gets AES-256-GCM instead.
_SESSION_KEYS = {
    "aes128-gcm": (128, xmlsec.constants.TransformAes128Gcm),
    "aes256-gcm": (256, xmlsec.constants.TransformAes256Gcm),
}
_PYSAML2_DEFAULT_KEY_TYPE = "des-192"

_ASSERTION_XPATH = (
    "/*[local-name()='Response']/*[local-name()='EncryptedAssertion']/*[local-name()='Assertion']"
)


def _method(parent: etree._Element) -> str | None:
    method = parent.find(f"{{{XENC_NS}}}EncryptionMethod")
    return None if method is None else method.get("Algorithm")


def _encrypted_key_for(enc_data: etree._Element) -> etree._Element:
    """The EncryptedKey in the data's KeyInfo, or the SAML-style sibling in EncryptedAssertion."""
    inner = enc_data.findall(f"{{{DS_NS}}}KeyInfo/{{{XENC_NS}}}EncryptedKey")
    parent = enc_data.getparent()
    siblings = [] if parent is None else parent.findall(f"{{{XENC_NS}}}EncryptedKey")
    candidates = inner + siblings
    if len(candidates) != 1:
        raise DecryptError("xmlenc: encrypted_key_count")
    return candidates[0]


def _check_key_transport(enc_key: etree._Element) -> None:
    if _method(enc_key) not in _KEY_TRANSPORT:
        raise DecryptError("xmlenc: key_transport_refused")
    method = enc_key.find(f"{{{XENC_NS}}}EncryptionMethod")
    digest = None if method is None else method.find(f"{{{DS_NS}}}DigestMethod")
    if digest is not None and digest.get("Algorithm") not in _OAEP_DIGESTS:
        raise DecryptError("xmlenc: oaep_digest_refused")


def decrypt_document(enctext: str | bytes, private_key: xmlsec.Key) -> str:
    """Decrypt the first EncryptedData in document order, as `xmlsec1 --decrypt` does.

    Two steps instead of a keys manager: unwrap the content key with our RSA key, then decrypt the
    data with exactly that AES key, so KeyInfo hints in the message never pick a key for us.
    """
    try:
        tree = parse_document(enctext)
    except SignatureError as err:
        raise DecryptError("xmlenc: malformed_xml") from err
    return _decrypt_tree(tree, private_key)


def _decrypt_tree(tree: etree._ElementTree, private_key: xmlsec.Key) -> str:
    enc_data = tree.getroot().find(f".//{{{XENC_NS}}}EncryptedData")
    if enc_data is None:
        raise DecryptError("xmlenc: no_encrypted_data")
    decrypt_in_place(enc_data, private_key)
    return serialise(tree)


class NotOurKey(DecryptError):  # type: ignore[misc]  # saml2 ships no type hints
    """The content key was not wrapped for `private_key`: another of our keys may fit."""


def decrypt_in_place(enc_data: etree._Element, private_key: xmlsec.Key) -> None:
    """Replace `enc_data` in its tree by its plaintext (the tree of the caller, whose other
    element references stay valid); raises DecryptError, NotOurKey when the key is not ours."""
    key_length = _CONTENT_ALGORITHMS.get(_method(enc_data) or "")
    if key_length is None:
        raise DecryptError("xmlenc: content_algorithm_refused")
    enc_key = _encrypted_key_for(enc_data)
    _check_key_transport(enc_key)

    try:
        key_ctx = xmlsec.EncryptionContext()
        key_ctx.key = private_key
        session = key_ctx.decrypt(enc_key)
    except xmlsec.Error as err:
        raise NotOurKey("xmlenc: key_unwrap_failed") from err
    if not isinstance(session, bytes) or len(session) != key_length:
        raise DecryptError("xmlenc: session_key_length")

    try:
        data_ctx = xmlsec.EncryptionContext()
        data_ctx.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, session)
        data_ctx.decrypt(enc_data)
    except xmlsec.Error as err:
        raise DecryptError("xmlenc: content_decrypt_failed") from err
    # The unwrapped key is spent: a sibling EncryptedKey left behind would only confuse a reader.
    if enc_key.getparent() is not enc_data and (holder := enc_key.getparent()) is not None:
        holder.remove(enc_key)


def encrypt_document(
    statement: str, recipient_cert: xmlsec.Key, key_type: str, node_xpath: str | None
) -> str:
    """Replace the node at `node_xpath` (default: the Response's Assertion) by EncryptedData."""
    if key_type == _PYSAML2_DEFAULT_KEY_TYPE:
        key_type = "aes256-gcm"
    if key_type not in _SESSION_KEYS:
        raise EncryptError("xmlenc: content_algorithm_refused")
    bits, transform = _SESSION_KEYS[key_type]

    try:
        tree = parse_document(statement)
    except SignatureError as err:
        raise EncryptError("xmlenc: malformed_xml") from err
    found = tree.getroot().xpath(node_xpath or _ASSERTION_XPATH)
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        raise EncryptError("xmlenc: nothing_to_encrypt")
    target = found[0]

    # Our own template rather than pysaml2's: pysaml2's names 3DES and carries a KeyName that a
    # keys manager would try to match; the recipient tries its own keys and needs neither.
    template = xmlsec.template.encrypted_data_create(
        target, transform, type=xmlsec.constants.TypeEncElement, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    enc_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_key)

    manager = xmlsec.KeysManager()
    manager.add_key(recipient_cert)
    try:
        ctx = xmlsec.EncryptionContext(manager)
        ctx.key = xmlsec.Key.generate(
            xmlsec.constants.KeyDataAes, bits, xmlsec.constants.KeyDataTypeSession
        )
        ctx.encrypt_xml(template, target)
    except xmlsec.Error as err:
        raise EncryptError("xmlenc: encrypt_failed") from err
    return serialise(tree)


SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
ELEMENT_TYPE = f"{XENC_NS}Element"
# AES-GCM as XML Encryption 1.1 (5.2.4) writes it: a 96-bit IV, then the ciphertext and its
# 128-bit tag, base64 in one CipherValue. The key length of each data algorithm, in bytes.
GCM_KEY_BYTES = {AES128_GCM: 16, AES192_GCM: 24, AES256_GCM: 32}
_GCM_IV_BYTES = 12
# RSA-OAEP-MGF1P with its defaults: SHA-1 as OAEP's digest and in MGF1 (xmlenc 5.4.2). Inside
# OAEP SHA-1 needs no collision resistance, and it is what every SP library reads.
_OAEP_MGF1P = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA1()),  # noqa: S303
    algorithm=hashes.SHA1(),  # noqa: S303
    label=None,
)


def encrypt_assertion_in_place(
    response: etree._Element, recipient: rsa.RSAPublicKey, data_algorithm: str
) -> None:
    """Replace the Response's (signed) Assertion by an EncryptedAssertion for `recipient`: its
    EncryptedData (Type Element, `data_algorithm`, a fresh AES key) with that key wrapped by
    RSA-OAEP-MGF1P in an EncryptedKey inside its KeyInfo, where every SP library looks for it.

    The plaintext is the Assertion serialised on its own, with the namespace declarations it
    inherits from the Response: a reader may parse it apart from the Response, so it must stand
    alone; exclusive c14n leaves its signature as it was. Done with `cryptography` rather than
    libxmlsec: the binding cannot wrap a key on its own, and its keys manager, which can, loads
    the system's CA bundle for its X.509 store, ~12 ms a message."""
    assertion = response.find(f"{{{SAML_NS}}}Assertion")
    if assertion is None:
        raise EncryptError("xmlenc: nothing_to_encrypt")
    session = secrets.token_bytes(GCM_KEY_BYTES[data_algorithm])
    iv = secrets.token_bytes(_GCM_IV_BYTES)
    ciphertext = iv + AESGCM(session).encrypt(iv, etree.tostring(assertion), None)
    wrapped = recipient.encrypt(session, _OAEP_MGF1P)

    wrapper = etree.Element(f"{{{SAML_NS}}}EncryptedAssertion")
    data = etree.SubElement(
        wrapper, f"{{{XENC_NS}}}EncryptedData", Type=ELEMENT_TYPE, nsmap={"xenc": XENC_NS}
    )
    etree.SubElement(data, f"{{{XENC_NS}}}EncryptionMethod", Algorithm=data_algorithm)
    key_info = etree.SubElement(data, f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    enc_key = etree.SubElement(key_info, f"{{{XENC_NS}}}EncryptedKey")
    etree.SubElement(enc_key, f"{{{XENC_NS}}}EncryptionMethod", Algorithm=RSA_OAEP_MGF1P)
    _cipher_data(enc_key, wrapped)
    _cipher_data(data, ciphertext)
    response.replace(assertion, wrapper)


def _cipher_data(parent: etree._Element, value: bytes) -> None:
    cipher_data = etree.SubElement(parent, f"{{{XENC_NS}}}CipherData")
    etree.SubElement(cipher_data, f"{{{XENC_NS}}}CipherValue").text = base64.b64encode(
        value
    ).decode("ascii")
