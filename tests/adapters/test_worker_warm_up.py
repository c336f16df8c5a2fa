"""A gunicorn worker builds its SAML entities before its first request (broker/web/app.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from unittest.mock import patch

import pytest

from broker.cli.demo import prepare_demo
from broker.core.errors import StoreUnavailable
from broker.web.app import warm_up
from broker.web.wiring import Broker


def _broker_of(tmp_path: Path) -> tuple[Broker, object]:
    settings, apps = prepare_demo(tmp_path, 8400)
    app = apps[settings.base_url]
    services: Broker = app.extensions["ketenbroker"]
    return services, app


def test_warm_up_builds_the_saml_entities(tmp_path: Path) -> None:
    services, app = _broker_of(tmp_path)
    with patch(
        "broker.saml.entities.Server", wraps=services.saml_entities.server.__class__
    ) as built:
        services.saml_entities._built = None  # as a fresh worker has it
        warm_up(app)  # type: ignore[arg-type]
        assert built.call_count == 1
        # The first login finds them built: no second build.
        assert services.saml_entities.client is not None
        assert built.call_count == 1


def test_a_registry_that_cannot_be_read_does_not_stop_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    services, app = _broker_of(tmp_path)
    services.saml_entities._built = None
    with (
        patch.object(
            services.saml_entities.registry,
            "metadata_expiry",
            side_effect=StoreUnavailable("registry database: OperationalError"),
        ),
        caplog.at_level(logging.WARNING, logger="broker.web"),
    ):
        warm_up(app)  # type: ignore[arg-type]
    assert "warm-up skipped reason=store_unavailable" in caplog.text
    assert services.saml_entities.client is not None  # built by the first use instead
