"""Whether the broker's metadata sources can be trusted: for `/metrics` and for callers that
want the list.

`metadata_health()` lists every configured source with its state (ok, stale, expired, missing;
broker/core/federation.py) in one query of the registry's `metadata_sources` rows
(operations/sources.py `source_states`);
`metadata_problems()` names the sources that are not ok. The scrape's gauges come from
`metadata_health()` (metadata_metrics.py), and `metadata refresh` logs `metadata source not
trusted` for each expired or missing source after its run (broker/cli/metadata_refresh.py).

`/readyz` does not look at sources, on purpose: every worker holds the same copy, so a source
that is expired or missing would take every instance out of the load balancer, and with them
the logins of the schools of every other source that still work.
"""

from __future__ import annotations

from datetime import UTC, datetime

from broker.core.federation import SourceHealth, SourceState
from broker.operations.sources import source_states
from broker.web.wiring import Broker


def metadata_health(services: Broker, now: datetime | None = None) -> list[SourceHealth]:
    return source_states(services.settings, services.registry, now or datetime.now(UTC))


def metadata_problems(services: Broker, now: datetime | None = None) -> dict[str, str]:
    """Source name → state for every source that is not `ok` (empty: all fine). A `stale`
    source still works on its last good copy; `expired` and `missing` ones do not."""
    return {
        entry.name: entry.state.value
        for entry in metadata_health(services, now)
        if entry.state is not SourceState.OK
    }
