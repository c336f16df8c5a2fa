"""Gauges of the federation metadata sources (`[[metadata.sources]]`), computed when Prometheus
scrapes, never on the login path.

Per configured source, and per copy held of a source the configuration no longer names
(state `unconfigured`: in force until `metadata forget`): its state as an enum (one series per
state, 1 for the current one), seconds until the copy held passes its validUntil, and seconds
since its last good download.
The `source` label is the source's configured name: operator configuration with a handful of
values, never an entity id or URL. A source without a copy (missing) or whose copy has no
validUntil leaves those two gauges out.

A scrape costs one query of the registry's `metadata_sources` table (a row per source, no
metadata text), whatever the number of sources. The worker's cached view cannot answer it: an
unchanged download moves a source's `fetched_at` without bumping the registry generation. Like
the key gauges (key_metrics.py) they are served by the worker that answers, in a registry of
their own (metrics.render), so several gunicorn workers never add up or repeat them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from flask import current_app
from prometheus_client.core import GaugeMetricFamily, Metric

from broker.core.attention import (
    Rule,
    school_certificate_ending,
    school_metadata_not_refreshed,
    service_certificate_ending,
    service_metadata_not_refreshed,
)
from broker.core.errors import StoreUnavailable
from broker.core.federation import SourceState
from broker.operations.attention import Memo, rule_entries
from broker.web.metadata_status import metadata_health
from broker.web.wiring import Broker

STATE = "ketenbroker_metadata_source_state"
VALID_UNTIL = "ketenbroker_metadata_source_valid_until_seconds"
LAST_GOOD = "ketenbroker_metadata_source_last_good_download_age_seconds"
CERTIFICATES_ENDING = "ketenbroker_school_idp_certificates_ending"
NOT_REFRESHED = "ketenbroker_school_metadata_not_refreshed"
SERVICE_CERTIFICATES_ENDING = "ketenbroker_service_sp_certificates_ending"
SERVICE_NOT_REFRESHED = "ketenbroker_service_metadata_not_refreshed"
# The app's attention memo (operations/attention.py): the operator's page and this gauge share it.
ATTENTION_MEMO = "ketenbroker_attention_memo"


def attention_memo() -> Memo:
    """The current app's memo of the registry's facts for the attention report."""
    memo: Memo = current_app.extensions.setdefault(ATTENTION_MEMO, Memo())
    return memo


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MetadataSourceCollector:
    """A prometheus_client collector over one worker's broker (registered per scrape)."""

    def __init__(self, broker: Broker, clock: Callable[[], datetime] = _utc_now) -> None:
        self._broker = broker
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        try:
            health = metadata_health(self._broker, now)
        except StoreUnavailable:
            return  # the registry is down: /readyz and the login metrics say so
        if not health:
            return  # no source configured and no copy held
        state = GaugeMetricFamily(
            STATE,
            "State of each metadata source: 1 for its current one (ok; stale: refreshing "
            "fails, the copy held still works; expired, missing: its entities are refused).",
            labels=["source", "state"],
        )
        valid_until = GaugeMetricFamily(
            VALID_UNTIL,
            "Seconds until the source's copy held passes its validUntil (negative: expired).",
            labels=["source"],
        )
        last_good = GaugeMetricFamily(
            LAST_GOOD, "Seconds since the source's last good download.", labels=["source"]
        )
        for entry in health:
            for each in SourceState:
                state.add_metric([entry.name, each.value], 1.0 if entry.state is each else 0.0)
            if entry.valid_until is not None:
                valid_until.add_metric([entry.name], (entry.valid_until - now).total_seconds())
            if entry.fetched_at is not None:
                last_good.add_metric([entry.name], (now - entry.fetched_at).total_seconds())
        yield state
        yield valid_until
        yield last_good


class RuleCollector:
    """How many SAML schools or services each attention rule of `RULE_GAUGES` finds
    (core/attention.py): a gauge per rule, from one reading of the facts for all of them. One
    number each, no school or service label: 5,000 schools would be 5,000 series
    (docs/operations.md, Metrics); which ones the operator's "Needs attention" page and
    `registry problems` list."""

    def __init__(
        self,
        broker: Broker,
        gauges: Sequence[tuple[str, str, Rule]],
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._broker = broker
        self._gauges = tuple(gauges)
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        rules = [rule for _, _, rule in self._gauges]
        try:
            registry = self._broker.registry
            found = rule_entries(rules, registry, self._clock(), attention_memo())
        except StoreUnavailable:
            return  # the registry is down: /readyz says so
        for (name, text, _), entries in zip(self._gauges, found, strict=True):
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], float(len(entries)))
            yield gauge


RULE_GAUGES: tuple[tuple[str, str, Rule], ...] = (
    (
        CERTIFICATES_ENDING,
        "SAML schools whose identity provider has no signing certificate valid beyond 30 "
        "days in the metadata in force (registry problems lists them).",
        school_certificate_ending,
    ),
    (
        NOT_REFRESHED,
        "SAML schools given by metadata URL whose copy the metadata refresh has not accepted "
        "for 3 days (registry problems lists them).",
        school_metadata_not_refreshed,
    ),
    (
        SERVICE_CERTIFICATES_ENDING,
        "SAML services whose SP has no signing or no encryption certificate valid beyond 30 "
        "days (15 for a service given by metadata URL) in the metadata in force (registry "
        "problems lists them).",
        service_certificate_ending,
    ),
    (
        SERVICE_NOT_REFRESHED,
        "SAML services given by metadata URL whose copy the metadata refresh has not accepted "
        "for 3 days (registry problems lists them).",
        service_metadata_not_refreshed,
    ),
)
