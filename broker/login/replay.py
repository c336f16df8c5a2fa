"""One use per message from a school, across every worker, and the store epoch that keeps a
wiped store from forgetting what it saw.

The replay cache is a key per assertion id in the store, kept while the assertion would still
be accepted. A store that is wiped (Redis restarted without persistence, flushed, failed over to
an empty replica) forgets those keys, and an assertion used before the wipe would be taken for
new. The epoch closes that gap: the store holds a marker with the time it was first written.
Every login writes it when it is missing (`open_epoch_op`, one SET NX with the login's start
time), in the same batch before the login record's first save (`LoginFlow.save_new`), so the
epoch is never later than the start of any login the store still knows: the
school's answer to such a login is issued after the epoch. An assertion issued before the epoch
(minus the clock skew allowed for the school's clock) is refused: nobody can know whether it was
used before the wipe. A marker missing when an answer arrives makes `now` the epoch.

Order matters: the replay key is added first and the epoch read second. A wipe between the two
makes the epoch `now` and refuses this assertion (fail closed); a wipe after both leaves the
next copy of it to meet the new epoch. Both go in one batch (one round trip), which keeps
their order (`KeyValueStore.batch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from broker.core.errors import InvalidMessage, StoreUnavailable
from broker.core.ports import KeyValueStore, StoreOp, StoreReply

EPOCH_KEY = "epoch"
# Store keys need a TTL; ten years is "for as long as this store lives". Should the marker be
# evicted or expire anyway, the next login writes a new one: that only refuses assertions
# issued before that moment, never lets one in.
EPOCH_TTL_SECONDS = 10 * 365 * 24 * 3600


def open_epoch(store: KeyValueStore, now: float) -> None:
    """Write the epoch marker if the store has none (a new or wiped store); keep it otherwise.
    Of several workers that find the store empty, one marker wins (SET NX)."""
    store.add_if_absent(EPOCH_KEY, f"{now:.3f}".encode("ascii"), EPOCH_TTL_SECONDS)


def open_epoch_op(now: float) -> StoreOp:
    """`open_epoch` as the first operation of a batch (the login record's write follows)."""
    return StoreOp.add_if_absent(EPOCH_KEY, f"{now:.3f}".encode("ascii"), EPOCH_TTL_SECONDS)


def _replay_key(issuer: str, message_id: str) -> str:
    return f"replay:{issuer}:{message_id}"


class ReplayGuard:
    def __init__(
        self, store: KeyValueStore, *, skew: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.skew = skew
        self.clock = clock

    def first_use(self, issuer: str, message_id: str, issued_at: float, expires_at: float) -> None:
        """Accept `message_id` of `issuer` once; raise `InvalidMessage` for a second use
        (`replay`) or for a message issued before the store's epoch (`before_store_epoch`).

        `expires_at`: until then the message would pass every other check, so its id is kept
        exactly that long.
        """
        self.check(self.store.batch(self.first_use_ops(issuer, message_id, expires_at)), issued_at)

    def first_use_ops(self, issuer: str, message_id: str, expires_at: float) -> list[StoreOp]:
        """`first_use`'s two commands, in their order, for a caller's own batch: a caller that
        has more to do in the same round trip appends its commands after these and passes
        these two replies to `check`."""
        ttl = max(int(expires_at - self.clock()) + 1, 1)
        return [
            StoreOp.add_if_absent(_replay_key(issuer, message_id), b"1", ttl),
            StoreOp.get(EPOCH_KEY),
        ]

    def release(self, issuer: str, message_id: str) -> None:
        """Forget a use `first_use` accepted, when what the message asked for then failed
        before anything was done that a second use could repeat harmfully (the store failing
        mid-request): the sender's retry of the same message is then taken, not refused as a
        replay. Raises `StoreUnavailable` when the store cannot be told either."""
        self.store.delete(_replay_key(issuer, message_id))

    def check(self, replies: list[StoreReply], issued_at: float) -> None:
        """Raise as `first_use` does, from the replies to `first_use_ops`."""
        first, marker = replies[0], replies[1]
        if first is not True:
            raise InvalidMessage("assertion seen before", code="replay")
        if issued_at < self.epoch(marker) - self.skew:
            raise InvalidMessage(
                "assertion issued before the store's epoch (store wiped since)",
                code="before_store_epoch",
            )

    def epoch(self, found: StoreReply = None) -> float:
        """When this store's contents began: the marker's time, written now when missing.
        `found`: the marker as the caller just read it (read here when None)."""
        if found is None:
            found = self.store.get(EPOCH_KEY)
        if found is None:
            open_epoch(self.store, self.clock())
            found = self.store.get(EPOCH_KEY)
            if found is None:
                raise StoreUnavailable("store epoch marker vanished right after it was written")
        if not isinstance(found, bytes):
            raise StoreUnavailable("store epoch marker is unreadable")
        try:
            return float(found.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            # Not ours to repair silently: an unreadable marker means someone else wrote it.
            raise StoreUnavailable("store epoch marker is unreadable") from None
