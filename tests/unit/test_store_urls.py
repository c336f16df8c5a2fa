"""Sentinel and Cluster store URLs: what they name, and clear errors that never echo the URL."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.core.errors import ConfigurationError
from broker.store import RedisStore, open_store
from broker.store.redis_clients import _OneTimeoutCluster, parse_cluster_url, parse_sentinel_url


def test_sentinel_url_names_sentinels_service_db_and_password() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://:s%40cret@10.0.0.1:26380,sentinel-b,[::1]:26381/broker/2"
    )
    assert target.sentinels == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert target.service_name == "broker"
    assert target.db == 2
    assert target.password == "s@cret"


def test_sentinel_db_defaults_to_zero_and_user_and_password_to_none() -> None:
    target = parse_sentinel_url("redis+sentinel://a:1/svc")
    assert (target.db, target.username, target.password) == (0, None, None)


def test_cluster_url_names_nodes() -> None:
    target = parse_cluster_url("redis+cluster://:pw@a:7000,b:7001,c")
    assert target.nodes == (("a", 7000), ("b", 7001), ("c", 6379))
    assert (target.username, target.password) == (None, "pw")


def test_a_user_name_is_kept_for_a_redis_acl_user() -> None:
    sentinel = parse_sentinel_url("redis+sentinel://ketenbroker:s%40cret@a:1/svc/0")
    assert (sentinel.username, sentinel.password) == ("ketenbroker", "s@cret")
    cluster = parse_cluster_url("redis+cluster://kb%2Dbroker:pw@a:7000")
    assert (cluster.username, cluster.password) == ("kb-broker", "pw")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://a:1", "service name"),
        ("redis+sentinel://a:1/svc/x", "must be a number"),
        ("redis+sentinel://a:1/svc/0/extra", "service name"),
        ("redis+sentinel://a:99999/svc", "port"),
        ("redis+sentinel://:secret@a:port/svc", "port"),
        ("redis+sentinel://a:1,,b:2/svc", "empty host"),
        ("redis+sentinel://a:1/svc?socket_timeout=60", "no query"),
        ("redis+cluster://a:1/3", "no path"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_store(url)
    assert message in str(raised.value)
    assert "secret" not in str(raised.value)


def test_new_schemes_open_a_redis_store_without_connecting() -> None:
    # Nothing listens on these ports: opening must not connect (the app starts, readiness says).
    assert isinstance(open_store("redis+sentinel://127.0.0.1:1/broker/0"), RedisStore)
    assert isinstance(open_store("redis+cluster://127.0.0.1:1,127.0.0.1:2"), RedisStore)


def test_a_cluster_call_retries_what_redis_py_retries_except_a_timeout() -> None:
    """redis-py retries a cluster call on its own list of errors, compared by exact type: the
    broker's list is redis-py's without the timeout (a broken connection, a cluster down for a
    moment, a slot briefly uncovered all keep their retry). Should a new redis-py retry more,
    this says so: whether the new error can have run the command, someone decides."""
    timeouts = {error for error in RedisCluster.ERRORS_ALLOW_RETRY if error is RedisTimeoutError}
    assert timeouts
    assert (
        set(_OneTimeoutCluster.ERRORS_ALLOW_RETRY)
        == set(RedisCluster.ERRORS_ALLOW_RETRY) - timeouts
    )
