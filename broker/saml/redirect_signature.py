"""The Redirect binding's query-string signature: made with the broker's key, or checked
against the peer's metadata keys.

pysaml2 checks it only when SigAlg and Signature are passed explicitly (pitfalls.md), so every
Redirect-binding message the broker takes (AuthnRequest, LogoutRequest, LogoutResponse) is
checked here, with the broker's SigAlg allow-list first.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote_plus, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from saml2.sigver import SignatureError, verify_redirect_signature

from broker.core.errors import InvalidMessage
from broker.saml.xmlsig import check_redirect_sigalg

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
_SIGALG_PARAM = "SigAlg=" + quote_plus(RSA_SHA256, safe="")
# Base64 has three characters form-encoding changes; str.translate does in one C pass what
# quote_plus does per character in Python (a deflated AuthnRequest is ~500 characters).
_BASE64_QUOTED = str.maketrans({"+": "%2B", "/": "%2F", "=": "%3D"})


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


def check_redirect_signature(
    entity: Any,
    issuer: str,
    role: str,
    message: tuple[str, str],
    relay_state: str | None,
    sigalg: str | None,
    signature: str | None,
) -> None:
    """Refuse unless `signature` over (message, RelayState, SigAlg) verifies with a signing key
    of `issuer`'s `role` descriptor ("spsso" or "idpsso"). `message` is ("SAMLRequest" or
    "SAMLResponse", its value as received); `entity` a pysaml2 Server or Saml2Client."""
    if signature is None:
        raise InvalidMessage("unsigned Redirect message", code="request_unsigned")
    if sigalg is None:
        raise InvalidMessage("Signature without SigAlg", code="bad_signature")
    try:
        check_redirect_sigalg(sigalg)
    except (InvalidMessage, SignatureError):
        raise InvalidMessage("SigAlg not allowed", code="weak_algorithm") from None
    signed = {message[0]: message[1], "SigAlg": sigalg, "Signature": signature}
    if relay_state is not None:
        signed["RelayState"] = relay_state
    certs = entity.metadata.certs(issuer, role, "signing")
    backend = entity.sec.sec_backend
    try:
        verified = any(verify_redirect_signature(signed, backend, cert) for _, cert in certs)
    except (ValueError, SignatureError):
        # A Signature that is not base64 (binascii.Error) or not usable at all.
        verified = False
    if not verified:
        raise InvalidMessage("Redirect message signature invalid", code="bad_signature")
