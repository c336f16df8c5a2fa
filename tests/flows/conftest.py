"""The live demo for the flow tests: one for the session, on free ports, in a temporary folder.

Tests that change the registry (policies, extra services) put policies back when they finish
and give extra services ids of their own, so the order of the tests does not matter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, OIDC_PUBLISHER_PORT_OFFSET
from broker.web import create_app
from broker.web.wiring import Broker
from tests.flows.test_federation_metadata import RoundRobin, second_worker
from tests.support.feed import Feed
from tests.support.live import (
    LiveDemo,
    OidcPublisher,
    collect_pysaml2_temp_files,
    running_demo,
)

# Not autouse: a module that runs pysaml2 in process names it in its `usefixtures`.
__all__ = ["collect_pysaml2_temp_files"]


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("flows-demo")) as live:
        yield live


@pytest.fixture
def feed() -> Iterator[Feed]:
    """A metadata server on a loopback port (tests/support/feed.py), stopped afterwards."""
    served = Feed()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def woordwijs(demo: LiveDemo) -> OidcPublisher:
    """The demo's own OIDC publisher (port P+6), as `ketenbroker demo` registers it."""
    base_url = f"http://localhost:{demo.port + OIDC_PUBLISHER_PORT_OFFSET}"
    publisher = OidcPublisher(OIDC_PUBLISHER_ID, base_url, "leermiddelen")
    demo.publishers[OIDC_PUBLISHER_ID] = publisher
    return publisher


@pytest.fixture(scope="module")
def workers(demo: LiveDemo) -> Iterator[list[Broker]]:
    """Two broker workers behind the demo's port, taking requests in turn, each with its own
    cached registry view and pysaml2 entities (as two gunicorn workers have), sharing the
    database and the store. For a module with a demo of its own (offboarding, metadata
    update): the demo's app stays behind the round robin for the rest of the module."""
    second = second_worker(demo.broker)
    demo.servers[0].app = RoundRobin(
        [demo.servers[0].app, create_app(demo.settings, services=second)]
    )
    try:
        yield [demo.broker, second]
    finally:
        second.registry.close()
