"""One use per message from a school, across every worker, and the store epoch that keeps a
wiped store from forgetting what it saw.

The replay cache is a key per message id in the store, kept while the message would still be
accepted. A store that is wiped (Redis restarted without persistence, flushed, failed over to an
empty replica, one Cluster master restarted empty) forgets those keys, and a message used before
the wipe would be taken for new. The epoch closes that gap: beside the keys the store holds a
marker with the time it was first written, and a wipe that loses a key always loses the marker
that vouches for it.

So the cache is cut into `BUCKETS` buckets. Each replay key carries its bucket's hash tag, and
each bucket has its own marker under the same tag (`epoch_key`): on a Redis Cluster a key and its
marker share a hash slot, so one master holds both and a master that comes back empty has lost
both, while the buckets (and the replay writes of a busy morning) are spread over every master.
(One marker for the whole store would live on one master and keep its old time while another
master lost its keys.) A message's bucket follows from what every copy of it carries, under the
sender's signature: for a school's answer to a login, the id of our request it answers (its
InResponseTo); for any other message, its issuer and id.

Every request to a school writes the marker of its answer's bucket when it is missing
(`open_epoch_op`, one SET NX with the time the request is made), in the same batch before the
login record is saved with that request (`LoginFlow.note_upstream`), so a bucket's epoch is
never later than any request of that bucket the store still knows: the school's answer to it is
issued after it. A message issued before its bucket's epoch (minus the clock skew allowed for
the school's clock) is refused: nobody can know whether it was used before the wipe. A marker
missing when a message arrives makes `now` that bucket's epoch (a message that answers no
request of ours, a logout, meets that in a bucket no request has opened since the wipe).

Order matters: the replay key is added first and the marker read second. A wipe between the two
makes the epoch `now` for this message (its key went, and this first use is the one the key was
for); a wipe after both leaves the next copy of it to meet the new epoch. Both go in one batch,
which keeps their order (`KeyValueStore.batch`; one round trip, except on a Cluster).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

from broker.core.errors import InvalidMessage, StoreUnavailable
from broker.core.ports import HISTORY_TTL_SECONDS, KeyValueStore, StoreOp, StoreReply, key_bytes

# Enough buckets that each master of a cluster gets a near-even share of the replay writes
# (256 over three masters: 81, 85 and 90 with the slots `redis-cli --cluster create` deals); a
# marker is one small key.
BUCKETS = 256
# A Redis hash tag: the only part of a key a Cluster hashes to pick its slot.
BUCKET_TAGS = tuple(f"{{r{number:02x}}}" for number in range(BUCKETS))
# Store keys need a TTL; ten years is "for as long as this store lives" (ports.py). Should a
# marker be evicted or expire anyway, the next use writes a new one: that only refuses messages
# issued before that moment, never lets one in.
EPOCH_TTL_SECONDS = HISTORY_TTL_SECONDS


def bucket_of(name: str) -> str:
    """The hash tag of the bucket `name` (a request id, or a message's issuer and id) is in."""
    # Any stable spread will do; a lone surrogate in a peer's id must not raise here.
    return BUCKET_TAGS[zlib.crc32(key_bytes(name)) % BUCKETS]


def epoch_key(bucket: str) -> str:
    """The marker of `bucket` (one of `BUCKET_TAGS`): the same hash slot as the bucket's keys."""
    return f"epoch:{bucket}"


def open_epoch_op(now: float, request_id: str) -> StoreOp:
    """Write the marker of the bucket of the answer to our request `request_id` if the store has
    none (a new or wiped store); keep it otherwise: of several workers that find it missing, one
    marker wins (SET NX). The first operation of the batch that saves the login record with
    that request (the record's write follows)."""
    return _open_op(bucket_of(request_id), now)


def _open_op(bucket: str, now: float) -> StoreOp:
    return StoreOp.add_if_absent(epoch_key(bucket), f"{now:.3f}".encode("ascii"), EPOCH_TTL_SECONDS)


def new_history_epochs(now: float, skew: float) -> list[StoreOp]:
    """Every bucket's marker, for a store that may have been rolled back (a failover that lost
    the last writes, a restart from an RDB/AOF file, a restored snapshot: it can bring back a
    login record without the replay key its answer's first use wrote, with the markers of
    before). Each epoch becomes `now`, exactly: the marker holds `now + skew` because the check
    subtracts the skew, and a second less for a school's whole-second `IssueInstant` of an
    answer to a request made just after. So every message issued before (by the school's clock)
    is refused; for a school whose clock runs behind ours, its answers for that many seconds
    after too. Written by the store on the first connection to such a Redis
    (`RedisStore(on_new_history=...)`)."""
    value = f"{now + skew - 1:.3f}".encode("ascii")
    return [StoreOp.put(epoch_key(bucket), value, EPOCH_TTL_SECONDS) for bucket in BUCKET_TAGS]


def _bucket(issuer: str, message_id: str, request_id: str | None) -> str:
    return bucket_of(request_id if request_id is not None else f"{issuer}:{message_id}")


def _replay_key(bucket: str, issuer: str, message_id: str) -> str:
    # The tag first: a Cluster hashes the first {...} of a key, and an issuer may hold braces.
    return f"replay:{bucket}:{issuer}:{message_id}"


class ReplayGuard:
    def __init__(
        self, store: KeyValueStore, *, skew: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.skew = skew
        self.clock = clock

    def first_use(
        self,
        issuer: str,
        message_id: str,
        issued_at: float,
        expires_at: float,
        *,
        request_id: str | None = None,
        then: StoreOp | None = None,
    ) -> StoreReply:
        """Accept `message_id` of `issuer` once; raise `InvalidMessage` for a second use
        (`replay`) or for a message issued before its bucket's epoch (`before_store_epoch`).

        `expires_at`: until then the message would pass every other check, so its id is kept
        exactly that long. `request_id`: for a school's answer, our request it answers (its
        bucket, opened when the request was made).
        `then`: one more operation (the login record's take) for once the message is accepted;
        its reply is returned. Where the store's batches are atomic it goes in the same batch
        (one round trip; a refused copy runs it too). Elsewhere (a Redis Cluster) it runs only
        after the check passed: of two racing copies, one that lost the replay key could
        otherwise take the record before the one that won it, and both would be refused.
        """
        bucket = _bucket(issuer, message_id, request_id)
        ops = self._first_use_ops(issuer, message_id, expires_at, bucket)
        if then is not None and self.store.atomic_batches:
            *replies, done = self.store.batch([*ops, then])
            self._check(replies, issued_at, bucket)
            return done
        self._check(self.store.batch(ops), issued_at, bucket)
        return None if then is None else self.store.batch([then])[0]

    def _first_use_ops(
        self, issuer: str, message_id: str, expires_at: float, bucket: str
    ) -> list[StoreOp]:
        # The two commands, in their order: the replay key, then its bucket's marker.
        ttl = max(int(expires_at - self.clock()) + 1, 1)
        return [
            StoreOp.add_if_absent(_replay_key(bucket, issuer, message_id), b"1", ttl),
            StoreOp.get(epoch_key(bucket)),
        ]

    def release(self, issuer: str, message_id: str, *, request_id: str | None = None) -> None:
        """Forget a use `first_use` accepted (a logout's), when what the message asked for then
        failed before anything was done that a second use could repeat harmfully (the store
        failing mid-request): the sender's retry of the same message is then taken, not refused
        as a replay. `request_id`: as `first_use` was given it (the key is in that request's
        bucket). Raises `StoreUnavailable` when the store cannot be told either."""
        bucket = _bucket(issuer, message_id, request_id)
        self.store.delete(_replay_key(bucket, issuer, message_id))

    def _check(self, replies: list[StoreReply], issued_at: float, bucket: str) -> None:
        first, marker = replies
        if first is not True:
            raise InvalidMessage("assertion seen before", code="replay")
        if issued_at < self.epoch(bucket, marker) - self.skew:
            raise InvalidMessage(
                "assertion issued before the store's epoch (store wiped since)",
                code="before_store_epoch",
            )

    def epoch(self, bucket: str, found: StoreReply = None) -> float:
        """When `bucket`'s contents began: its marker's time, written now when missing.
        `found`: the marker as the caller just read it; None (missing, or not read): written
        if missing and read, in one batch."""
        if found is None:
            opened = [_open_op(bucket, self.clock()), StoreOp.get(epoch_key(bucket))]
            found = self.store.batch(opened)[1]
            if found is None:
                raise StoreUnavailable("store epoch marker vanished right after it was written")
        if not isinstance(found, bytes):
            raise StoreUnavailable("store epoch marker is unreadable")
        try:
            return float(found.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            # Not ours to repair silently: an unreadable marker means someone else wrote it.
            raise StoreUnavailable("store epoch marker is unreadable") from None
