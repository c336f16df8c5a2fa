"""Argument checks shared by every `KeyValueStore`, so both implementations refuse the same input.

Without them the two would drift: Redis would quietly encode a `str` value and hand back bytes,
while the memory store would hand back the `str`, and a zero TTL would mean "error" in one and
"already gone" in the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.core.ports import StoreOp

WRITES_WITH_VALUE = frozenset({"put", "add_if_absent", "replace_if_same"})
OPERATIONS = frozenset({"put", "get", "take", "add_if_absent", "replace_if_same", "delete"})


def check_ttl(ttl_seconds: int) -> None:
    # bool is an int subclass; `True` as a TTL is a caller bug, not one second.
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 1:
        raise ValueError("ttl_seconds must be an integer of at least 1")


def check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError("store values are bytes (sealed by the caller)")


def check_batch(operations: Sequence[StoreOp]) -> None:
    """Every operation of a batch checked before any runs: a bad one changes nothing."""
    for op in operations:
        if not isinstance(op, StoreOp) or op.operation not in OPERATIONS:
            raise TypeError("a batch holds StoreOp operations")
        if op.operation in WRITES_WITH_VALUE:
            check_ttl(op.ttl_seconds)
            check_value(op.value)
            check_value(op.expected)
