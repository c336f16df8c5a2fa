"""The replay cache on real Redis servers this module starts itself: a three-master Cluster and
one plain server (never the shared Redis on 6379).

Two things a Cluster does differently from one server. A batch there is single calls, so of two
racing copies of one school's answer, the one that lost the replay key could take the login
record before the one that won it, and both were refused: the take now follows the replay check
there. And a master restarted without persistence comes back empty: its replay keys went, and
the epoch marker that vouches for them must go with them (each bucket's marker in its keys' hash
slot, broker/login/replay.py), or a second use of a message whose key that master held passes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from broker.core.errors import InvalidMessage
from broker.core.ports import StoreOp, StoreReply
from broker.login.flow import LoginFlow
from broker.login.replay import BUCKET_TAGS, ReplayGuard, bucket_of, epoch_key, open_epoch_op
from broker.store import RedisStore
from tests.security.test_saml_attacks import one_of_parallel_copies_completes
from tests.support.live import LiveDemo, free_ports
from tests.support.redis_topologies import (
    NEEDS_REDIS_PROGRAMS,
    ClusterSetup,
    RedisProcesses,
    cluster_setup,
)
from tests.support.saml_workers import demo_school_forger, demo_school_signer

pytestmark = [pytest.mark.redis, NEEDS_REDIS_PROGRAMS]

ISSUER = "saml:https://idp.school.example"
SKEW = 60
RACES = 100


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSetup]:
    with cluster_setup(tmp_path_factory.mktemp("cluster")) as setup:
        yield setup


@pytest.fixture(scope="module")
def one_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    servers = RedisProcesses(tmp_path_factory.mktemp("one-server"))
    port = free_ports(1)
    servers.start(port)
    try:
        yield port
    finally:
        servers.stop_all()


def _store(url: str) -> tuple[RedisStore, str]:
    """A store of its own on `url`, and its key prefix: a fresh one keeps each test's keys
    apart."""
    prefix = f"kb{secrets.token_hex(4)}:"
    return RedisStore(url, key_prefix=prefix), prefix


def _race(store: RedisStore) -> list[list[str]]:
    """`RACES` times, two copies of one school's answer checked at once, each as the ACS does
    (the replay check, then the login record's take): what each copy came to."""
    guard = ReplayGuard(store, skew=SKEW)
    outcomes: list[list[str]] = []
    for _ in range(RACES):
        request_id, assertion_id = f"_{secrets.token_hex(8)}", f"_{secrets.token_hex(8)}"
        now = time.time()
        store.batch([open_epoch_op(now - 30, request_id)])  # the request to the school
        take = LoginFlow.take_op(secrets.token_urlsafe(18))
        store.put(take.key, b"sealed login record", 60)
        go = threading.Barrier(2)
        results: list[str] = []

        def copy() -> None:
            go.wait(timeout=5)
            try:
                found = guard.first_use(
                    ISSUER, assertion_id, now, now + 300, request_id=request_id, then=take
                )
                results.append("completes" if found is not None else "state_expired")
            except InvalidMessage as refused:
                results.append(refused.code)

        copies = [threading.Thread(target=copy) for _ in range(2)]
        for thread in copies:
            thread.start()
        for thread in copies:
            thread.join(timeout=10)
        outcomes.append(sorted(results))
    return outcomes


def test_on_a_cluster_one_of_two_racing_copies_of_an_answer_completes(
    cluster: ClusterSetup,
) -> None:
    """Before: the batch of both copies ran as single calls, interleaved, and in about a third
    of the races copy A won the replay key while copy B took the record: neither completed."""
    store, _ = _store(cluster.url())
    try:
        assert store.atomic_batches is False
        outcomes = _race(store)
    finally:
        store.close()
    assert all(outcome == ["completes", "replay"] for outcome in outcomes), outcomes


def test_on_one_server_the_race_is_one_round_trip_per_copy(
    one_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One server (a Sentinel's master alike): the check and the take stay one batch, one
    script, so no command of the other copy runs between them."""
    store, _ = _store(f"redis://127.0.0.1:{one_server}/0")
    batches: list[int] = []
    batch = store.batch

    def counted(operations: list[StoreOp]) -> list[StoreReply]:
        batches.append(len(operations))
        return batch(operations)

    monkeypatch.setattr(store, "batch", counted)
    server = redis.Redis(port=one_server)
    try:
        assert store.atomic_batches is True
        scripts = server.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
        outcomes = _race(store)
        after = server.info("commandstats")["cmdstat_eval"]["calls"]
    finally:
        server.close()
        store.close()
    assert all(outcome == ["completes", "replay"] for outcome in outcomes), outcomes
    # Per race: the request's marker (one), then each copy's replay key, marker and take (three).
    assert batches == [1, 3, 3] * RACES
    assert after - scripts == len(batches)  # one command each


@pytest.mark.parametrize("request_id", [None, "_request"], ids=["a logout message", "an answer"])
def test_a_cluster_master_that_restarts_empty_does_not_let_a_second_use_in(
    cluster: ClusterSetup, request_id: str | None
) -> None:
    """The master holding a message's replay key restarts without persistence (FLUSHALL on
    that node): the second use is refused, as the epoch marker that vouched for the key was on
    the same master. Before, one marker for the whole store sat on one master and kept its old
    time: "second use accepted". A message whose key another master holds is still a replay."""
    store, prefix = _store(cluster.url())
    try:
        # A store in use since yesterday: every bucket has its marker.
        yesterday = ReplayGuard(store, skew=SKEW, clock=lambda: time.time() - 86400)
        for tag in BUCKET_TAGS:
            yesterday.epoch(tag)
        guard = ReplayGuard(store, skew=SKEW)
        message, issued = f"_{secrets.token_hex(8)}", time.time() - 2 * SKEW
        guard.first_use(ISSUER, message, issued, time.time() + 600, request_id=request_id)
        tag = bucket_of(request_id or f"{ISSUER}:{message}")
        replay_key = f"{prefix}replay:{tag}:{ISSUER}:{message}"
        master = cluster.master_of(replay_key)
        assert cluster.master_of(f"{prefix}{epoch_key(tag)}") == master
        # A message of another master, used before the wipe too.
        other = next(
            f"_{n}"
            for n in range(1000)
            if cluster.master_of(f"{prefix}{epoch_key(bucket_of(f'{ISSUER}:_{n}'))}") != master
        )
        guard.first_use(ISSUER, other, issued, time.time() + 600)

        wiped = redis.Redis(host="127.0.0.1", port=master)
        try:
            assert wiped.get(replay_key) == b"1"
            wiped.flushall()
        finally:
            wiped.close()

        with pytest.raises(InvalidMessage) as refused:
            guard.first_use(ISSUER, message, issued, time.time() + 600, request_id=request_id)
        assert refused.value.code == "before_store_epoch"
        with pytest.raises(InvalidMessage) as kept:
            guard.first_use(ISSUER, other, issued, time.time() + 600)
        assert kept.value.code == "replay"
    finally:
        store.close()


def test_a_broker_on_a_cluster_completes_one_login_of_ten_parallel_copies(
    cluster: ClusterSetup, tmp_path: Path
) -> None:
    """The ACS itself, on a Cluster store: copies of one signed answer posted at once."""
    demo = LiveDemo(tmp_path, store_url=cluster.url())
    try:
        for _ in range(5):
            one_of_parallel_copies_completes(
                demo, demo_school_forger(demo), demo_school_signer(demo), 10
            )
    finally:
        demo.close()
