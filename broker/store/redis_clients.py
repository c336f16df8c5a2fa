"""Redis clients for the three deployments the store URL can name: one server, Sentinel, Cluster.

URL forms (the password, if any, is the Redis servers' `requirepass`, or with a user name the
password of that Redis ACL user; never echoed in errors):

    redis://[[user]:password@]host:port/db                 one server (also rediss://, unix://)
    redis+sentinel://[[user]:password@]host:port,host:port/service_name[/db]
    redis+cluster://[[user]:password@]host:port,host:port

Every client gets the same limits: a connect and a socket timeout of one second, and one
immediate retry of a broken connection, never of a timeout (not even when a redis:// URL's query
asks for it). Sentinel and Cluster discover the current master(s) themselves, so a failover
costs a few failed calls, not a reconfiguration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import AbstractConnection, ConnectionPool, parse_url
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel

from broker.core.errors import ConfigurationError

# Fixed whatever the URL's query says: a worker waits at most this long per attempt.
TIMEOUT_SECONDS = 1.0
SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379


# What runs on each new connection before its first command (redis-py's `redis_connect_func`).
ConnectHook = Callable[[AbstractConnection], None]


def _limits(on_connect: ConnectHook | None = None) -> dict[str, Any]:
    """The limits every client gets, and `on_connect` run on each new connection if given."""
    hook = {} if on_connect is None else {"redis_connect_func": on_connect}
    return hook | {
        "socket_connect_timeout": TIMEOUT_SECONDS,
        "socket_timeout": TIMEOUT_SECONDS,
        # One immediate retry on a broken connection (a pooled socket Redis closed while idle,
        # a failover) saves a needless 503. Timeouts are not retried: that would double the
        # wait on a Redis that is already struggling, and send again a write (SET NX, GETDEL)
        # that may have run.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        "decode_responses": False,
    }


# A redis:// URL's query can add errors to the retried ones (`retry_on_timeout=true`, or
# `retry_on_error`, which redis-py reads as a list of letters); the broker fixes both. The other
# URLs take no query.
_NO_QUERY_RETRIES: dict[str, Any] = {"retry_on_timeout": False, "retry_on_error": []}


class _OneTimeoutCluster(RedisCluster):  # type: ignore[type-arg]  # generic in the stubs only
    """redis-py's cluster client retries a command itself, as often as its `retry` says but on
    a list of errors of its own, whatever the `retry` supports, re-reading the slot map in
    between. Its list has timeouts in it: here they are left out, so a timeout ends the call
    after one second, as on one server. The rest of its list stays: a broken connection, a
    cluster that is down for a moment (a failover: that node refused the command), and a slot
    its slot map briefly had no master for (the client raised before sending anything).
    redis-py compares the exact type, so the list names each class."""

    # The stubs type the list as RedisError classes; redis-py's own has SlotNotCoveredError too.
    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]


@dataclass(frozen=True)
class ServerList:
    """What a Sentinel or Cluster URL names: the servers to ask, and the rest of its path."""

    hosts: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    path: tuple[str, ...]


def parse_server_list(url: str, default_port: int) -> ServerList:
    """`scheme://[[user]:password@]host[:port],host[:port]/a/b` → hosts, user name (a Redis ACL
    user; none: the default user), password, path segments."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError("the store URL cannot be parsed") from None
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user_text, _, password_text = userinfo.partition(":")
    username, password = unquote(user_text), unquote(password_text)
    hosts = tuple(_host_port(item, default_port) for item in hostlist.split(","))
    path = tuple(segment for segment in parts.path.split("/") if segment)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"a {parts.scheme}:// store URL takes no query or fragment")
    return ServerList(hosts, username or None, password or None, path)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ConfigurationError("the store URL names an empty host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError("the store URL names a port that is not a number from 1 to 65535")
    return host, int(port_text)


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str) -> SentinelTarget:
    servers = parse_server_list(url, DEFAULT_SENTINEL_PORT)
    if not 1 <= len(servers.path) <= 2:
        raise ConfigurationError(
            "a redis+sentinel:// store URL needs the service name as its path: "
            "redis+sentinel://host:port,host:port/service_name/db"
        )
    db_text = servers.path[1] if len(servers.path) == 2 else "0"
    if not db_text.isdigit():
        raise ConfigurationError("the database in a redis+sentinel:// store URL must be a number")
    return SentinelTarget(
        servers.hosts, unquote(servers.path[0]), int(db_text), servers.username, servers.password
    )


@dataclass(frozen=True)
class ClusterTarget:
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None


def parse_cluster_url(url: str) -> ClusterTarget:
    servers = parse_server_list(url, DEFAULT_REDIS_PORT)
    # A cluster has one keyspace: database 0, nothing else.
    if servers.path not in ((), ("0",)):
        raise ConfigurationError("a redis+cluster:// store URL has no path (no databases)")
    return ClusterTarget(servers.hosts, servers.username, servers.password)


# Called with each connection as it opens, instead of redis-py's own hello (which it must call).


def single_server_client(
    url: str, on_connect: ConnectHook | None = None
) -> tuple[redis.Redis[bytes], Callable[[], None]]:
    try:
        options = parse_url(url)
    except ValueError:
        # The URL may hold a password: name the problem, never the URL.
        raise ConfigurationError("the store URL is not a valid Redis URL") from None
    pool = ConnectionPool(**(options | _limits(on_connect) | _NO_QUERY_RETRIES))
    return redis.Redis(connection_pool=pool), pool.disconnect


def sentinel_client(
    url: str, on_connect: ConnectHook | None = None
) -> tuple[redis.Redis[bytes], Callable[[], None]]:
    """A client on the current master of a Sentinel-watched service. Opens no connection yet;
    each new connection asks the sentinels (one second each at most) where the master is."""
    target = parse_sentinel_url(url)
    limits = _limits(on_connect)
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={
            "socket_connect_timeout": TIMEOUT_SECONDS,
            "socket_timeout": TIMEOUT_SECONDS,
            # redis-py's default retries with growing pauses (half a minute on a silent
            # sentinel); the next sentinel in the list is the retry that helps.
            "retry": Retry(NoBackoff(), 0),
        },
    )
    client: redis.Redis[bytes] = sentinel.master_for(
        target.service_name,
        db=target.db,
        username=target.username,
        password=target.password,
        **limits,
    )
    return client, client.connection_pool.disconnect


class LazyCluster:
    """A Redis Cluster client made on first use. redis-py's RedisCluster asks the nodes for the
    slot map in its constructor; made lazily, a cluster that is down at start-up shows up as
    `StoreUnavailable` on first use (as with the other URLs), and the next call tries again."""

    def __init__(self, url: str) -> None:
        self._target = parse_cluster_url(url)
        self._lock = threading.Lock()
        self._client: RedisCluster[bytes] | None = None

    def client(self) -> RedisCluster[bytes]:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = _OneTimeoutCluster(
                    startup_nodes=[ClusterNode(h, p) for h, p in self._target.nodes],
                    username=self._target.username,
                    password=self._target.password,
                    **_limits(),
                )
            return self._client

    def close(self) -> None:
        client = self._client
        if client is not None:
            client.close()
            self._client = None
