"""The key schedules on /metrics: gauges computed at scrape time from the signing key set (on a
clock the test controls, across a full rotation) and from the pseudonym key windows in the
registry. Read through the broker's own /metrics endpoint and Prometheus' own parser, as in
test_operations_endpoints.py; no gauge carries a label, none names a chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from broker.config import Settings
from broker.core.model import Chain, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.keys import rotation
from broker.registry import SqlRegistry
from broker.web.key_metrics import (
    CERTIFICATE_EXPIRES,
    NEXT_SIGNS,
    OLDEST_RETIRES,
    WINDOW_ENDS,
    WINDOWS_OPEN,
)
from tests.flows.test_key_rotation import Clock, Worker, instance, worker

DAY = 86400.0
GAUGES = (NEXT_SIGNS, OLDEST_RETIRES, CERTIFICATE_EXPIRES, WINDOWS_OPEN, WINDOW_ENDS)


def gauges(w: Worker) -> dict[str, float]:
    """The key schedule gauges of one scrape: present ones only, each without labels."""
    text = w.get("/metrics").decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in GAUGES:
                assert family.type == "gauge"
                assert sample.labels == {}, sample
                assert sample.name not in found, "one sample per gauge"
                found[sample.name] = sample.value
    return found


def not_after(path: Path) -> float:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.timestamp()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return instance(tmp_path / "broker")


def test_signing_key_gauges_follow_a_rotation(settings: Settings) -> None:
    clock = Clock()
    broker = worker(settings, clock)
    assert settings.key_rotation is not None
    first_cert = settings.saml.signing_cert

    # One key, nothing waiting, nothing retiring: only the certificate's end.
    before = gauges(broker)
    assert before == {
        CERTIFICATE_EXPIRES: not_after(first_cert) - clock.now,
        WINDOWS_OPEN: 0,
    }

    new = rotation.rotate(settings, clock())
    clock.now += settings.key_rotation.check_seconds  # every worker has read the manifest
    old = next(g for g in broker.broker.keys.current().published if g.number == 1)
    assert old.retire_after is not None
    published = gauges(broker)
    assert published[NEXT_SIGNS] == new.signing_from - clock.now
    assert published[OLDEST_RETIRES] == old.retire_after - clock.now
    assert published[CERTIFICATE_EXPIRES] == not_after(first_cert) - clock.now

    # The switch: nothing waits; the old key still retires; the new key's certificate counts.
    clock.now = new.signing_from
    switched = gauges(broker)
    assert NEXT_SIGNS not in switched
    assert switched[OLDEST_RETIRES] == old.retire_after - clock.now
    assert switched[CERTIFICATE_EXPIRES] == not_after(new.files.saml_cert) - clock.now

    # Retired: one key again, as before the rotation.
    clock.now = old.retire_after
    assert set(gauges(broker)) == {CERTIFICATE_EXPIRES, WINDOWS_OPEN}


def test_an_unreadable_certificate_leaves_its_gauge_out(settings: Settings) -> None:
    broker = worker(settings, Clock())
    settings.saml.signing_cert.write_text("not a certificate\n", encoding="utf-8")
    found = gauges(broker)
    assert CERTIFICATE_EXPIRES not in found
    assert found[WINDOWS_OPEN] == 0  # the rest of the scrape is whole


def test_pseudonym_window_gauges_count_open_windows_and_the_nearest_end(
    settings: Settings,
) -> None:
    """Chains' rotation windows and a service's chain move window (`chain move --window`: its
    platform re-keys as after a rotation) count alike; the nearest end is the move's."""
    now = datetime.now(UTC)
    registry = SqlRegistry(settings.registry_url)
    try:
        records = (
            ChainKeyVersion("kinderboeken", 2, 1, now + timedelta(days=2)),
            ChainKeyVersion("service:rekenroute", 2, 1, now + timedelta(days=40)),
            ChainKeyVersion("toetsen", 2, 1, now - timedelta(days=1)),  # ended, never finished
            ChainKeyVersion("examens", 3),  # rotated long ago, no window
        )
        for record in records:
            registry.pseudonym_keys.replace(None, record, "test")
        registry.add_chain(Chain("examens", "Examens"))
        moved = Service("verhuisplank", "Verhuisplank", "https://verhuisplank.example/sp", None)
        registry.add_service(moved, "<md/>")
        registry.set_service_chain(moved.id, "examens", window_days=1, keys=settings.pseudonym_keys)
    finally:
        registry.close()
    broker = worker(settings, Clock())
    text = broker.get("/metrics").decode()
    found = gauges(broker)
    assert found[WINDOWS_OPEN] == 3
    # The nearest end: the one-day move window, seen a moment after it was written.
    assert DAY - 600 < found[WINDOW_ENDS] <= DAY
    for name in ("kinderboeken", "rekenroute", "toetsen", "examens", "verhuisplank"):
        assert name not in text


def test_under_gunicorn_the_answering_worker_adds_the_gauges(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set the counters come from every worker's files; the
    gauges come from the worker that answers, once (not summed over workers)."""
    folder = tmp_path / "multiproc"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    clock = Clock()
    found = gauges(worker(settings, clock))
    assert found[CERTIFICATE_EXPIRES] == not_after(settings.saml.signing_cert) - clock.now
    assert found[WINDOWS_OPEN] == 0
