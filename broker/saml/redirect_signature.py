"""The Redirect binding's query-string signature: made with the broker's key, or checked
against the peer's metadata keys.

Checking is the broker's own, with `cryptography`, over the query as received
(redirect_query.py), for RSA (PKCS#1 v1.5) and ECDSA with SHA-256/384/512. pysaml2's
verify_redirect_signature is not used: it re-encodes the decoded values with Python's urlencode,
so a signature made by PHP, .NET or any encoder that differs from Python's in the freedom RFC
3986 leaves never verified (SAML bindings 3.4.4.1 forbids exactly that), and it has no ECDSA.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote_plus, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from broker.core.errors import InvalidMessage
from broker.saml.metadata_keys import metadata_public_key
from broker.saml.redirect_query import RELAY_STATE, SIG_ALG, SIGNATURE, RedirectQuery
from broker.saml.xmlsig_policy import (
    ALLOWED_SIGNATURE_ALGORITHMS,
    ECDSA_SHA256,
    ECDSA_SHA384,
    ECDSA_SHA512,
    RSA_SHA256,
    RSA_SHA384,
    RSA_SHA512,
)

_SIGALG_PARAM = "SigAlg=" + quote_plus(RSA_SHA256, safe="")
# Base64 has three characters form-encoding changes; str.translate does in one C pass what
# quote_plus does per character in Python (a deflated AuthnRequest is ~500 characters).
_BASE64_QUOTED = str.maketrans({"+": "%2B", "/": "%2F", "=": "%3D"})

# The allow-list (xmlsig_policy.ALLOWED_SIGNATURE_ALGORITHMS), split by key type.
_RSA_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    RSA_SHA256: hashes.SHA256(),
    RSA_SHA384: hashes.SHA384(),
    RSA_SHA512: hashes.SHA512(),
}
_ECDSA_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    ECDSA_SHA256: hashes.SHA256(),
    ECDSA_SHA384: hashes.SHA384(),
    ECDSA_SHA512: hashes.SHA512(),
}
# An RSA-8192 signature is 1,024 bytes, an ECDSA P-521 one 132: anything longer is refused
# before base64 is decoded.
MAX_SIGNATURE_CHARS = 4 * 1024


def signed_redirect_url(
    location: str,
    message: tuple[str, str],
    relay_state: str | None,
    key: rsa.RSAPrivateKey,
) -> str:
    """`location` with the query of a Redirect-binding message signed RSA-SHA256 with `key`.

    `message` is ("SAMLRequest" or "SAMLResponse", its deflated base64 value). The signed octets
    are the parameters as they stand in the query, in the binding's order (SAML bindings
    3.4.4.1), form-encoded as pysaml2 encodes them, so its checkers and others agree."""
    parts = [f"{message[0]}={message[1].translate(_BASE64_QUOTED)}"]
    if relay_state:
        parts.append("RelayState=" + quote_plus(relay_state, safe=""))
    parts.append(_SIGALG_PARAM)
    signed = "&".join(parts)
    signature = key.sign(signed.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    encoded = base64.b64encode(signature).decode("ascii").translate(_BASE64_QUOTED)
    query = f"{signed}&Signature={encoded}"
    return f"{location}{'&' if urlsplit(location).query else '?'}{query}"


def verify_query_signature(
    key: CertificatePublicKeyTypes, sigalg: str, signature: bytes, octets: bytes
) -> bool:
    """Whether `signature` is `key`'s `sigalg` signature over `octets`.

    RSA: PKCS#1 v1.5. ECDSA: XML-DSig's SignatureValue, r and s concatenated, each the curve's
    length in bytes (RFC 4051 section 3.3), or the DER sequence that Java's and .NET's default
    ECDSA signers make, which some SAML stacks send over this binding. The two cannot be
    confused: r‖s has exactly twice the curve's length, which a DER sequence (six bytes of
    framing around r and s without their leading zeros) reaches with odds of about 2^-48, and
    then it fails as r‖s and is refused, never accepted wrongly. Either way the signature must
    verify over the octets with the metadata key, so taking both forms makes nothing forgeable.
    A key of the other type, or an algorithm outside the allow-list, verifies nothing."""
    try:
        if isinstance(key, rsa.RSAPublicKey) and sigalg in _RSA_DIGESTS:
            key.verify(signature, octets, padding.PKCS1v15(), _RSA_DIGESTS[sigalg])
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and sigalg in _ECDSA_DIGESTS:
            half = (key.curve.key_size + 7) // 8
            der = signature
            if len(signature) == 2 * half:
                r = int.from_bytes(signature[:half], "big")
                s = int.from_bytes(signature[half:], "big")
                der = encode_dss_signature(r, s)
            # Anything else is read as DER; a value that is not DER does not verify.
            key.verify(der, octets, ec.ECDSA(_ECDSA_DIGESTS[sigalg]))
            return True
    except InvalidSignature:
        return False
    return False


def _signature_bytes(text: str) -> bytes:
    if len(text) > MAX_SIGNATURE_CHARS:
        raise InvalidMessage("Redirect Signature too long", code="bad_signature")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMessage("Redirect Signature not base64", code="bad_signature") from None


def check_redirect_signature(
    entity: Any,
    issuer: str,
    role: str,
    message: tuple[str, str],
    relay_state: str | None,
    query: RedirectQuery | None,
) -> None:
    """Refuse unless the query's signature verifies with a signing key of `issuer`'s `role`
    descriptor ("spsso" or "idpsso") in the metadata `entity` (a pysaml2 Server or
    Saml2Client) holds; every signing key listed is tried (a key rollover lists two)."""
    try:
        certs = [cert for _, cert in entity.metadata.certs(issuer, role, "signing")]
    except KeyError:
        certs = []  # no such role (any more): no key, so nothing verifies
    check_query_signature(certs, message, relay_state, query)


def check_query_signature(
    certs: list[str],
    message: tuple[str, str],
    relay_state: str | None,
    query: RedirectQuery | None,
) -> None:
    """Refuse unless the query's Signature over `message` (("SAMLRequest" or "SAMLResponse",
    its decoded value)) verifies with one of `certs` (metadata certificates, base64 DER).

    `message` and `relay_state` are what the caller goes on to read; they must be the values
    of `query` itself, so the signature covers exactly what is read."""
    signature = query.value(SIGNATURE) if query is not None else None
    if query is None or signature is None:
        raise InvalidMessage("unsigned Redirect message", code="request_unsigned")
    sigalg = query.value(SIG_ALG)
    if sigalg is None:
        raise InvalidMessage("Signature without SigAlg", code="bad_signature")
    if sigalg not in ALLOWED_SIGNATURE_ALGORITHMS:
        # SHA-1, MD5, HMAC, DSA and anything unknown, before any cryptography (security.md).
        raise InvalidMessage("SigAlg not allowed", code="weak_algorithm")
    if query.value(message[0]) != message[1] or query.value(RELAY_STATE) != relay_state:
        raise InvalidMessage("read values are not the signed ones", code="bad_signature")
    octets = query.signed_octets(message[0])
    signed = _signature_bytes(signature)
    keys = (metadata_public_key(cert) for cert in certs)
    if not any(
        key is not None and verify_query_signature(key, sigalg, signed, octets) for key in keys
    ):
        raise InvalidMessage("Redirect message signature invalid", code="bad_signature")
