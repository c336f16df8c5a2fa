"""The embedded store: one process, nothing to install (`ketenbroker demo`, small schools).

State lives in this process only, so a second worker would not see it; production uses Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from broker.core.ports import StoreOp, StoreReply
from broker.store.contract import check_batch, check_ttl, check_value

# Expired entries are dropped when touched; the sweep catches the ones nobody reads again (an
# abandoned login), so the dict holds at most what was written within the longest TTL plus this.
SWEEP_INTERVAL_SECONDS = 60.0


class MemoryStore:
    """A dict with per-key expiry behind one lock; implements `KeyValueStore`."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval_seconds: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        # A monotonic clock, so a wall-clock jump cannot revive or kill entries early.
        self._clock = clock
        self._sweep_interval = sweep_interval_seconds
        self._next_sweep = clock() + sweep_interval_seconds
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        check_ttl(ttl_seconds)
        check_value(value)
        with self._lock:
            now = self._clock()
            self._entries[key] = (value, now + ttl_seconds)
            self._sweep_if_due(now)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live_value(key, self._clock())

    def take(self, key: str) -> bytes | None:
        with self._lock:
            value = self._live_value(key, self._clock())
            if value is not None:
                del self._entries[key]
            return value

    def add_if_absent(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        return self.replace_if_same(key, None, value, ttl_seconds)

    def replace_if_same(
        self, key: str, expected: bytes | None, value: bytes, ttl_seconds: int
    ) -> bool:
        check_ttl(ttl_seconds)
        check_value(value)
        if expected is not None:
            check_value(expected)
        with self._lock:
            now = self._clock()
            written = self._set_if_holding(key, expected, value, now + ttl_seconds, now)
            self._sweep_if_due(now)
            return written

    def renew(self, key: str, ttl_seconds: int) -> bytes | None:
        check_ttl(ttl_seconds)
        with self._lock:
            now = self._clock()
            value = self._live_value(key, now)
            if value is not None:
                self._entries[key] = (value, now + ttl_seconds)
            return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def count(self, key: str, window_seconds: int) -> int:
        check_ttl(window_seconds)
        with self._lock:
            now = self._clock()
            held = self._live_value(key, now)
            if held is None:
                value, ends = 1, now + window_seconds
                self._sweep_if_due(now)
            else:
                value, ends = int(held) + 1, self._entries[key][1]
            self._entries[key] = (str(value).encode(), ends)
            return value

    @property
    def atomic_batches(self) -> bool:
        return True  # one lock around the whole batch

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        """The operations in order under the lock, so atomic."""
        check_batch(operations)
        replies: list[StoreReply] = []
        with self._lock:
            now = self._clock()
            for op in operations:
                replies.append(self._run(op, now))
            self._sweep_if_due(now)
        return replies

    def _run(self, op: StoreOp, now: float) -> StoreReply:
        if op.operation == "put":
            self._entries[op.key] = (op.value, now + op.ttl_seconds)
            return None
        if op.operation == "get":
            return self._live_value(op.key, now)
        if op.operation == "take":
            value = self._live_value(op.key, now)
            if value is not None:
                del self._entries[op.key]
            return value
        if op.operation in ("add_if_absent", "replace_if_same"):
            expected = op.expected if op.operation == "replace_if_same" else None
            return self._set_if_holding(op.key, expected, op.value, now + op.ttl_seconds, now)
        self._entries.pop(op.key, None)  # delete (check_batch let nothing else through)
        return None

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release; here so callers can close any store the same way."""

    def sweep(self) -> int:
        """Drop every expired entry now; returns how many were dropped."""
        with self._lock:
            return self._sweep(self._clock())

    def __len__(self) -> int:
        """Entries held, including expired ones not yet dropped (for tests and metrics)."""
        with self._lock:
            return len(self._entries)

    def _live_value(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if now >= expires_at:
            del self._entries[key]
            return None
        return value

    def _set_if_holding(
        self, key: str, expected: bytes | None, value: bytes, expires_at: float, now: float
    ) -> bool:
        """Set `key` only while it holds `expected` (None: while it is absent); under the lock."""
        if self._live_value(key, now) != expected:
            return False
        self._entries[key] = (value, expires_at)
        return True

    def _sweep_if_due(self, now: float) -> None:
        # Only writes can grow the dict, so only writes need to pay for the sweep.
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> int:
        expired = [key for key, (_, expires_at) in self._entries.items() if now >= expires_at]
        for key in expired:
            del self._entries[key]
        self._next_sweep = now + self._sweep_interval
        return len(expired)
