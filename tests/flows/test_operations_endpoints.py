"""/healthz, /readyz and /metrics on the running demo: what logins in every pairing count, that
the labels never name a school, a service or a student, who may read the metrics, and what
readiness says when a dependency is gone."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.config import MetricsSettings, Settings
from broker.core.model import Declaration
from broker.web import create_app
from tests.flows.test_all_pairings import UID, expected, log_in
from tests.support.client import Browser
from tests.support.live import LiveDemo, free_ports, served

TOKEN = "metrics-token-" + "x" * 40


def metrics_text(base_url: str, **headers: str) -> str:
    response = requests.get(f"{base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def total(text: str, name: str) -> float:
    """The sum of every series of `name` (every label set)."""
    return sum(
        float(found.value)
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == name
    )


def test_healthz_and_readyz_answer_ok(demo: LiveDemo) -> None:
    assert requests.get(f"{demo.broker_url}/healthz", timeout=10).text == "ok\n"
    ready = requests.get(f"{demo.broker_url}/readyz", timeout=10)
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert ready.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("publisher", "school", "pairing"),
    [
        ("leesplank", DEMO_SCHOOL_ID, "saml_saml"),
        ("leesplank", DEMO_OIDC_SCHOOL_ID, "saml_oidc"),
        (OIDC_PUBLISHER_ID, DEMO_SCHOOL_ID, "oidc_saml"),
        (OIDC_PUBLISHER_ID, DEMO_OIDC_SCHOOL_ID, "oidc_oidc"),
    ],
)
@pytest.mark.usefixtures("woordwijs")
def test_a_login_counts_in_its_pairing_with_its_timings(
    demo: LiveDemo, publisher: str, school: str, pairing: str
) -> None:
    before = metrics_text(demo.broker_url)
    front_protocol, school_protocol = pairing.split("_")
    log_in(demo, Browser(), publisher, school)
    after = metrics_text(demo.broker_url)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("ketenbroker_logins_total", pairing=pairing, outcome="ok") == 1
    assert grew("ketenbroker_login_step_seconds_count", step=f"{front_protocol}_request") == 1
    assert (
        grew("ketenbroker_login_step_seconds_count", step=f"{school_protocol}_school_answer") == 1
    )
    assert grew("ketenbroker_upstream_wait_seconds_count", school_protocol=school_protocol) == 1
    assert grew("ketenbroker_upstream_wait_seconds_sum", school_protocol=school_protocol) > 0
    if school_protocol == "oidc":
        assert grew("ketenbroker_upstream_call_seconds_count") == 1
    # Nothing in any label names the school, the service, the student or the pseudonym.
    for secretish in (school, publisher, UID, expected(demo, school), "localhost"):
        assert secretish not in after


def test_a_refused_request_counts_with_its_reason_code(demo: LiveDemo) -> None:
    before = metrics_text(demo.broker_url)
    refused = requests.get(f"{demo.broker_url}/saml/idp/sso", timeout=10)
    assert refused.status_code == 400
    after = metrics_text(demo.broker_url)
    labels = {"pairing": "saml_unknown", "outcome": "missing_request"}
    assert (
        sample(after, "ketenbroker_logins_total", **labels)
        - sample(before, "ketenbroker_logins_total", **labels)
        == 1
    )


def test_a_refusal_after_the_school_answered_counts_in_its_pairing(demo: LiveDemo) -> None:
    demo.add_publisher(
        "metrikant",
        "leermiddelen",
        (Declaration("email", "To send the licence receipt.", required=True),),
    )
    before = metrics_text(demo.broker_url)
    login = demo.login(Browser(), "metrikant", UID)
    assert login.final.status == 403
    after = metrics_text(demo.broker_url)
    labels = {"pairing": "saml_saml", "outcome": "required_attribute_missing"}
    assert (
        sample(after, "ketenbroker_logins_total", **labels)
        - sample(before, "ketenbroker_logins_total", **labels)
        == 1
    )
    assert "metrikant" not in after


def test_metrics_through_a_proxy_are_refused_without_a_token(demo: LiveDemo) -> None:
    # A proxy on this machine forwards from loopback: its header shows the request is not local.
    response = requests.get(
        f"{demo.broker_url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10
    )
    assert response.status_code == 403
    assert "ketenbroker_logins_total" not in response.text


@contextmanager
def broker_with(settings: Settings) -> Iterator[str]:
    with served(f"http://127.0.0.1:{free_ports(1)}", create_app(settings)) as url:
        yield url


def test_metrics_with_a_token_need_it(demo: LiveDemo) -> None:
    settings = dataclasses.replace(
        demo.settings, metrics=MetricsSettings(allow_loopback=False, token=TOKEN)
    )
    with broker_with(settings) as url:
        missing = requests.get(f"{url}/metrics", timeout=10)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = requests.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        text = metrics_text(url, Authorization=f"Bearer {TOKEN}")
        assert "ketenbroker_logins_total" in text
        # The token works through a proxy too: that is what it is for.
        metrics_text(url, Authorization=f"Bearer {TOKEN}", **{"X-Forwarded-For": "203.0.113.9"})


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_readyz_names_the_store_when_redis_is_gone(demo: LiveDemo) -> None:
    port = _closed_port()
    settings = dataclasses.replace(demo.settings, store_url=f"redis://127.0.0.1:{port}/0")
    with broker_with(settings) as url:
        before = metrics_text(url)
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.text == "not ready: store\n"
        assert str(port) not in ready.text
        # Alive all the same: nothing to restart for.
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        after = metrics_text(url)
        grew = sample(after, "ketenbroker_store_errors_total", operation="put") - sample(
            before, "ketenbroker_store_errors_total", operation="put"
        )
        assert grew == 1


@pytest.mark.postgres
def test_readyz_names_the_registry_when_the_database_is_gone(demo: LiveDemo) -> None:
    port = _closed_port()
    registry_url = f"postgresql+psycopg://nobody:pw@127.0.0.1:{port}/ketenbroker"
    settings = dataclasses.replace(demo.settings, registry_url=registry_url)
    with broker_with(settings) as url:
        ready = requests.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.text.startswith("not ready: registry")
        assert "pw" not in ready.text and str(port) not in ready.text


def test_readyz_names_the_keys_when_the_signing_key_is_unreadable(demo: LiveDemo) -> None:
    saml = dataclasses.replace(demo.settings.saml, signing_cert=demo.directory / "gone.crt")
    with broker_with(dataclasses.replace(demo.settings, saml=saml)) as url:
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "keys" in ready.text
