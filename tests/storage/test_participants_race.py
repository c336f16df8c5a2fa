"""Two logins of one SSO session that finish at once (two tabs; a learning environment opening
several publishers' tiles with silent SSO) on the memory store, a real Redis server and a Redis
Cluster: both read the session's record of services, each adds its own, and neither service
drops out of it (login/participants.py). Before: the later write put the record back whole,
without the other login's service, so a logout never told that service.

The interleaving is fixed, not left to chance: every login reads the record, then waits until
all have read, then writes.
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from collections.abc import Iterator

import pytest

from broker.core.ports import KeyValueStore
from broker.login.participants import FAMILIES, Participant, SessionServiceBook, SessionServices
from broker.store import MemoryStore, RedisStore
from tests.support.redis_topologies import NEEDS_REDIS_PROGRAMS, ClusterSetup, cluster_setup

REDIS_URL = os.environ.get("KETENBROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSetup]:
    with cluster_setup(tmp_path_factory.mktemp("cluster")) as setup:
        yield setup


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=[pytest.mark.redis, NEEDS_REDIS_PROGRAMS]),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "redis":
        url = REDIS_URL
    else:
        url = request.getfixturevalue("cluster").url()
    # A fresh prefix per test; every key it wrote ends with the record's TTL.
    opened = RedisStore(url, key_prefix=f"kbtest:{uuid.uuid4().hex}:")
    if request.param == "redis" and not _reachable(opened):
        opened.close()
        pytest.skip(f"Redis at {REDIS_URL} is unreachable")
    assert opened.atomic_batches is (request.param == "redis")
    yield opened
    opened.close()


def _reachable(store: RedisStore) -> bool:
    try:
        return store.ping()
    except Exception:
        if os.environ.get("CI"):
            raise
        return False


def _oidc(service_id: str, family: str) -> Participant:
    return Participant(service_id, "oidc", {"sub": "s", "sid": "x", FAMILIES: family}, "fp")


def _logins_at_once(
    store: KeyValueStore, *participants: Participant
) -> tuple[str, SessionServices]:
    """A session that answered `first`, then `participants` finishing together: each reads the
    record, all wait until every one has read, then each writes. The record afterwards."""
    book = SessionServiceBook(store, session_ttl=60)
    token = secrets.token_urlsafe(32)
    book.record(token, SessionServices(), _oidc("first", "f0"), new_session=True)
    all_read = threading.Barrier(len(participants))
    errors: list[BaseException] = []

    def login(participant: Participant) -> None:
        try:
            before = book.read(token)
            all_read.wait(timeout=10)
            book.record(token, before, participant)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=login, args=(p,)) for p in participants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return token, book.read(token)


def test_two_logins_at_once_both_stay_in_the_record(store: KeyValueStore) -> None:
    _, services = _logins_at_once(store, _oidc("tab-a", "fa"), _oidc("tab-b", "fb"))
    assert sorted(p.service_id for p in services.participants) == ["first", "tab-a", "tab-b"]


def test_ten_tiles_at_once_all_stay_in_the_record(store: KeyValueStore) -> None:
    tiles = [_oidc(f"tile-{n}", f"f{n}") for n in range(10)]
    _, services = _logins_at_once(store, *tiles)
    assert {p.service_id for p in services.participants} == {"first"} | {
        f"tile-{n}" for n in range(10)
    }


def test_two_logins_to_one_service_at_once_keep_both_token_families(
    store: KeyValueStore,
) -> None:
    """Both families end with the session: the merge keeps the other login's family too."""
    _, services = _logins_at_once(store, _oidc("first", "f1"), _oidc("first", "f2"))
    participant = services.get("first")
    assert participant is not None
    assert sorted(participant.handles[FAMILIES].split()) == ["f0", "f1", "f2"]
