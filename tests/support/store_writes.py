"""The store's writes during a request, noted by key: which went in a batch (with what else) and
which went alone, for tests that show a write rides in a batch that goes anyway."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from broker.core.ports import KeyValueStore, StoreOp, StoreReply


@dataclass
class StoreWrites:
    batches: list[list[str]] = field(default_factory=list)  # the keys of each batch
    single: list[str] = field(default_factory=list)  # the keys of each `put` alone

    def batched_with_others(self, prefix: str) -> bool:
        """Whether exactly one batch wrote a key starting with `prefix`, beside other
        commands, and no `put` of its own did."""
        marked = [keys for keys in self.batches if any(k.startswith(prefix) for k in keys)]
        alone = [key for key in self.single if key.startswith(prefix)]
        return len(marked) == 1 and len(marked[0]) > 1 and not alone

    def batched_among(self, prefix: str, *others: str) -> bool:
        """Whether exactly one batch wrote a key starting with `prefix`, with nothing beside it
        but keys starting with `prefix` or one of `others`, and no `put` of its own did: a
        write of its own (of marks), not part of another batch."""
        marked = [keys for keys in self.batches if any(k.startswith(prefix) for k in keys)]
        alone = [key for key in self.single if key.startswith(prefix)]
        allowed = (prefix, *others)
        return len(marked) == 1 and all(k.startswith(allowed) for k in marked[0]) and not alone


def note_store_writes(store: KeyValueStore, monkeypatch: pytest.MonkeyPatch) -> StoreWrites:
    noted = StoreWrites()
    real_batch, real_put = store.batch, store.put

    def batch(operations: Sequence[StoreOp]) -> list[StoreReply]:
        noted.batches.append([op.key for op in operations])
        return real_batch(operations)

    def put(key: str, value: bytes, ttl_seconds: int) -> None:
        noted.single.append(key)
        real_put(key, value, ttl_seconds)

    monkeypatch.setattr(store, "batch", batch)
    monkeypatch.setattr(store, "put", put)
    return noted
