"""The production store: Redis, shared by every worker on every machine.

A slow or absent Redis must turn into a quick "try again" page (HTTP 503), never a hanging worker
and never a login with a check skipped, hence short timeouts and one error type for every failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from broker.core.errors import ConfigurationError, StoreUnavailable
from broker.store.contract import check_ttl, check_value

# Fixed whatever the URL's query says: a worker waits at most this long per attempt.
TIMEOUT_SECONDS = 1.0


class RedisStore:
    """`KeyValueStore` on Redis: SET EX, GET, GETDEL, SET NX EX, DEL, PING.

    Every key is prefixed (`kb:` by default) so the broker can share a Redis with other tenants
    and so its keys can be found and flushed as one set.
    """

    def __init__(self, url: str, *, key_prefix: str = "kb:") -> None:
        try:
            options = parse_url(url)
        except ValueError:
            # The URL may hold a password: name the problem, never the URL.
            raise ConfigurationError("the store URL is not a valid Redis URL") from None
        options.update(
            socket_connect_timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            # One immediate retry on a broken connection (a pooled socket Redis closed while
            # idle, a failover) saves a needless 503. Timeouts are not retried: that would
            # double the wait on a Redis that is already struggling.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=False,
        )
        self._pool = ConnectionPool(**options)
        self._client = redis.Redis(connection_pool=self._pool)
        self._prefix = key_prefix

    def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        check_ttl(ttl_seconds)
        check_value(value)
        with _unavailable_on_redis_error("put"):
            self._client.set(self._prefix + key, value, ex=ttl_seconds)

    def get(self, key: str) -> bytes | None:
        with _unavailable_on_redis_error("get"):
            reply = self._client.get(self._prefix + key)
        return _bytes_or_none(reply)

    def take(self, key: str) -> bytes | None:
        # GETDEL is one command, so Redis serialises it: of many concurrent takers one wins.
        with _unavailable_on_redis_error("take"):
            reply = self._client.getdel(self._prefix + key)
        return _bytes_or_none(reply)

    def add_if_absent(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        check_ttl(ttl_seconds)
        check_value(value)
        with _unavailable_on_redis_error("add_if_absent"):
            reply = self._client.set(self._prefix + key, value, ex=ttl_seconds, nx=True)
        # SET NX replies OK when it set the key and nil when the key was already there.
        return reply is True

    def delete(self, key: str) -> None:
        with _unavailable_on_redis_error("delete"):
            self._client.delete(self._prefix + key)

    def ping(self) -> bool:
        with _unavailable_on_redis_error("ping"):
            return self._client.ping() is True

    def close(self) -> None:
        """Close the pooled connections (at shutdown; the store reconnects if used again)."""
        self._pool.disconnect()


@contextmanager
def _unavailable_on_redis_error(operation: str) -> Iterator[None]:
    try:
        yield
    except RedisError as error:
        # Only the error class goes into the detail: a server reply can echo command arguments,
        # and those are our keys (hashes of cookie values). Dropping the cause from the
        # traceback keeps such a reply out of the log as well.
        raise StoreUnavailable(f"redis {operation} failed: {type(error).__name__}") from None


def _bytes_or_none(reply: object) -> bytes | None:
    if reply is None or isinstance(reply, bytes):
        return reply
    raise TypeError("unexpected Redis reply type; the pool must not decode responses")
