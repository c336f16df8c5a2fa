"""Time-based one-time passwords (RFC 6238 over RFC 4226): SHA-1, 6 digits, 30-second steps.

SHA-1 and these parameters are what every authenticator app supports; HMAC-SHA-1 is not weakened
by SHA-1's collision attacks. `verify` returns the time step it accepted, so the caller can store
it and refuse the same code a second time (RFC 6238 section 5.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

from broker.core.whole_numbers import whole_number

STEP_SECONDS = 30
DIGITS = 6
# One step either side: a phone clock a little off, or a code typed as it rolled over.
WINDOW = 1
SECRET_BYTES = 20


def new_secret() -> str:
    """A fresh shared secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def code_at(secret: str, step: int) -> str:
    """The HOTP value (RFC 4226 section 5.3) for counter `step`."""
    digest = hmac.new(_key(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def verify(secret: str, code: str, *, now: float | None = None, after_step: int = -1) -> int | None:
    """The time step `code` is valid for (within the window, later than `after_step`), else None."""
    cleaned = code.replace(" ", "")
    # ASCII digits only: "²²²²²²" passes isdigit and then makes compare_digest raise.
    if len(cleaned) != DIGITS or whole_number(cleaned, DIGITS) is None:
        return None
    middle = current_step(now)
    for step in range(middle - WINDOW, middle + WINDOW + 1):
        if step > after_step and hmac.compare_digest(code_at(secret, step), cleaned):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (usually from a QR code)."""
    label = quote(f"{issuer}:{account}", safe="")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP_SECONDS}
    )
    return f"otpauth://totp/{label}?{query}"
