"""The federation metadata sources on /metrics: per configured source its state (an enum, 1 for
the current one), seconds until the copy held expires and seconds since the last good download,
computed at scrape time. A source goes missing → stale → ok → expired through real refreshes
from a feed on a loopback port (the refresh's clock sets when the copy was fetched and whether
its validUntil was still ahead then); read through the broker's own /metrics and Prometheus'
own parser, as test_key_metrics.py. No URL and no entity id in any label."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.metadata_aggregate import certificate_body, signed_aggregate, sp_entity
from broker.certificates import self_signed_pair
from broker.cli.metadata_refresh import refresh_sources
from broker.config import MetadataSettings, MetadataSource, Settings
from broker.core.errors import StoreUnavailable
from broker.web import create_app
from broker.web.metadata_metrics import LAST_GOOD, STATE, VALID_UNTIL
from broker.web.wiring import build_broker
from tests.flows.test_key_rotation import Clock, Worker, instance, worker
from tests.support.feed import Feed

HOUR = 3600.0
DAY = 24 * HOUR
# A scrape happens a moment after the refresh that the expected values are computed from.
SLACK = 60.0
SP = "https://sp.member.example/metadata"
SIGNER_KEY, SIGNER_CERT = self_signed_pair("federation signer")
MEMBER = sp_entity(SP, "https://sp.member.example/acs", certificate_body(SIGNER_CERT))
STATES = ("ok", "stale", "expired", "missing", "unconfigured")


@dataclasses.dataclass
class Source:
    settings: Settings
    feed: Feed
    worker: Worker

    def publish(self, valid_until: datetime) -> None:
        self.feed.body = signed_aggregate([MEMBER], SIGNER_KEY, valid_until=valid_until)

    def refresh(self, at: datetime, *, allow_older: bool = False) -> str:
        names = ("fed",) if allow_older else ()
        (outcome,) = refresh_sources(
            self.settings,
            self.worker.broker.registry,
            names,
            clock=lambda: at,
            allow_older=allow_older,
        )
        return outcome.result


def scrape(w: Worker) -> dict[tuple[str, str], float]:
    """The metadata source gauges of one scrape: (name, source[/state]) → value."""
    text = w.get("/metrics").decode()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (STATE, VALID_UNTIL, LAST_GOOD):
                assert family.type == "gauge"
                labels = dict(sample.labels)
                key = "/".join(labels[k] for k in ("source", "state") if k in labels)
                assert (sample.name, key) not in found, "one sample per series"
                found[sample.name, key] = sample.value
    return found


def states(found: dict[tuple[str, str], float]) -> dict[str, float]:
    return {state: found[STATE, f"fed/{state}"] for state in STATES}


def one_hot(state: str) -> dict[str, float]:
    return {each: 1.0 if each == state else 0.0 for each in STATES}


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Source]:
    signer = tmp_path / "signer.crt"
    signer.write_bytes(SIGNER_CERT)
    feed = Feed()
    configured = MetadataSource("fed", feed.url, None, (signer,), refresh_seconds=3600)
    base = instance(tmp_path / "broker")
    settings = dataclasses.replace(base, metadata=MetadataSettings(sources=(configured,)))
    w = worker(settings, Clock())
    try:
        yield Source(settings, feed, w)
    finally:
        feed.stop()
        w.broker.registry.close()


def test_a_source_goes_missing_stale_ok_expired_on_metrics(
    source: Source, caplog: pytest.LogCaptureFixture
) -> None:
    # Never fetched (the feed answers 500): missing, and neither copy gauge.
    source.feed.mode = "error"
    with caplog.at_level(logging.ERROR):
        assert source.refresh(datetime.now(UTC)) == "refused"
    (untrusted,) = [r for r in caplog.records if r.getMessage() == "metadata source not trusted"]
    assert (untrusted.source, untrusted.state) == ("fed", "missing")  # type: ignore[attr-defined]
    found = scrape(source.worker)
    assert states(found) == one_hot("missing")
    assert (VALID_UNTIL, "fed") not in found and (LAST_GOOD, "fed") not in found

    # A copy valid for a week, fetched three hours ago (twice the refresh period is 2 h): stale.
    source.feed.mode = "ok"
    now = datetime.now(UTC)
    source.publish(now + timedelta(days=7))
    assert source.refresh(now - timedelta(hours=3)) == "updated"
    found = scrape(source.worker)
    assert states(found) == one_hot("stale")
    assert 7 * DAY - SLACK < found[VALID_UNTIL, "fed"] <= 7 * DAY
    assert 3 * HOUR <= found[LAST_GOOD, "fed"] < 3 * HOUR + SLACK

    # The same feed again now: ok, and the last good download is a moment ago.
    assert source.refresh(datetime.now(UTC)) == "unchanged"
    found = scrape(source.worker)
    assert states(found) == one_hot("ok")
    assert 0 <= found[LAST_GOOD, "fed"] < SLACK

    # A copy that was valid when fetched three hours ago and ended an hour ago: expired.
    now = datetime.now(UTC)
    source.publish(now - timedelta(hours=1))
    assert source.refresh(now - timedelta(hours=3), allow_older=True) == "updated"
    found = scrape(source.worker)
    assert states(found) == one_hot("expired")
    assert -HOUR - SLACK < found[VALID_UNTIL, "fed"] <= -HOUR
    assert 3 * HOUR <= found[LAST_GOOD, "fed"] < 3 * HOUR + SLACK
    # The timer's next run, now, says so in the log (the feed still serves the expired copy).
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert source.refresh(datetime.now(UTC)) == "refused"
    (untrusted,) = [r for r in caplog.records if r.getMessage() == "metadata source not trusted"]
    assert (untrusted.source, untrusted.state) == ("fed", "expired")  # type: ignore[attr-defined]
    text = source.worker.get("/metrics").decode()
    assert source.feed.url not in text and SP not in text


def test_a_source_never_refreshed_is_missing(source: Source) -> None:
    """No refresh ever ran (no row in the registry): missing, not absent."""
    found = scrape(source.worker)
    assert states(found) == one_hot("missing")
    assert set(found) == {(STATE, f"fed/{state}") for state in STATES}


def test_without_sources_there_is_no_source_gauge(tmp_path: Path) -> None:
    assert scrape(worker(instance(tmp_path / "broker"), Clock())) == {}


def test_a_copy_held_of_a_source_no_longer_configured_is_unconfigured(source: Source) -> None:
    """The source left the configuration (renamed, or its table misspelled): its copy stays in
    force, so its series stay too, as `unconfigured` (the KetenbrokerMetadataSourceNotConfigured
    alert), with the copy's gauges. Until 2026-11-30 the copy was dropped by the next refresh
    and the series vanished, so no alert could fire."""
    source.publish(datetime.now(UTC) + timedelta(days=7))
    assert source.refresh(datetime.now(UTC)) == "updated"
    settings = dataclasses.replace(source.settings, metadata=MetadataSettings())
    (kept,) = refresh_sources(settings, source.worker.broker.registry)
    assert kept.result == "unconfigured"
    second = build_broker(settings)
    try:
        found = scrape(Worker(create_app(settings, services=second), second))
    finally:
        second.registry.close()
    assert states(found) == one_hot("unconfigured")
    assert 7 * DAY - SLACK < found[VALID_UNTIL, "fed"] <= 7 * DAY


def test_a_registry_that_does_not_answer_leaves_the_source_gauges_out(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: object) -> None:
        raise StoreUnavailable("registry database: OperationalError")

    monkeypatch.setattr(source.worker.broker.registry.federation, "health", down)
    text = source.worker.get("/metrics").decode()
    assert STATE not in text
    assert "ketenbroker_signing_certificate_expires_seconds" in text  # the rest is whole


def test_under_gunicorn_each_series_comes_once_from_the_answering_worker(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, two workers answer alike and neither repeats or adds
    up a series (scrape() fails on a second sample of one series)."""
    folder = tmp_path / "multiproc"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    source.publish(datetime.now(UTC) + timedelta(days=7))
    assert source.refresh(datetime.now(UTC)) == "updated"
    second = build_broker(source.settings)
    try:
        other = Worker(create_app(source.settings, services=second), second)
        for w in (source.worker, other):
            found = scrape(w)
            assert states(found) == one_hot("ok")
            assert 7 * DAY - SLACK < found[VALID_UNTIL, "fed"] <= 7 * DAY
    finally:
        second.registry.close()
