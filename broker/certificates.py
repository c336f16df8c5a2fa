"""Self-signed signing key pairs for SAML metadata.

SAML peers trust the certificate published in metadata, not a CA chain, so a self-signed
certificate is all the demo and a fresh installation need. `self_signed_pair` is pure (no I/O);
`write_pair` is the one place that puts a pair on disk.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = ["self_signed_pair", "write_pair"]

# RSA-2048 because every SAML stack in the field verifies it; larger keys only cost time.
_KEY_SIZE = 2048
_PUBLIC_EXPONENT = 65537
# Clock skew between peers would otherwise make a just-made certificate "not yet valid".
_BACKDATE = datetime.timedelta(minutes=5)


def self_signed_pair(common_name: str, *, days: int = 3650) -> tuple[bytes, bytes]:
    """Return (private key PEM, self-signed certificate PEM) for ``common_name``."""
    if not common_name:
        raise ValueError("common_name must not be empty")
    if days <= 0:
        raise ValueError("days must be positive")
    key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=_KEY_SIZE)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_pair(key_path: Path, cert_path: Path, common_name: str) -> None:
    """Create a new pair and write it: the key readable by its owner only (0600)."""
    key_pem, cert_pem = self_signed_pair(common_name)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    # Open with 0600 from the start: chmod after writing would leave a window where the key
    # is readable under the umask's wider mode. O_TRUNC + explicit chmod covers an existing file.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as key_file:
        os.fchmod(key_file.fileno(), 0o600)
        key_file.write(key_pem)
    cert_path.write_bytes(cert_pem)


def rsa_private_key_pem() -> bytes:
    """A new RSA signing key (PKCS#8 PEM), for the OpenID provider's RS256 ID tokens."""
    key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=_KEY_SIZE)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ec_private_key_pem() -> bytes:
    """A new P-256 signing key (PKCS#8 PEM), for clients that ask for ES256 ID tokens."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
