"""The metadata sources' states as the registry records them: what `metadata status`, the
attention report and the `ketenbroker_metadata_source_state` gauge (web/metadata_status.py)
show, from one query of the registry's `metadata_sources` rows."""

from __future__ import annotations

from datetime import datetime

from broker.config import Settings
from broker.core.federation import SourceHealth
from broker.registry import SqlRegistry


def source_states(settings: Settings, registry: SqlRegistry, now: datetime) -> list[SourceHealth]:
    """Each configured source's state (for the scrape, the attention report, `metadata
    status`)."""
    return registry.federation.health(settings.metadata.refresh_periods(), now)
