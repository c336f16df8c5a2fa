"""The receipts' retention on /metrics: how long the oldest receipt still kept is past
`receipts.retention_days`, computed at scrape time, so an alert sees `receipts prune` stop
(docker/alerts.yml, KetenbrokerReceiptsNotPruned). Receipts written through the broker's own
book, pruned by the `receipts prune` command, read through /metrics and Prometheus' parser. No
school id, service id or subject on the page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.core.errors import RegistryUnavailable
from broker.core.model import Release, School, Service, UpstreamIdentity
from broker.core.receipts import receipt_content
from broker.web.receipt_metrics import PAST_RETENTION, REGISTRY_REACHABLE
from tests.flows.test_key_rotation import Clock, Worker, instance, worker
from tests.support.cli import run

DAY = 24 * 3600.0
SLACK = 60.0
SCHOOL = School("99XX00", "Het Lyceum", "https://school.example")
SERVICE = Service("leesplank", "Leesplank", "https://leesplank.example", "leermiddelen")


def past_retention(w: Worker) -> float | None:
    """The gauge of one scrape (None: not served)."""
    return gauge(w, PAST_RETENTION)


def gauge(w: Worker, name: str) -> float | None:
    """An unlabelled gauge of one scrape (None: not served)."""
    found = [
        sample.value
        for family in text_string_to_metric_families(w.get("/metrics").decode())
        for sample in family.samples
        if sample.name == name and family.type == "gauge" and not sample.labels
    ]
    assert len(found) <= 1
    return found[0] if found else None


def receipt_days_ago(w: Worker, days: float) -> None:
    release = Release("p" * 64, {"given_name": ("Sanne",)}, 1)
    identity = UpstreamIdentity(SCHOOL.id, "sanne.jansen")
    content = receipt_content(
        w.broker.settings.receipts.keys,
        issued_at=int(time.time() - days * DAY),
        school=SCHOOL,
        service=SERVICE,
        identity=identity,
        release=release,
    )
    w.broker.receipts.append(content)


@pytest.fixture
def broker_worker(tmp_path: Path) -> Worker:
    return worker(instance(tmp_path / "broker"), Clock())


def test_receipts_kept_past_retention_show_until_prune_runs(
    broker_worker: Worker, tmp_path: Path
) -> None:
    w = broker_worker
    retention = w.broker.settings.receipts.retention_days
    assert past_retention(w) == 0.0  # no receipt at all: nothing kept too long
    assert gauge(w, REGISTRY_REACHABLE) == 1.0
    # The job missed three days: the oldest receipt is three days past the period.
    for days in (retention + 3, retention + 2, retention - 1):
        receipt_days_ago(w, days)
    value = past_retention(w)
    assert value is not None and 3 * DAY - SLACK < value <= 3 * DAY + SLACK
    page = w.get("/metrics").decode()
    assert SCHOOL.id not in page and SERVICE.id not in page
    pruned = run("receipts", "prune", "--config", tmp_path / "broker" / "ketenbroker.toml")
    assert pruned.exit_code == 0, pruned.output
    assert past_retention(w) == 0.0


def test_a_registry_that_does_not_answer_leaves_the_gauge_out_and_says_so(
    broker_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> int | None:
        raise RegistryUnavailable("registry database: OperationalError")

    monkeypatch.setattr(broker_worker.broker.receipts, "oldest_kept", down)
    assert past_retention(broker_worker) is None
    # A value an alert can see (docker/alerts.yml, KetenbrokerRegistryUnreachable).
    assert gauge(broker_worker, REGISTRY_REACHABLE) == 0.0
    assert (
        "ketenbroker_signing_certificate_expires_seconds" in broker_worker.get("/metrics").decode()
    )
