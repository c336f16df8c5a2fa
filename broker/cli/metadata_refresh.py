"""Refreshing the configured metadata sources: fetch, verify, keep the last good copy.

Run by `ketenbroker metadata refresh` from a timer (systemd, cron, a compose job), never inside
the web workers: with gunicorn every worker would fetch and verify the same feed, and a worker
busy parsing a 30 MB aggregate is a worker not answering logins. The result goes into the
registry database, whose generation tells every worker to rebuild (docs/operations.md).

A refresh never makes things worse: a download that cannot be fetched, parsed, verified, that
has expired or that is older than the copy held (a replayed feed) is refused with a reason code,
logged, and recorded; the copy held stays in force. Nor does it drop a copy: the copy of a
source the configuration no longer names stays in force, and every run says so (its outcome,
a WARNING naming the source; `metadata status`, the attention report and the state gauge say
`unconfigured`) until the operator drops it with `metadata forget` (metadata_forget.py) or
configures the source again. Until 2026-11-30 a full run dropped it: a misspelled or renamed
source took its schools' metadata with it before the new name had a good copy.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from broker.config import MetadataSource, Settings
from broker.core.federation import FeedDates, LeftOut, OlderThanHeld
from broker.operations.sources import records_and_states
from broker.registry import SqlRegistry
from broker.saml.aggregate import MetadataRefused, read_metadata
from broker.saml.metadata_check import MetadataInvalid
from broker.saml.metadata_fetch import fetch_bytes

log = logging.getLogger(__name__)

# A large feed on a slow link: each read may wait this long, the whole download five times that.
SOURCE_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class RefreshOutcome:
    source: str
    # "updated", "unchanged" or "refused"; "unconfigured": a copy held of a source the
    # configuration does not name, left in force (`entities`, `valid_until`: that copy's)
    result: str
    reason: str | None = None
    entities: int = 0
    skipped: int = 0
    seconds: float = 0.0
    # Members left out because the source's registration_authorities do not list theirs.
    not_listed: int = 0
    # Members left out for a problem of their own, each with its reason (aggregate.py).
    left_out: tuple[LeftOut, ...] = ()
    valid_until: datetime | None = None


def _download(source: MetadataSource, allow_loopback: bool) -> bytes:
    if source.url is not None:
        try:
            return fetch_bytes(
                source.url,
                allow_loopback=allow_loopback,
                max_bytes=source.max_bytes,
                timeout=SOURCE_TIMEOUT_SECONDS,
                total_seconds=5 * SOURCE_TIMEOUT_SECONDS,
            )
        except MetadataInvalid as err:
            log.warning(
                "metadata source unreachable",
                extra={"reason": "fetch_failed", "source": source.name, "detail": err.detail},
            )
            raise MetadataRefused("fetch_failed") from None
    assert source.file is not None
    try:
        with source.file.open("rb") as handle:
            data = handle.read(source.max_bytes + 1)
    except OSError:
        raise MetadataRefused("file_unreadable") from None
    if len(data) > source.max_bytes:
        raise MetadataRefused("too_large")
    return data


def _certificates(source: MetadataSource) -> list[bytes]:
    try:
        return [path.read_bytes() for path in source.signing_certs]
    except OSError:
        raise MetadataRefused("signer_certificate_unreadable") from None


def _refused(registry: SqlRegistry, source: str, code: str, now: datetime) -> RefreshOutcome:
    registry.federation.refused(source, f"metadata_refused:{code}", now)
    log.warning(
        "metadata source refused; the last good copy stays in force",
        extra={"reason": f"metadata_refused:{code}", "source": source},
    )
    return RefreshOutcome(source, "refused", code)


def refresh_source(
    source: MetadataSource,
    registry: SqlRegistry,
    *,
    allow_loopback: bool,
    now: datetime,
    allow_older: bool = False,
) -> RefreshOutcome:
    """`allow_older`: take the download even when it is older than the copy held (an operator
    going back on purpose, `metadata refresh --source NAME --allow-older`)."""
    started = time.perf_counter()
    try:
        data = _download(source, allow_loopback)
        read = read_metadata(
            data,
            certificates=_certificates(source),
            require_signature=source.require_signature,
            require_valid_until=source.require_valid_until,
            roles=source.roles,
            now=now,
            max_validity=source.max_validity,
            authorities=frozenset(source.registration_authorities),
        )
    except MetadataRefused as refused:
        return _refused(registry, source.name, refused.code, now)
    digest = hashlib.sha256(data).hexdigest()
    try:
        changed = registry.federation.store(
            source.name,
            digest,
            read.dates,
            read.entities,
            now,
            allow_older=allow_older,
            authorities=source.registration_authorities,
            left_out=read.left_out,
        )
    except OlderThanHeld as older:
        # Verified, unexpired, and older: a feed the federation has since replaced, replayed
        # by whoever relays it. The dates say which (they are the federation's, not personal).
        log.warning(
            "metadata source older than the copy held: a replayed feed?",
            extra={
                "reason": f"metadata_refused:{older.code}",
                "source": source.name,
                "offered": _dates(older.offered),
                "held": _dates(older.held),
            },
        )
        return _refused(registry, source.name, older.code, now)
    seconds = time.perf_counter() - started
    log.info(
        "metadata source refreshed",
        extra={
            "reason": "metadata_updated" if changed else "metadata_unchanged",
            "source": source.name,
            "count": len(read.entities),
        },
    )
    return RefreshOutcome(
        source.name,
        "updated" if changed else "unchanged",
        entities=len(read.entities),
        skipped=read.skipped,
        seconds=seconds,
        not_listed=read.not_listed,
        left_out=read.left_out,
    )


def _dates(dates: FeedDates) -> str:
    def said(moment: datetime | None) -> str:
        return moment.isoformat(timespec="seconds") if moment is not None else "-"

    return f"published {said(dates.published_at)}, valid until {said(dates.valid_until)}"


def refresh_sources(
    settings: Settings,
    registry: SqlRegistry,
    names: Sequence[str] = (),
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    allow_older: bool = False,
) -> list[RefreshOutcome]:
    """Refresh the named sources (all when none named), one after the other, then say which
    copies held belong to no configured source (outcome `unconfigured`, after the others): they
    stay in force, on every run, until `metadata forget`. `allow_older` only with named
    sources: going back is a decision about one feed, never every one."""
    if allow_older and not names:
        raise ValueError("allow_older needs the sources named")
    chosen = [s for s in settings.metadata.sources if not names or s.name in names]
    outcomes = [
        refresh_source(
            source,
            registry,
            allow_loopback=settings.peers_on_loopback,
            now=clock(),
            allow_older=allow_older,
        )
        for source in chosen
    ]
    return outcomes + _report(settings, registry, {s.name for s in chosen}, clock())


def _report(
    settings: Settings, registry: SqlRegistry, chosen: set[str], now: datetime
) -> list[RefreshOutcome]:
    """After a run, an ERROR for each refreshed source whose entities are not trusted
    (expired or missing), and a WARNING for each copy held of a source the configuration does
    not name: the timer logs them on every run, so a log-based alert fires also where nothing
    scrapes /metrics. A stale source still works and is not logged here (its refusals are,
    above)."""
    records, states = records_and_states(settings, registry, now)
    unconfigured = []
    for entry in states:
        if not entry.configured:
            count = records[entry.name].entity_count
            log.warning(
                "metadata source not configured: its copy stays in force until "
                "`ketenbroker metadata forget` or its validUntil",
                extra={"reason": entry.reason, "source": entry.name, "count": count},
            )
            unconfigured.append(
                RefreshOutcome(
                    entry.name,
                    "unconfigured",
                    entry.reason,
                    entities=count,
                    valid_until=entry.valid_until,
                )
            )
        # A copy of a source no longer configured that expired counts as one refreshed.
        if entry.untrusted and (entry.name in chosen or not entry.configured):
            log.error(
                "metadata source not trusted",
                extra={"reason": entry.reason, "source": entry.name, "state": entry.state.value},
            )
    return unconfigured
