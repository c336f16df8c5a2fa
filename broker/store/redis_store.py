"""The production store: Redis, shared by every worker on every machine.

A slow or absent Redis must turn into a quick "try again" page (HTTP 503), never a hanging worker
and never a login with a check skipped, hence short timeouts and one error type for every failure.

Every operation touches exactly one key (SET EX, GET, GETDEL, SET NX EX, DEL), so the store works
unchanged on a Redis Cluster: no operation ever needs two keys in one hash slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from broker.core.errors import StoreUnavailable
from broker.store.contract import check_ttl, check_value
from broker.store.redis_clients import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    LazyCluster,
    sentinel_client,
    single_server_client,
)


class RedisStore:
    """`KeyValueStore` on Redis: SET EX, GET, GETDEL, SET NX EX, DEL, PING.

    Every key is prefixed (`kb:` by default) so the broker can share a Redis with other tenants
    and so its keys can be found and flushed as one set. The URL picks one server, a
    Sentinel-watched master or a Cluster (broker/store/redis_clients.py).
    """

    def __init__(self, url: str, *, key_prefix: str = "kb:") -> None:
        self._prefix = key_prefix
        scheme = url.partition("://")[0]
        self._client: Callable[[], redis.Redis[bytes] | RedisCluster[bytes]]
        self._close: Callable[[], None]
        if scheme == CLUSTER_SCHEME:
            cluster = LazyCluster(url)
            self._client, self._close = cluster.client, cluster.close
        else:
            client, self._close = (
                sentinel_client(url) if scheme == SENTINEL_SCHEME else single_server_client(url)
            )
            self._client = lambda: client

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        check_ttl(ttl_seconds)
        check_value(value)
        with _unavailable_on_redis_error("put"):
            self._client().set(self._prefix + key, value, ex=ttl_seconds)

    def get(self, key: str) -> bytes | None:
        with _unavailable_on_redis_error("get"):
            reply = self._client().get(self._prefix + key)
        return _bytes_or_none(reply)

    def take(self, key: str) -> bytes | None:
        # GETDEL is one command, so Redis serialises it: of many concurrent takers one wins.
        with _unavailable_on_redis_error("take"):
            reply = self._client().getdel(self._prefix + key)
        return _bytes_or_none(reply)

    def add_if_absent(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        check_ttl(ttl_seconds)
        check_value(value)
        with _unavailable_on_redis_error("add_if_absent"):
            reply = self._client().set(self._prefix + key, value, ex=ttl_seconds, nx=True)
        # SET NX replies OK when it set the key and nil when the key was already there.
        return reply is True

    def delete(self, key: str) -> None:
        with _unavailable_on_redis_error("delete"):
            self._client().delete(self._prefix + key)

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


def _bytes_or_none(reply: object) -> bytes | None:
    if reply is None or isinstance(reply, bytes):
        return reply
    raise TypeError("unexpected Redis reply type; the pool must not decode responses")
