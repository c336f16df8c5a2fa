"""The metadata sources' states as the registry records them: what `metadata status`, the
attention report and the `ketenbroker_metadata_source_state` gauge (web/metadata_status.py)
show, from one query of the registry's `metadata_sources` rows."""

from __future__ import annotations

from datetime import datetime

from broker.config import Settings
from broker.core.federation import SourceHealth, SourceRecord, sources_health
from broker.registry import SqlRegistry


def source_states(settings: Settings, registry: SqlRegistry, now: datetime) -> list[SourceHealth]:
    """Each configured source's state (for the scrape, the attention report)."""
    return registry.federation.health(settings.metadata.refresh_periods(), now)


def records_and_states(
    settings: Settings, registry: SqlRegistry, now: datetime
) -> tuple[dict[str, SourceRecord], list[SourceHealth]]:
    """The registry's record of each source and the states (`source_states`) from one read of
    them, for what says both (`metadata status`, a refresh's report)."""
    records = registry.federation.records()
    return records, sources_health(records, settings.metadata.refresh_periods(), now)
