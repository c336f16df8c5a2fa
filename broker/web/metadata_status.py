"""Whether the broker's metadata sources can be trusted: for /readyz and for alerts.

`metadata_health()` lists every configured source with its state (ok, stale, expired, missing;
broker/core/federation.py); `metadata_problems()` names the sources that are not ok. A source
that is expired or missing is logged at error level with its reason code each time it is
looked at, so a log-based alert fires even when nothing polls /readyz.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from broker.core.federation import SourceHealth, SourceState
from broker.web.wiring import Broker

log = logging.getLogger(__name__)


def metadata_health(services: Broker, now: datetime | None = None) -> list[SourceHealth]:
    sources = [(s.name, s.refresh_seconds) for s in services.settings.metadata.sources]
    health = services.registry.federation.health(sources, now or datetime.now(UTC))
    for entry in health:
        if not entry.usable:
            log.error(
                "metadata source not trusted",
                extra={"reason": entry.reason, "source": entry.name, "state": entry.state.value},
            )
    return health


def metadata_problems(services: Broker, now: datetime | None = None) -> dict[str, str]:
    """Source name → state for every source that is not `ok` (empty: all fine). A `stale`
    source still works on its last good copy; `expired` and `missing` ones do not."""
    return {
        entry.name: entry.state.value
        for entry in metadata_health(services, now)
        if entry.state is not SourceState.OK
    }
