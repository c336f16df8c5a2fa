"""Identifiers that a peer's JSON names: a logout token's `jti` and `sid`, an ID token's `sid`,
a client assertion's `jti`.

A JSON string may hold a lone surrogate (`"\\udc80"`): Python reads it as a `str`, but it is no
text, and UTF-8 cannot spell it. No provider makes such an id, so where the message is read it
is refused as malformed: it never reaches a store key, an HMAC or a log line (each would have to
decide for itself what to make of it).
"""

from __future__ import annotations

from typing import TypeGuard


def is_usable_id(value: object, max_length: int) -> TypeGuard[str]:
    """`value` is a string of 1 to `max_length` characters that UTF-8 can spell."""
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
