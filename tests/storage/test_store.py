"""Both `KeyValueStore` implementations against one set of tests.

The Redis half talks to a real server (db 15, a fresh key prefix per test). It is skipped with a
reason only when that server is unreachable on a developer machine; with `CI` set, an unreachable
Redis fails the run instead, so CI can never pass by silently skipping it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from broker.core.errors import ConfigurationError, InvalidMessage, StoreUnavailable
from broker.core.ports import KeyValueStore, StoreOp, StoreReply
from broker.login.replay import ReplayGuard, bucket_of, epoch_key
from broker.store import MemoryStore, RedisStore, open_store

REDIS_URL = os.environ.get("KETENBROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RUN_PREFIX = f"kbtest:{uuid.uuid4().hex}:"
THREADS = 20


class KeyNames:
    """Hands out key names and remembers them, so the Redis fixture can delete them afterwards."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __call__(self, label: str) -> str:
        name = f"{label}-{len(self.used)}"
        self.used.append(name)
        return name


@pytest.fixture
def new_key() -> KeyNames:
    return KeyNames()


def _reachable_redis_store() -> RedisStore:
    redis_store = RedisStore(REDIS_URL, key_prefix=f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:")
    try:
        redis_store.ping()
    except StoreUnavailable as error:
        redis_store.close()
        reason = f"Redis at {REDIS_URL} is unreachable ({error.detail})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the Redis store tests must run")
        pytest.skip(f"{reason}; set CI=1 to make this a failure")
    return redis_store


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, new_key: KeyNames) -> Iterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = _reachable_redis_store()
    yield redis_store
    for name in new_key.used:
        redis_store.delete(name)
    redis_store.close()


def _closed_port() -> int:
    # Bind to an ephemeral port and release it: nothing listens there afterwards.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_together(count: int, work: Callable[[int], object]) -> list[object]:
    """Run `work(i)` in `count` threads released at the same instant; return results in order."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait(timeout=5)
            results[index] = work(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors, errors
    return results


# --- round trips -------------------------------------------------------------------------------


def test_put_then_get_returns_the_bytes(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("roundtrip")
    value = bytes(range(256))  # every byte value: the store must not decode anything
    store.put(key, value, 30)
    assert store.get(key) == value
    assert store.get(key) == value  # get does not consume


def test_empty_value_is_not_absent(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("empty")
    store.put(key, b"", 30)
    assert store.get(key) == b""
    assert store.add_if_absent(key, b"other", 30) is False
    assert store.take(key) == b""
    assert store.get(key) is None


def test_put_overwrites(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("overwrite")
    store.put(key, b"first", 30)
    store.put(key, b"second", 30)
    assert store.get(key) == b"second"


def test_missing_key_reads_as_none(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("missing")
    assert store.get(key) is None
    assert store.take(key) is None


def test_take_returns_once(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("take")
    store.put(key, b"login-state", 30)
    assert store.take(key) == b"login-state"
    assert store.take(key) is None
    assert store.get(key) is None


def test_add_if_absent_sets_only_the_first_time(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("add")
    assert store.add_if_absent(key, b"first", 30) is True
    assert store.add_if_absent(key, b"second", 30) is False
    assert store.get(key) == b"first"


def test_replace_if_same_writes_only_over_the_bytes_read(
    store: KeyValueStore, new_key: KeyNames
) -> None:
    key = new_key("replace")
    assert store.replace_if_same(key, b"read", b"mine", 30) is False  # absent: not the same
    assert store.get(key) is None
    assert store.replace_if_same(key, None, b"first", 30) is True  # None: only while absent
    assert store.replace_if_same(key, None, b"again", 30) is False
    assert store.replace_if_same(key, b"firs", b"mine", 30) is False
    assert store.replace_if_same(key, b"first" + b"\0", b"mine", 30) is False
    assert store.get(key) == b"first"
    assert store.replace_if_same(key, b"first", bytes(range(256)), 30) is True
    assert store.get(key) == bytes(range(256))
    assert store.replace_if_same(key, bytes(range(256)), b"", 30) is True
    assert store.replace_if_same(key, b"", b"after-empty", 30) is True  # empty is not absent
    assert store.get(key) == b"after-empty"
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.replace_if_same(key, b"after-empty", b"v", 0)
    with pytest.raises(TypeError):
        store.replace_if_same(key, "after-empty", b"v", 30)  # type: ignore[arg-type]
    assert store.get(key) == b"after-empty"


def test_replace_if_same_in_a_batch_replies_as_the_single_call(
    store: KeyValueStore, new_key: KeyNames
) -> None:
    key, absent, other = new_key("batch-cas"), new_key("batch-cas-absent"), new_key("batch-cas-o")
    store.put(key, b"v1", 30)
    replies = store.batch(
        [
            StoreOp.replace_if_same(key, b"v0", b"lost", 30),
            StoreOp.put(other, b"stands", 30),  # a failed compare-and-set undoes nothing
            StoreOp.replace_if_same(key, b"v1", b"v2", 30),
            StoreOp.get(key),
            StoreOp.replace_if_same(absent, None, b"new", 30),
            StoreOp.replace_if_same(absent, None, b"newer", 30),
        ]
    )
    assert replies == [False, None, True, b"v2", True, False]
    assert store.get(other) == b"stands"
    assert store.get(absent) == b"new"
    assert StoreOp.replace_if_same(absent, None, b"x", 30) == StoreOp.add_if_absent(
        absent, b"x", 30
    )


def test_replace_if_same_has_a_single_winner(store: KeyValueStore, new_key: KeyNames) -> None:
    """Every caller read the same bytes: one write goes in, the others learn it did."""
    for _ in range(5):
        key = new_key("race-replace")
        store.put(key, b"read by all", 30)

        def replace(index: int, key: str = key) -> StoreReply:
            if index % 2:
                return store.replace_if_same(key, b"read by all", b"%d" % index, 30)
            return store.batch([StoreOp.replace_if_same(key, b"read by all", b"%d" % index, 30)])[0]

        results = _run_together(THREADS, replace)
        winners = [index for index, won in enumerate(results) if won is True]
        assert len(winners) == 1
        assert results.count(False) == THREADS - 1
        assert store.get(key) == b"%d" % winners[0]


def test_renew_gives_the_value_and_sets_a_new_expiry(
    store: KeyValueStore, new_key: KeyNames
) -> None:
    longer, shorter, missing = new_key("renew-l"), new_key("renew-s"), new_key("renew-m")
    store.put(longer, b"kept", 1)
    store.put(shorter, b"ends", 30)
    assert store.renew(longer, 30) == b"kept"
    assert store.renew(shorter, 1) == b"ends"
    assert store.renew(missing, 30) is None
    assert store.get(missing) is None  # renewing what is absent writes nothing
    deadline = time.monotonic() + 2.5
    time.sleep(1.05)
    while store.get(shorter) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(shorter) is None
    assert store.get(longer) == b"kept"
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.renew(longer, 0)


def test_delete(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("delete")
    store.put(key, b"value", 30)
    store.delete(key)
    assert store.get(key) is None
    store.delete(key)  # deleting what is gone is fine
    assert store.add_if_absent(key, b"again", 30) is True


def test_ping(store: KeyValueStore) -> None:
    assert store.ping() is True


# --- batches -----------------------------------------------------------------------------------


def test_a_batch_replies_as_the_single_calls_would(store: KeyValueStore, new_key: KeyNames) -> None:
    a, b, c, d = new_key("batch-a"), new_key("batch-b"), new_key("batch-c"), new_key("batch-d")
    store.put(b, b"held", 30)
    store.put(d, b"doomed", 30)
    replies = store.batch(
        [
            StoreOp.put(a, bytes(range(256)), 30),
            StoreOp.get(a),
            StoreOp.take(b),
            StoreOp.take(b),
            StoreOp.add_if_absent(c, b"first", 30),
            StoreOp.add_if_absent(c, b"second", 30),
            StoreOp.get(new_key("batch-missing")),
            StoreOp.delete(d),
            StoreOp.get(c),
        ]
    )
    assert replies == [None, bytes(range(256)), b"held", None, True, False, None, None, b"first"]
    assert store.get(a) == bytes(range(256))
    assert store.get(b) is None
    assert store.get(d) is None
    assert store.batch([]) == []


def test_a_batch_keeps_its_order(store: KeyValueStore, new_key: KeyNames) -> None:
    """The replay cache adds its key, then reads the epoch (replay.py): in that order."""
    key = new_key("batch-order")
    replies = store.batch(
        [StoreOp.get(key), StoreOp.add_if_absent(key, b"1", 30), StoreOp.get(key)]
    )
    assert replies == [None, True, b"1"]
    replies = store.batch([StoreOp.delete(key), StoreOp.get(key), StoreOp.put(key, b"2", 30)])
    assert replies == [None, None, None]
    assert store.get(key) == b"2"


@pytest.mark.parametrize(
    "bad",
    [
        StoreOp.put("k", b"v", 0),
        StoreOp.add_if_absent("k", b"v", True),
        StoreOp.put("k", "text", 30),  # type: ignore[arg-type]
        StoreOp("flush", "k"),  # type: ignore[arg-type]
        StoreOp("replace_if_same", "k", b"v", 30, "text"),  # type: ignore[arg-type]
    ],
    ids=["zero-ttl", "bool-ttl", "str-value", "unknown-operation", "str-expected"],
)
def test_a_batch_with_one_bad_operation_runs_none(
    store: KeyValueStore, new_key: KeyNames, bad: StoreOp
) -> None:
    key = new_key("batch-untouched")
    with pytest.raises((TypeError, ValueError)):
        store.batch([StoreOp.put(key, b"v", 30), bad])
    assert store.get(key) is None


def test_a_batch_add_if_absent_has_a_single_winner(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("batch-race")
    results = _run_together(
        THREADS, lambda i: store.batch([StoreOp.add_if_absent(key, b"%d" % i, 30)])[0]
    )
    assert results.count(True) == 1
    assert results.count(False) == THREADS - 1


@pytest.mark.parametrize("ttl", [0, -1, True])
def test_ttl_must_be_at_least_one_second(store: KeyValueStore, new_key: KeyNames, ttl: int) -> None:
    key = new_key("ttl")
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.put(key, b"v", ttl)
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.add_if_absent(key, b"v", ttl)
    assert store.get(key) is None


def test_values_must_be_bytes(store: KeyValueStore, new_key: KeyNames) -> None:
    key = new_key("type")
    with pytest.raises(TypeError):
        store.put(key, "text", 30)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.add_if_absent(key, "text", 30)  # type: ignore[arg-type]


def test_any_text_is_a_key_of_its_own(store: KeyValueStore, new_key: KeyNames) -> None:
    """A key is any `str`, also one that no UTF-8 can spell: a JSON string from outside may
    hold a lone surrogate (`"\\udc80"`), which Redis's client refused to encode (a 500 where the
    memory store took it). Both stores take it, as a key apart from every other one."""
    lone = new_key("lone-\udc80")
    pair = new_key("pair-\ud83d\ude00")  # two lone surrogates, not the emoji they would spell
    emoji = pair.replace("\ud83d\ude00", "\U0001f600")
    new_key.used.append(emoji)
    assert store.add_if_absent(lone, b"1", 30) is True
    assert store.add_if_absent(lone, b"2", 30) is False
    store.put(pair, b"pair", 30)
    assert store.get(emoji) is None
    store.put(emoji, b"emoji", 30)
    assert store.batch([StoreOp.get(lone), StoreOp.take(pair), StoreOp.get(emoji)]) == [
        b"1",
        b"pair",
        b"emoji",
    ]
    assert store.renew(lone, 30) == b"1"
    assert store.count(new_key("count-\udc80"), 30) == 1
    store.delete(lone)
    assert store.get(lone) is None


def test_a_message_id_that_is_no_text_is_used_once(store: KeyValueStore, new_key: KeyNames) -> None:
    """The replay cache on a message id with a lone surrogate (a school's logout token read
    before its reader refused such a jti): the Redis store raised UnicodeEncodeError (a 500)."""
    guard, now = ReplayGuard(store, skew=60), time.time()
    issuer, jti = f"oidc-logout:{uuid.uuid4().hex}:cl", json.loads('"\\udc80x"')
    new_key.used.append(epoch_key(bucket_of(f"{issuer}:{jti}")))  # deleted afterwards
    guard.first_use(issuer, jti, now, now + 30)
    with pytest.raises(InvalidMessage, match="seen before"):
        guard.first_use(issuer, jti, now, now + 30)
    guard.release(issuer, jti)
    guard.first_use(issuer, jti, now, now + 30)
    guard.release(issuer, jti)


@pytest.mark.redis
def test_key_prefixes_keep_stores_apart(new_key: KeyNames) -> None:
    first = _reachable_redis_store()
    second = RedisStore(REDIS_URL, key_prefix=f"{RUN_PREFIX}other:")
    key = new_key("prefix")
    try:
        first.put(key, b"mine", 30)
        assert second.get(key) is None
    finally:
        first.delete(key)
        first.close()
        second.close()


# --- expiry ------------------------------------------------------------------------------------


def test_entries_expire(store: KeyValueStore, new_key: KeyNames) -> None:
    put_key, take_key, add_key, kept_key = (new_key(label) for label in ("p", "t", "a", "k"))
    store.put(put_key, b"1", 1)
    store.put(take_key, b"2", 1)
    assert store.add_if_absent(add_key, b"3", 1) is True
    store.put(kept_key, b"4", 30)
    assert store.get(put_key) == b"1"

    deadline = time.monotonic() + 2.5
    time.sleep(1.05)
    while store.get(put_key) is not None and time.monotonic() < deadline:
        time.sleep(0.05)

    assert store.get(put_key) is None
    assert store.take(take_key) is None
    assert store.add_if_absent(add_key, b"new", 30) is True
    assert store.get(add_key) == b"new"
    assert store.get(kept_key) == b"4"


def test_a_counter_counts_within_its_window_and_starts_again_after(
    store: KeyValueStore, new_key: KeyNames
) -> None:
    counter, other = new_key("c"), new_key("o")
    assert [store.count(counter, 1) for _ in range(3)] == [1, 2, 3]
    assert store.count(other, 30) == 1  # counters are per key
    deadline = time.monotonic() + 2.5
    time.sleep(1.05)
    while store.get(counter) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    # The window is fixed from the first count: later counts did not extend it.
    assert store.count(counter, 1) == 1
    assert store.count(other, 30) == 2


def test_a_counter_counts_every_concurrent_caller_once(
    store: KeyValueStore, new_key: KeyNames
) -> None:
    counter = new_key("c")
    start = threading.Barrier(THREADS)
    seen: list[int] = []

    def count() -> None:
        start.wait()
        seen.append(store.count(counter, 30))

    threads = [threading.Thread(target=count) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, THREADS + 1))


@pytest.mark.parametrize("window", [0, -1, True])
def test_a_counters_window_is_at_least_one_second(
    store: KeyValueStore, new_key: KeyNames, window: int
) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        store.count(new_key("c"), window)


def test_memory_store_sweeps_entries_nobody_reads_again() -> None:
    now = [1000.0]
    memory = MemoryStore(clock=lambda: now[0], sweep_interval_seconds=60)
    for index in range(100):
        memory.put(f"abandoned-{index}", b"x", 5)
    assert len(memory) == 100

    now[0] += 61  # past every TTL and past the sweep interval
    memory.put("fresh", b"y", 5)  # a write triggers the sweep

    assert len(memory) == 1
    assert memory.get("fresh") == b"y"


def test_memory_store_expires_on_read_with_an_injected_clock() -> None:
    now = [0.0]
    memory = MemoryStore(clock=lambda: now[0])
    memory.put("k", b"v", 10)
    now[0] = 9.999
    assert memory.get("k") == b"v"
    now[0] = 10.0
    assert memory.get("k") is None
    assert len(memory) == 0
    assert memory.sweep() == 0


# --- concurrency -------------------------------------------------------------------------------


def test_take_has_a_single_winner(store: KeyValueStore, new_key: KeyNames) -> None:
    for _ in range(5):
        key = new_key("race-take")
        store.put(key, b"the-one", 30)

        def take(_index: int, key: str = key) -> bytes | None:
            return store.take(key)

        results = _run_together(THREADS, take)
        assert results.count(b"the-one") == 1
        assert results.count(None) == THREADS - 1


def test_add_if_absent_has_a_single_winner(store: KeyValueStore, new_key: KeyNames) -> None:
    for _ in range(5):
        key = new_key("race-add")

        def add(index: int, key: str = key) -> bool:
            return store.add_if_absent(key, f"{index}".encode(), 30)

        results = _run_together(THREADS, add)
        winners = [index for index, won in enumerate(results) if won is True]
        assert len(winners) == 1
        assert results.count(False) == THREADS - 1
        assert store.get(key) == f"{winners[0]}".encode()


# --- Redis down --------------------------------------------------------------------------------

SECRET_KEY = "cookiehash-5f3a9c"

OPERATIONS: dict[str, Callable[[KeyValueStore], object]] = {
    "put": lambda s: s.put(SECRET_KEY, b"v", 30),
    "get": lambda s: s.get(SECRET_KEY),
    "take": lambda s: s.take(SECRET_KEY),
    "add_if_absent": lambda s: s.add_if_absent(SECRET_KEY, b"v", 30),
    "delete": lambda s: s.delete(SECRET_KEY),
    "replace_if_same": lambda s: s.replace_if_same(SECRET_KEY, b"v", b"w", 30),
    "renew": lambda s: s.renew(SECRET_KEY, 30),
    "batch": lambda s: s.batch([StoreOp.add_if_absent(SECRET_KEY, b"v", 30), StoreOp.get("x")]),
    "ping": lambda s: s.ping(),
    "count": lambda s: s.count(SECRET_KEY, 30),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_closed_port_raises_store_unavailable_quickly(operation: str) -> None:
    down = RedisStore(f"redis://127.0.0.1:{_closed_port()}/15")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            OPERATIONS[operation](down)
        assert time.monotonic() - started < 1.5
    finally:
        down.close()
    assert raised.value.status == 503
    assert SECRET_KEY not in raised.value.detail
    assert SECRET_KEY not in str(raised.value)


@pytest.mark.parametrize("operation", ["get", "add_if_absent"])
@pytest.mark.parametrize(
    "query",
    ["", "?retry_on_timeout=true", "?retry_on_error=TimeoutError&socket_timeout=30"],
    ids=["no-query", "retry-on-timeout", "retry-on-error"],
)
def test_silent_server_times_out_within_the_bound(operation: str, query: str) -> None:
    # Accepts connections (the kernel's backlog does) but never answers: a hung Redis. No
    # query makes the broker wait longer or retry the timeout (redis-py would: two seconds).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(THREADS)
        port = silent.getsockname()[1]
        hung = RedisStore(f"redis://127.0.0.1:{port}/15{query}")
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="TimeoutError"):
                OPERATIONS[operation](hung)
            assert time.monotonic() - started < 1.5
        finally:
            hung.close()


# --- open_store --------------------------------------------------------------------------------


def test_memory_url_opens_a_memory_store() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/15",
        "redis://:hunter2@127.0.0.1:6379/0",
        "rediss://broker:hunter2@redis.example.org:6380/0",
        "unix:///run/redis/redis.sock?db=2",
        "redis+sentinel://:hunter2@sentinel.example.org:26379,10.0.0.2:26379/mymaster/0",
        "redis+cluster://:hunter2@10.0.0.1:7000,10.0.0.2:7000",
    ],
)
def test_redis_urls_open_a_redis_store_without_connecting(url: str) -> None:
    opened = open_store(url)
    assert isinstance(opened, RedisStore)
    opened.close()


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("http://127.0.0.1:6379", "'http'"),
        ("postgresql://broker:hunter2@db.example.org/broker", "'postgresql'"),
        ("redis+socket://:hunter2@sentinel.example.org:26379/mymaster", "'redis+socket'"),
    ],
)
def test_unknown_scheme_is_named_and_the_password_is_not(url: str, scheme: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_store(url)
    assert scheme in raised.value.detail
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "127.0.0.1:6379",
        "hunter2@127.0.0.1",
        "redis://:hunter2@127.0.0.1:notaport/0",
        "redis://:hunter2@[::1/0",
    ],
)
def test_bad_store_urls_fail_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_store(url)
    assert "hunter2" not in str(raised.value)
    assert "hunter2" not in raised.value.detail
    assert raised.value.__suppress_context__ or raised.value.__context__ is None


def test_an_oidc_code_is_redeemed_once_when_workers_race(store: KeyValueStore) -> None:
    """Eight threads (as eight workers would) redeem one code: exactly one gets it."""
    from concurrent.futures import ThreadPoolExecutor

    from broker.oidc.grants import Grantee, IssuedCode, TokenVault

    vault = TokenVault(store, code_ttl=30, access_ttl=30, refresh_ttl=30)
    grantee = Grantee("f" * 64, {"given_name": "Sanne"}, 1, None, "_sid", secrets.token_hex(8))
    issued = IssuedCode("rp", "https://rp.example/cb", "openid", None, None, None, grantee)
    code = secrets.token_urlsafe(36)
    vault.put_code(code, issued)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: vault.take_code(code, "rp"), range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].grantee.sub == "f" * 64

    # A replay of a redeemed code revokes the tokens the first redemption got.
    fresh = Grantee("e" * 64, {}, 1, None, "_sid", secrets.token_hex(8))
    code = secrets.token_urlsafe(36)
    vault.put_code(
        code, IssuedCode("rp", "https://rp.example/cb", "openid", None, None, None, fresh)
    )
    assert vault.take_code(code, "rp") is not None
    access = secrets.token_urlsafe(32)
    vault.put_tokens({"access_token": access, "scope": "openid"}, "rp", fresh)
    assert vault.access(access) is not None
    assert vault.take_code(code, "rp") is None
    assert vault.access(access) is None
