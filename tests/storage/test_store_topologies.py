"""The Redis store on Sentinel and on Cluster, against servers this module starts itself.

Sentinel: logins keep working across a failover (the store finds the new master by itself).
Cluster: every operation touches one key, so keys in any hash slot work; a cluster that is down
at start-up is a `StoreUnavailable` on first use, not an error while building the app.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from broker.core.errors import StoreUnavailable
from broker.core.ports import StoreOp
from broker.store import RedisStore, open_store
from broker.store.redis_clients import TIMEOUT_SECONDS
from tests.support.redis_topologies import (
    NEEDS_REDIS_PROGRAMS,
    SentinelSetup,
    cluster_setup,
    sentinel_setup,
)

pytestmark = [pytest.mark.redis, NEEDS_REDIS_PROGRAMS]


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    with sentinel_setup(tmp_path) as setup:
        yield setup


def test_sentinel_url_reaches_the_master(sentinel: SentinelSetup) -> None:
    store = open_store(sentinel.url(db=3))
    assert isinstance(store, RedisStore)
    try:
        assert store.ping()
        store.put("login:a", b"sealed", 60)
        assert store.get("login:a") == b"sealed"
        assert store.add_if_absent("replay:x", b"1", 60)
        assert not store.add_if_absent("replay:x", b"1", 60)
        assert store.take("login:a") == b"sealed"
        assert store.take("login:a") is None
        assert [store.count("limits:x", 60) for _ in range(2)] == [1, 2]  # rate limits
    finally:
        store.close()


def test_sentinel_unknown_service_is_store_unavailable_quickly(sentinel: SentinelSetup) -> None:
    store = open_store(sentinel.url(service="no-such-service"))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        store.get("x")
    assert time.monotonic() - started < 3
    # Only the error class, never the sentinel's address or the service name.
    assert "no-such-service" not in raised.value.detail
    assert "127.0.0.1" not in raised.value.detail


def _new_history_mark() -> list[StoreOp]:
    """What a store writes on a Redis it did not write last: here a mark of the moment."""
    return [StoreOp.put("mark", str(time.monotonic_ns()).encode(), 60)]


def test_sentinel_failover_is_followed(sentinel: SentinelSetup) -> None:
    store = open_store(sentinel.url(), on_new_history=_new_history_mark)
    assert isinstance(store, RedisStore)
    try:
        store.put("before", b"1", 60)
        first_mark = store.get("mark")
        assert first_mark is not None, "a new store is a new history"
        store.close()  # a plain reconnect to the same master: not a new history
        assert store.get("mark") == first_mark
        _wait_replicated(sentinel.replica_port, "kb:before")
        sentinel.servers.stop(sentinel.master_port)
        # While the sentinel notices (1 s) and promotes the replica, calls fail fast; then they
        # land on the new master without any reconfiguration.
        deadline = time.monotonic() + 30
        while True:
            try:
                store.put("after", b"2", 60)
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "no failover within 30 s"
                time.sleep(0.2)
        assert store.get("after") == b"2"
        assert store.get("before") == b"1"
        # The promoted replica is a new history (its replication id is new): marked again.
        assert store.get("mark") not in (None, first_mark)
        # A batch (a pipeline) goes to the new master too.
        assert store.batch([StoreOp.put("batch", b"3", 60), StoreOp.get("before")]) == [None, b"1"]
    finally:
        store.close()


def test_an_acl_user_in_a_sentinel_url_reaches_the_master(sentinel: SentinelSetup) -> None:
    master, replica = sentinel.master_port, sentinel.replica_port
    with redis.Redis(port=replica) as client:
        client.config_set("masteruser", WATCHER)
        client.config_set("masterauth", ACL_PASSWORD)
    with redis.Redis(port=sentinel.sentinel_port) as client:
        client.execute_command("SENTINEL", "SET", sentinel.service, "auth-user", WATCHER)
        client.execute_command("SENTINEL", "SET", sentinel.service, "auth-pass", ACL_PASSWORD)
    _acl_users_only([master, replica])
    store = open_store(
        sentinel.url().replace("://", f"://{ACL_USER}:{ACL_PASSWORD}@"),
        on_new_history=_new_history_mark,  # its script reads INFO: the user needs +info
    )
    try:
        store.put("login:a", b"sealed", 60)  # refused before: the user name was dropped
        assert store.get("login:a") == b"sealed"
        assert store.get("mark") is not None
    finally:
        store.close()


ACL_USER, ACL_PASSWORD = "ketenbroker", "acl-secret"
# What operations.md asks for the broker's user (a Cluster's client also reads the slot map and
# the command table).
ACL_RULES = ("~kb:*", "+@read", "+@write", "+eval", "+info", "+ping", "+cluster|slots", "+command")
WATCHER = "watcher"  # the sentinel's and the replica's user, with every right


def _acl_users_only(ports: list[int]) -> None:
    """The servers let in the broker's ACL user and the watcher, nobody else (the default user
    is off)."""
    for port in ports:
        with redis.Redis(port=port) as client:
            client.execute_command("ACL", "SETUSER", ACL_USER, "on", f">{ACL_PASSWORD}", *ACL_RULES)
            client.execute_command("ACL", "SETUSER", WATCHER, "on", f">{ACL_PASSWORD}", "+@all")
            client.acl_setuser("default", enabled=False)


def _wait_replicated(replica_port: int, key: str) -> None:
    replica = redis.Redis(host="127.0.0.1", port=replica_port, socket_timeout=1)
    deadline = time.monotonic() + 20
    try:
        while replica.get(key) is None:
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)
    finally:
        replica.close()


def test_cluster_serves_keys_in_every_slot(tmp_path: Path) -> None:
    with cluster_setup(tmp_path) as cluster:
        store = open_store(cluster.url())
        assert isinstance(store, RedisStore)
        try:
            keys = [f"login:{secrets.token_hex(8)}" for _ in range(60)]
            for key in keys:
                store.put(key, key.encode(), 60)
            assert all(store.get(key) == key.encode() for key in keys)
            assert all(store.add_if_absent(f"replay:{key}", b"1", 60) for key in keys)
            assert not any(store.add_if_absent(f"replay:{key}", b"1", 60) for key in keys)
            assert all(store.take(key) == key.encode() for key in keys)
            assert all(store.take(key) is None for key in keys)
            store.delete(keys[0])
            # A batch over keys in many slots: single calls, in order (redis_store.py).
            batch = [StoreOp.add_if_absent(key, b"b", 60) for key in keys] + [
                StoreOp.take(key) for key in keys
            ]
            assert store.batch(batch) == [True] * len(keys) + [b"b"] * len(keys)
            # Rate-limit counters (one script on one key) in every slot too.
            assert [store.count(f"limits:{key}", 60) for key in keys] == [1] * len(keys)
            assert [store.count(f"limits:{key}", 60) for key in keys] == [2] * len(keys)
            assert store.ping()
        finally:
            store.close()


def test_an_acl_user_in_a_cluster_url_reaches_every_node(tmp_path: Path) -> None:
    with cluster_setup(tmp_path) as cluster:
        _acl_users_only(cluster.ports)
        store = open_store(cluster.url(f"{ACL_USER}:{ACL_PASSWORD}@"))
        try:
            keys = [f"login:{index}" for index in range(30)]  # keys on every master
            for key in keys:
                store.put(key, b"sealed", 60)
            assert all(store.renew(key, 60) == b"sealed" for key in keys)
            assert all(store.take(key) == b"sealed" for key in keys)
            assert store.add_if_absent("replay:x", b"1", 60)
            assert store.count("limits:x", 60) == 1
            assert store.ping()
        finally:
            store.close()


def test_cluster_down_at_start_is_store_unavailable_on_first_use(tmp_path: Path) -> None:
    from tests.support.live import free_ports

    port = free_ports(1)
    store = open_store(f"redis+cluster://127.0.0.1:{port}")  # connects to nothing yet
    with pytest.raises(StoreUnavailable):
        store.put("k", b"v", 60)
    with pytest.raises(StoreUnavailable):
        store.ping()


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://127.0.0.1:{port}/kbtest/0", "redis+cluster://127.0.0.1:{port}"],
    ids=["sentinel", "cluster"],
)
def test_a_silent_sentinel_or_cluster_node_times_out_within_the_bound(url: str) -> None:
    # Accepts connections (the kernel's backlog does) but never answers: a hung server.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        store = open_store(url.format(port=silent.getsockname()[1]))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get("k")
        # One second per attempt: the connect succeeds, the reply never comes.
        assert time.monotonic() - started < 3.5


def test_a_hung_cluster_master_costs_one_timeout(tmp_path: Path) -> None:
    """redis-py's cluster client retried a timeout on its own (after re-reading the slot map),
    whatever the broker's retry said: two seconds instead of one, and a write such as SET NX
    sent again. Now a timeout ends the call, as on one server."""
    with cluster_setup(tmp_path) as cluster:
        store = open_store(cluster.url())
        try:
            store.put("probe", b"x", 60)
            with cluster.servers.frozen(cluster.master_of("kb:probe")):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match="TimeoutError"):
                    store.add_if_absent("probe", b"y", 60)
                waited = time.monotonic() - started
            assert waited < TIMEOUT_SECONDS + 0.5
            assert store.get("probe") == b"x"  # the cluster serves the key again
        finally:
            store.close()
