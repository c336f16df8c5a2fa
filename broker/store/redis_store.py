"""The production store: Redis, shared by every worker on every machine.

A slow or absent Redis must turn into a quick "try again" page (HTTP 503), never a hanging worker
and never a login with a check skipped, hence short timeouts and one error type for every failure.

Every operation touches exactly one key (SET EX, GET, GETEX, GETDEL, SET NX EX, DEL, and in
one script each a counter's SET NX EX + INCR and a compare-and-set's GET + SET EX), so the
store works unchanged on a Redis Cluster: no
operation ever needs two keys in one hash slot. A batch of such operations is one script on one
server or a Sentinel's master (one round trip, in order, nothing of another client's between
them); on a Cluster, single calls in order (`atomic_batches` is False there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import redis
from redis.cluster import RedisCluster
from redis.connection import AbstractConnection
from redis.exceptions import RedisClusterException, RedisError

from broker.core.errors import StoreUnavailable
from broker.core.ports import HISTORY_TTL_SECONDS, StoreOp, StoreReply, key_bytes
from broker.store.contract import check_batch, check_ttl, check_value
from broker.store.redis_clients import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    LazyCluster,
    sentinel_client,
    single_server_client,
)

_log = logging.getLogger(__name__)
_COUNT_SCRIPT = (
    "redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX') return redis.call('INCR', KEYS[1])"
)
# Compare-and-set: the new value only while the key holds exactly the expected bytes (GET of a
# missing key is false in Lua, never equal to a string). One key: a Cluster runs it unchanged.
_REPLACE_SCRIPT = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then"
    " redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0"
)
# A whole batch as one script: Redis runs a script as one command, with nothing of another
# client's in between. Operation i is KEYS[i] with four arguments: its letter, value, TTL and
# the expected value (compare-and-set only). A reply is 1 or 0 for SET NX and compare-and-set
# (set or not), the value or nil for GET and GETDEL, 0 otherwise.
_BATCH_SCRIPT = """
local replies = {}
for i, key in ipairs(KEYS) do
  local op, value, ttl = ARGV[4 * i - 3], ARGV[4 * i - 2], ARGV[4 * i - 1]
  if op == 'a' then
    replies[i] = redis.call('SET', key, value, 'EX', ttl, 'NX') and 1 or 0
  elseif op == 'c' then
    if redis.call('GET', key) == ARGV[4 * i] then
      redis.call('SET', key, value, 'EX', ttl)
      replies[i] = 1
    else
      replies[i] = 0
    end
  elseif op == 'g' then
    replies[i] = redis.call('GET', key)
  elseif op == 't' then
    replies[i] = redis.call('GETDEL', key)
  elseif op == 'p' then
    redis.call('SET', key, value, 'EX', ttl)
    replies[i] = 0
  else
    redis.call('DEL', key)
    replies[i] = 0
  end
end
return replies
"""
# Run on every new connection (`RedisStore(on_new_history=...)`): the server's identity is its
# process (`run_id`, new at every start, with or without RDB/AOF files) and its replication
# history (`master_replid`, new when a replica is promoted); KEYS[1] holds the identity the
# store's data was last written under. When it differs (a failover, a restart, a restored
# snapshot: the data may be older than what the broker wrote), the remaining keys are set to
# their values (ARGV: value, TTL per key; the last ARGV is KEYS[1]'s TTL) and the identity is
# noted, in one script: of many workers connecting at once, one does it.
_NEW_HISTORY_SCRIPT = """
local info = redis.call('INFO', 'server') .. redis.call('INFO', 'replication')
local here = (string.match(info, 'run_id:(%x+)') or '-') .. ':'
  .. (string.match(info, 'master_replid:(%x+)') or '-')
if redis.call('GET', KEYS[1]) == here then
  return 0
end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 * i - 3], 'EX', ARGV[2 * i - 2])
end
redis.call('SET', KEYS[1], here, 'EX', ARGV[#ARGV])
return 1
"""
# The key of the server identity the data was last written under.
HISTORY_KEY = "history"
_LETTERS = {
    "add_if_absent": "a",
    "replace_if_same": "c",
    "get": "g",
    "take": "t",
    "put": "p",
    "delete": "d",
}


class RedisStore:
    """`KeyValueStore` on Redis: SET EX, GET, GETEX, GETDEL, SET NX EX, DEL, EVAL, PING.

    Every key is prefixed (`kb:` by default) so the broker can share a Redis with other tenants
    and so its keys can be found and flushed as one set. The URL picks one server, a
    Sentinel-watched master or a Cluster (broker/store/redis_clients.py).
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "kb:",
        on_new_history: Callable[[], Sequence[StoreOp]] | None = None,
    ) -> None:
        """`on_new_history`: the writes (`StoreOp.put` only) to make when a connection finds a
        Redis whose data the broker did not write last (a failover, a restart: it may have
        lost or brought back keys, `_NEW_HISTORY_SCRIPT`); checked once per new connection,
        on one server and Sentinel (not yet on a Cluster: docs/security.md)."""
        self._prefix = key_bytes(key_prefix)
        scheme = url.partition("://")[0]
        # A cluster spreads a batch's keys over several nodes, and redis-py sends each node its
        # share at once: the order between nodes would be lost, and a script runs on one node
        # only. There a batch is single calls.
        self._scripts = scheme != CLUSTER_SCHEME
        self._client: Callable[[], redis.Redis[bytes] | RedisCluster[bytes]]
        self._close: Callable[[], None]
        if scheme == CLUSTER_SCHEME:
            cluster = LazyCluster(url)
            self._client, self._close = cluster.client, cluster.close
        else:
            hook = None if on_new_history is None else partial(self._check_history, on_new_history)
            client, self._close = (
                sentinel_client(url, hook)
                if scheme == SENTINEL_SCHEME
                else single_server_client(url, hook)
            )
            self._client = lambda: client

    def _check_history(
        self, on_new_history: Callable[[], Sequence[StoreOp]], connection: AbstractConnection
    ) -> None:
        """A new connection: redis-py's own hello first, then the history script on it (an
        error fails the connection, so no command runs on an unchecked server)."""
        connection.on_connect()
        writes = on_new_history()
        arguments: list[bytes | int] = []
        for op in writes:
            if op.operation != "put":
                raise ValueError("on_new_history may only put keys")
            check_ttl(op.ttl_seconds)
            check_value(op.value)
            arguments += (op.value, op.ttl_seconds)
        keys = [self._key(HISTORY_KEY), *(self._key(op.key) for op in writes)]
        connection.send_command(
            "EVAL", _NEW_HISTORY_SCRIPT, len(keys), *keys, *arguments, HISTORY_TTL_SECONDS
        )
        if connection.read_response() == 1:
            _log.warning("store: a new Redis history (failover, restart or restore)")

    def _key(self, key: str) -> bytes:
        # Bytes, not the `str`: redis-py's own encoding is strict UTF-8 and raised on a key
        # the memory store takes (`key_bytes`).
        return self._prefix + key_bytes(key)

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        check_ttl(ttl_seconds)
        check_value(value)
        with _unavailable_on_redis_error("put"):
            self._client().set(self._key(key), value, ex=ttl_seconds)

    def get(self, key: str) -> bytes | None:
        with _unavailable_on_redis_error("get"):
            reply = self._client().get(self._key(key))
        return _bytes_or_none(reply)

    def take(self, key: str) -> bytes | None:
        # GETDEL is one command, so Redis serialises it: of many concurrent takers one wins.
        with _unavailable_on_redis_error("take"):
            reply = self._client().getdel(self._key(key))
        return _bytes_or_none(reply)

    def add_if_absent(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        check_ttl(ttl_seconds)
        check_value(value)
        with _unavailable_on_redis_error("add_if_absent"):
            reply = self._client().set(self._key(key), value, ex=ttl_seconds, nx=True)
        # SET NX replies OK when it set the key and nil when the key was already there.
        return reply is True

    def replace_if_same(
        self, key: str, expected: bytes | None, value: bytes, ttl_seconds: int
    ) -> bool:
        if expected is None:
            return self.add_if_absent(key, value, ttl_seconds)
        check_ttl(ttl_seconds)
        check_value(value)
        check_value(expected)
        # One script on one key, as `count`: atomic on every topology.
        with _unavailable_on_redis_error("replace_if_same"):
            client = self._client()
            reply = client.eval(_REPLACE_SCRIPT, 1, self._key(key), expected, value, ttl_seconds)  # type: ignore[union-attr]
        return bool(reply == 1)

    def renew(self, key: str, ttl_seconds: int) -> bytes | None:
        check_ttl(ttl_seconds)
        # GETEX reads and sets the expiry in one command; on a key that is gone it writes
        # nothing, so it cannot bring back a key another client deleted a moment before.
        with _unavailable_on_redis_error("renew"):
            reply = self._client().getex(self._key(key), ex=ttl_seconds)
        return _bytes_or_none(reply)

    def delete(self, key: str) -> None:
        with _unavailable_on_redis_error("delete"):
            self._client().delete(self._key(key))

    def count(self, key: str, window_seconds: int) -> int:
        check_ttl(window_seconds)
        # One script on one key: atomic on one server, a Sentinel's master and a Cluster alike,
        # and a counter never exists without its expiry (an INCR whose EXPIRE was lost would
        # refuse a client for good).
        with _unavailable_on_redis_error("count"):
            client = self._client()  # RedisCluster has `eval` too (its stubs lack it)
            reply = client.eval(_COUNT_SCRIPT, 1, self._key(key), window_seconds)  # type: ignore[union-attr]
        return int(reply)

    @property
    def atomic_batches(self) -> bool:
        return self._scripts

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        """One script (`EVAL`, as `count`): one command, so one round trip, the order holds,
        and Redis runs it with nothing of another client's in between; a connection lost
        before it arrives runs none of it. (A pipeline kept the order too, but let a racing
        client's command in between: two copies of a SAML answer could then both be refused,
        `ReplayGuard.first_use`; and it cost the client more, docs/performance.md.) On a
        Cluster: single calls in order."""
        check_batch(operations)
        if not operations:
            return []
        if not self._scripts:
            return [self._single(op) for op in operations]
        keys = [self._key(op.key) for op in operations]
        arguments: list[str | bytes | int] = []
        for op in operations:
            arguments += (_LETTERS[op.operation], op.value, op.ttl_seconds, op.expected)
        with _unavailable_on_redis_error("batch"):
            client = self._client()
            replies = client.eval(_BATCH_SCRIPT, len(keys), *keys, *arguments)  # type: ignore[union-attr]
        return [_reply(op, reply) for op, reply in zip(operations, replies, strict=True)]

    def _single(self, op: StoreOp) -> StoreReply:
        if op.operation == "put":
            self.put(op.key, op.value, op.ttl_seconds)
            return None
        if op.operation == "get":
            return self.get(op.key)
        if op.operation == "take":
            return self.take(op.key)
        if op.operation == "add_if_absent":
            return self.add_if_absent(op.key, op.value, op.ttl_seconds)
        if op.operation == "replace_if_same":
            return self.replace_if_same(op.key, op.expected, op.value, op.ttl_seconds)
        self.delete(op.key)
        return None

    def ping(self) -> bool:
        with _unavailable_on_redis_error("ping"):
            return self._client().ping() is True

    def close(self) -> None:
        """Close the pooled connections (at shutdown; the store reconnects if used again)."""
        self._close()


@contextmanager
def _unavailable_on_redis_error(operation: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, RedisClusterException) as error:
        # Only the error class goes into the detail: a server reply can echo command arguments,
        # and those are our keys (hashes of cookie values). Dropping the cause from the
        # traceback keeps such a reply out of the log as well. (redis-py's cluster errors do
        # not all derive from RedisError, hence both.)
        raise StoreUnavailable(f"redis {operation} failed: {type(error).__name__}") from None


def _reply(op: StoreOp, reply: object) -> StoreReply:
    """A batch script's reply as the single call returns it."""
    if op.operation in ("get", "take"):
        return _bytes_or_none(reply)
    if op.operation in ("add_if_absent", "replace_if_same"):
        return reply == 1
    return None


def _bytes_or_none(reply: object) -> bytes | None:
    if reply is None or isinstance(reply, bytes):
        return reply
    raise TypeError("unexpected Redis reply type; the pool must not decode responses")
