"""Argument checks shared by every `KeyValueStore`, so both implementations refuse the same input.

Without them the two would drift: Redis would quietly encode a `str` value and hand back bytes,
while the memory store would hand back the `str`, and a zero TTL would mean "error" in one and
"already gone" in the other.
"""

from __future__ import annotations


def check_ttl(ttl_seconds: int) -> None:
    # bool is an int subclass; `True` as a TTL is a caller bug, not one second.
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 1:
        raise ValueError("ttl_seconds must be an integer of at least 1")


def check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError("store values are bytes (sealed by the caller)")
