"""Fixtures of the failure drills: each test module gets a Redis of its own (so it can stop,
restart and wipe it) and a fresh PostgreSQL registry database, dropped afterwards."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.federation import Federation, federation
from tests.support.postgres import PostgresServer, require_postgres
from tests.support.processes import Mode, RedisServer, redis_server


@pytest.fixture(scope="module")
def postgres() -> PostgresServer:
    return require_postgres()


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[str]:
    with postgres.fresh_database() as name:
        yield name


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        # As for PostgreSQL: a CI run must never pass with the drills silently missing.
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; CI is set, so the drills must run")
        pytest.skip("redis-server is not installed (the drills start their own)")
    with redis_server(tmp_path_factory.mktemp("drill-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def fed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis: RedisServer,
    postgres: PostgresServer,
    database: str,
) -> Iterator[Federation]:
    """The federation for this test module, shaped by the module's `FEDERATION` options
    (keyword arguments of `tests.support.federation.federation`)."""
    options = getattr(request.module, "FEDERATION", {})
    directory = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with federation(directory, redis, postgres, database, **options) as running:
        yield running


@pytest.fixture(autouse=True)
def forwarding_again(fed: Federation) -> Iterator[None]:
    """Whatever a drill broke through a forwarder (school, Redis, PostgreSQL) forwards again
    after it, also when it failed, so the module's next drill starts whole."""
    yield
    for link in (fed.school_op, fed.store_link, fed.registry_link):
        if link is not None:
            link.set_mode(Mode.FORWARD)
