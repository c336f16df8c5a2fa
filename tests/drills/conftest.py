"""Fixtures of the failure drills: each test module gets a Redis of its own (so it can stop,
restart and wipe it) and a fresh PostgreSQL registry database, dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.federation import Federation, federation
from tests.support.postgres import PostgresServer, require_postgres
from tests.support.processes import Mode, RedisServer, TcpForwarder, redis_server


@pytest.fixture(scope="module")
def postgres() -> PostgresServer:
    return require_postgres()


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[str]:
    with postgres.fresh_database() as name:
        yield name


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
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


@pytest.fixture
def school_op(fed: Federation) -> Iterator[TcpForwarder]:
    """The forwarder in front of the OIDC school, forwarding again after the test."""
    yield fed.school_op
    fed.school_op.set_mode(Mode.FORWARD)
