"""The Redirect binding's query-string signature, checked against the peer's metadata keys.

pysaml2 checks it only when SigAlg and Signature are passed explicitly (pitfalls.md), so every
Redirect-binding message the broker takes (AuthnRequest, LogoutRequest, LogoutResponse) is
checked here, with the broker's SigAlg allow-list first.
"""

from __future__ import annotations

from typing import Any

from saml2.sigver import SignatureError, verify_redirect_signature

from broker.core.errors import InvalidMessage
from broker.saml.xmlsig import check_redirect_sigalg


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
