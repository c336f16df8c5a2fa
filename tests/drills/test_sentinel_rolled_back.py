"""A Sentinel failover that loses the last writes (the chaos review's drill, made
deterministic): the school answers and the login record reaches the replica; the replica is
stopped and its replication link cut, so the answer's use (the ACS: replay key, record taken,
receipt) reaches the master only; the master dies; the replica resumes and is promoted, with the
login record back, no replay key and the epoch markers of before. The broker's first new
connection finds a server whose data it did not write last and moves every bucket's epoch to
now (the store epoch rule, security.md): the same answer delivered again is refused, and new
logins go on.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis, RedisError

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.drills.expect import delivered_is_refused_then_a_new_login_works
from tests.support.federation import SAML_PUBLISHER, Federation
from tests.support.processes import wait_for
from tests.support.redis_topologies import NEEDS_REDIS_PROGRAMS, SentinelSetup, sentinel_setup

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis, NEEDS_REDIS_PROGRAMS]

UID = "sanne.jansen"
FEDERATION = {"brokers": 1, "clock_skew_seconds": 1}


@dataclass
class SentinelStore:
    """What the federation needs of its Redis, for a Sentinel-watched pair."""

    setup: SentinelSetup
    directory: Path

    @property
    def url(self) -> str:
        return self.setup.url()

    @property
    def port(self) -> int:
        return self.setup.master_port

    def client(self) -> Redis[bytes]:
        return Redis(port=self.port, socket_timeout=2)


@pytest.fixture(scope="module")
def redis_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelStore]:
    directory = tmp_path_factory.mktemp("sentinel")
    with sentinel_setup(directory) as setup:
        yield SentinelStore(setup, directory)


@pytest.fixture(scope="module")
def redis(redis_pair: SentinelStore) -> SentinelStore:  # the drills' conftest asks for `redis`
    return redis_pair


def keys(port: int, pattern: bytes) -> set[bytes]:
    with closing(Redis(port=port, socket_timeout=1)) as client:
        return set(client.scan_iter(match=pattern))


def promoted(setup: SentinelSetup) -> bool:
    try:
        with closing(Redis(port=setup.sentinel_port, socket_timeout=1)) as sentinel:
            address = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", setup.service)
        with closing(Redis(port=setup.replica_port, socket_timeout=1)) as replica:
            role = replica.info("replication")["role"]
    except RedisError:
        return False
    return bool(address) and int(address[1]) == setup.replica_port and role == "master"


def test_an_answer_used_on_a_master_lost_in_a_failover_is_refused_after_it(
    fed: Federation, redis_pair: SentinelStore
) -> None:
    setup = redis_pair.setup
    assert fed.login(fed.browser(), SAML_PUBLISHER, DEMO_SCHOOL_ID, UID).status == 200
    browser = fed.browser()
    answer = fed.school_answered(browser, SAML_PUBLISHER, DEMO_SCHOOL_ID, UID)
    issued = time.time()
    wait_for(lambda: bool(keys(setup.replica_port, b"kb:login:*")), "the record on the replica")
    earlier = keys(setup.master_port, b"kb:replay:*")
    replica = setup.servers.processes[setup.replica_port].pid
    os.kill(replica, signal.SIGSTOP)
    try:
        with closing(Redis(port=setup.master_port, socket_timeout=2)) as master:
            master.client_kill_filter(_type="replica")  # it cannot reconnect while stopped
        first = fed.deliver(browser, browser.submit(answer, fed.acs_url), SAML_PUBLISHER)
        assert first.status == 200, first.text[:300]
        used = keys(setup.master_port, b"kb:replay:*") - earlier
        assert used
        setup.servers.stop(setup.master_port)
    finally:
        os.kill(replica, signal.SIGCONT)
    wait_for(lambda: promoted(setup), "the sentinel to promote the replica", seconds=30)
    assert keys(setup.replica_port, b"kb:login:*"), "the login record came back"
    assert not used & keys(setup.replica_port, b"kb:replay:*"), "its use did not"
    # IssueInstant has whole seconds, and the moved epoch allows one.
    wait_for(lambda: time.time() > issued + 2.5, "the answer to age")
    delivered_is_refused_then_a_new_login_works(fed, browser, answer, "before_store_epoch")
