"""A peer's signing certificates from its metadata (base64 DER, as pysaml2 lists them), read
once per certificate: the public key for the broker's own checks of Redirect-binding
signatures (redirect_signature.py), and the same key, or the certificate itself, for libxmlsec's
checks of XML signatures (assertion_reader.py)."""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

_KEY_CACHE_SIZE = 256


def certificate_der(cert: str) -> bytes | None:
    """The certificate's DER bytes, or None when its text is not base64."""
    try:
        return base64.b64decode("".join(cert.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


@functools.lru_cache(maxsize=_KEY_CACHE_SIZE)
def metadata_public_key(cert: str) -> CertificatePublicKeyTypes | None:
    """The certificate's public key, parsed once per certificate, not per message; None for
    one `cryptography` cannot read (it verifies nothing, the next key may). Key objects are
    immutable, so threads share them."""
    der = certificate_der(cert)
    if der is None:
        return None
    try:
        return x509.load_der_x509_certificate(der).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
