"""IDs of the SAML messages and assertions the broker makes.

pysaml2's `sid()` draws each of its characters with a separate `SystemRandom.choice`, one
`os.urandom` call per character: about 50 µs per ID, four or more IDs per login. One
`secrets.token_hex` call gives the same 160 random bits at once.
"""

from __future__ import annotations

import secrets


def new_message_id() -> str:
    """An xs:ID (an NCName: it must not start with a digit) with 160 random bits; SAML core
    1.3.4 asks for 128 to 160."""
    return "id-" + secrets.token_hex(20)
