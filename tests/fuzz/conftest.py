"""Fuzzing settings: a short run in every test run (CI), a long one by `tools/fuzz.sh`.

KB_FUZZ_PROFILE picks the settings (`ci` by default). The long profile lets hypothesis try many
more inputs per target; tools/fuzz.sh repeats the run with fresh seeds until its time is up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings

from broker.cli.demo import prepare_demo
from broker.config import RateLimits
from broker.web import create_app
from tests.support.live import free_ports

_SLOW_TARGETS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
# Applied to the fuzz targets only (a decorator, not a loaded profile), so the other hypothesis
# tests keep their own settings. `ci` is deterministic, so a red build can be reproduced.
PROFILES = {
    "ci": settings(
        max_examples=40, deadline=None, suppress_health_check=_SLOW_TARGETS, derandomize=True
    ),
    "long": settings(max_examples=2000, deadline=None, suppress_health_check=_SLOW_TARGETS),
}
FUZZ = PROFILES[os.environ.get("KB_FUZZ_PROFILE", "ci")]


@pytest.fixture(scope="session")
def broker_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The demo broker as a WSGI app (not served: the test client calls it directly)."""
    directory: Path = tmp_path_factory.mktemp("fuzz-demo")
    demo_settings, demo_apps = prepare_demo(directory, free_ports(7))
    demo_apps[demo_settings.base_url].extensions["ketenbroker"].registry.close()
    # The demo's broker with rate limits off: thousands of inputs from one address must reach
    # the parsers, not the limiter.
    off = RateLimits(sso="", acs="", token="", discovery="", student_lookup="")
    app = create_app(replace(demo_settings, rate_limits=off))
    yield app
    app.extensions["ketenbroker"].registry.close()


@pytest.fixture
def client(broker_app: Flask) -> FlaskClient:
    return broker_app.test_client()
