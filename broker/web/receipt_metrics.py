"""The receipts' retention on /metrics, computed when Prometheus scrapes, never on the login path.

`receipts prune` is a daily job outside the workers (cron, a timer, compose's `receipts-jobs`);
when it stops running or keeps failing, receipts outlive `receipts.retention_days` and nothing
else shows it. The gauge is how long the oldest receipt still kept has been kept past that
period. While the job keeps up it swings between 0 (just after a run) and about a day (just
before the next: receipts pass the period all day, the job removes them once a day); it grows
by a day each day the job does not run. No label, nothing about a school or a student: which
school's chain holds it is what `receipts verify` and the job's log say.

The same query says whether this worker reaches the registry's database at all:
`ketenbroker_registry_reachable` is 1 when it answered, 0 when it did not (`RegistryUnavailable`:
down, read-only for the readiness check's part, too slow). Without it a PostgreSQL outage only
shows as login setbacks and as gauges that vanish, and nothing that alerts on a value can fire.

A scrape costs one query: each school's first kept receipt, by its unique (school_id, seq) index
(`SqlReceiptBook.oldest_kept`). Served by the worker that answers, in a registry of its own
(metrics.render), as the key and metadata gauges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from broker.core.errors import StoreUnavailable
from broker.web.wiring import Broker

PAST_RETENTION = "ketenbroker_receipts_past_retention_seconds"
REGISTRY_REACHABLE = "ketenbroker_registry_reachable"
DAY = 24 * 3600


class ReceiptRetentionCollector:
    """A prometheus_client collector over one worker's broker (registered per scrape)."""

    def __init__(self, broker: Broker, clock: Callable[[], float] = time.time) -> None:
        self._broker = broker
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        try:
            oldest = self._broker.receipts.oldest_kept()
        except StoreUnavailable:
            yield _reachable(False)
            return  # the retention is unknown: no value rather than a wrong one
        yield _reachable(True)
        kept_until = self._clock() - self._broker.settings.receipts.retention_days * DAY
        past = 0.0 if oldest is None else max(0.0, kept_until - oldest)
        yield GaugeMetricFamily(
            PAST_RETENTION,
            "Seconds the oldest receipt still kept is past receipts.retention_days (0 to about "
            "a day with a daily `receipts prune`; more: it has not run or failed).",
            value=past,
        )


def _reachable(answered: bool) -> Metric:
    return GaugeMetricFamily(
        REGISTRY_REACHABLE,
        "1 when this worker's query to the registry database (PostgreSQL) answered at this "
        "scrape, 0 when it did not (unreachable, too slow): logins then get the 503 page.",
        value=1.0 if answered else 0.0,
    )
