"""Where a school's IdP metadata (revisions 0027/0028) or a service's SP metadata (0029) was
given by URL, and what `metadata refresh` last made of it (cli/url_refresh.py): one set of reads
and writes over either table, by role ("idp": schools, "sp": services).

The refresh records are written without a generation bump (logins never read them); the
attention report reads them on every report (core/attention.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from broker.core.metadata_refresh import RefreshRecord
from broker.registry.tables import SchoolRow, ServiceRow, as_utc


@dataclass(frozen=True)
class UrlColumns:
    """One role's table and the columns a metadata URL and its refresh are kept in."""

    table: type[SchoolRow] | type[ServiceRow]
    id: InstrumentedAttribute[str]
    entity_id: InstrumentedAttribute[str]
    url: InstrumentedAttribute[str | None]
    refreshed_at: InstrumentedAttribute[datetime | None]
    failed_at: InstrumentedAttribute[datetime | None]
    failure: InstrumentedAttribute[str | None]


URL_COLUMNS = {
    "idp": UrlColumns(
        SchoolRow,
        SchoolRow.id,
        SchoolRow.idp_entity_id,
        SchoolRow.idp_metadata_url,
        SchoolRow.idp_refreshed_at,
        SchoolRow.idp_refresh_failed_at,
        SchoolRow.idp_refresh_failure,
    ),
    "sp": UrlColumns(
        ServiceRow,
        ServiceRow.id,
        ServiceRow.entity_id,
        ServiceRow.sp_metadata_url,
        ServiceRow.sp_refreshed_at,
        ServiceRow.sp_refresh_failed_at,
        ServiceRow.sp_refresh_failure,
    ),
}


def refreshed_at(url: str | None, now: datetime) -> datetime | None:
    """A copy given by `url` was fetched and checked `now`, a refresh as good as the timer's
    (None: a file, not fetched)."""
    return as_utc(now) if url is not None else None


def given_by(role: str, url: str | None, now: datetime) -> dict[InstrumentedAttribute[Any], Any]:
    """The values a copy given by `url` writes (None: a file, which clears the URL)."""
    columns = URL_COLUMNS[role]
    return {columns.url: url, columns.refreshed_at: refreshed_at(url, now)}


def metadata_urls(session: Session, role: str) -> list[tuple[str, str, str]]:
    """(entry id, entity id, URL) of every entry given by URL, by entry id."""
    columns = URL_COLUMNS[role]
    rows = session.execute(
        select(columns.id, columns.entity_id, columns.url)
        .where(columns.url.is_not(None))
        .order_by(columns.id)
    )
    return [(entry_id, entity_id, url or "") for entry_id, entity_id, url in rows]


def metadata_url(session: Session, role: str, entry_id: str) -> str | None:
    """The URL the entry's registered metadata was fetched from (None: a file, or none)."""
    columns = URL_COLUMNS[role]
    return session.scalar(select(columns.url).where(columns.id == entry_id))


def record_refresh(
    session: Session, role: str, entry_ids: Sequence[str], failure: str | None, now: datetime
) -> None:
    """A copy accepted (`failure` None, changed or not) or refused with reason code `failure`."""
    columns = URL_COLUMNS[role]
    values: dict[InstrumentedAttribute[Any], Any]
    if failure is None:
        values = {columns.refreshed_at: as_utc(now)}
    else:
        values = {columns.failed_at: as_utc(now), columns.failure: failure}
    session.execute(update(columns.table).where(columns.id.in_(entry_ids)).values(values))


def refresh_records(session: Session, role: str) -> dict[str, RefreshRecord]:
    """By entry id, for every entry given by URL: its last refresh outcomes."""
    columns = URL_COLUMNS[role]
    rows = session.execute(
        select(columns.id, columns.refreshed_at, columns.failed_at, columns.failure).where(
            columns.url.is_not(None)
        )
    )
    return {
        entry_id: RefreshRecord(_utc_or_none(done), _utc_or_none(failed), failure)
        for entry_id, done, failed, failure in rows
    }


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)
