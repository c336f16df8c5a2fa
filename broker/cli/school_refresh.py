"""`ketenbroker metadata refresh`, for schools: fetch again the metadata URL each SAML school's
IdP was registered or last updated with (`schools.idp_metadata_url`, revision 0027), check the
copy exactly as `school update --saml-metadata URL` checks it, and keep the last good copy on
any failure.

Why: ADFS (AutoCertificateRollover) makes its next signing certificate 20 days before the
current one ends and signs with it 5 days later; a copy loaded once at registration then refuses
every login (`bad_signature`). Fetched on every run of the operator's timer, the new certificate
is in force days before ADFS switches (docs/schools.md, ADFS).

One piece of code with `school update`: the fetch is saml/metadata_fetch.py's (https, plain http
only on loopback; public addresses only and connected to those checked, no redirects, time- and
size-capped: the rules `metadata refresh` applies to a source's URL too), the checks and the
compare-and-set write are metadata_update.py's (`checked_copy`, `write_copy`). A certificate
changes only through the URL the school registered: a school given as a file is not fetched.
A school on a board's IdP shares its metadata with the IdP's other schools (shared_idps.py): the
IdP is fetched once, from its first school's URL, and the copy written to all of them.

Never makes things worse: a copy that cannot be fetched, is not metadata the broker accepts, is
for another entity id, or whose school changed meanwhile, is refused with a reason code and
logged (WARNING: the school id and the reason; no personal data), and the copy held stays. A
copy whose signing certificates differ is logged with the entity id and the certificates'
SHA-256 fingerprints, added and removed.

Thousands of schools: the downloads run FETCHES_AT_ONCE at a time on a thread pool, each with
the fetch's own deadline (a hung school host holds one thread for at most that), so hung hosts
cost about deadline x ceil(hanging / FETCHES_AT_ONCE) however many schools answer. The threads
only download; each copy is checked and written on the calling thread (the registry is used
from that thread alone), one by one as the downloads end, and the outcomes are said in school
id order.

Every outcome is stored with the school (revision 0028, `record_school_refresh`): the last
success, the last failure and its reason code, on every school on the IdP; the attention
report's `school_metadata_not_refreshed` reads them (core/attention.py).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial

from broker.cli.metadata_update import (
    Registered,
    UpdateRefused,
    checked_copy,
    write_copy,
)
from broker.config import Settings
from broker.registry import SqlRegistry
from broker.saml.metadata_changes import signing_fingerprints
from broker.saml.metadata_check import MetadataInvalid
from broker.saml.metadata_fetch import fetch_metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchoolRefreshOutcome:
    school_id: str
    entity_id: str
    # "updated", "unchanged", "refused" (the copy held stays in force) or "held" (a metadata
    # source holds the IdP: its URL is not fetched; `detail` names the sources)
    result: str
    reason: str | None = None
    detail: str = ""
    also: tuple[str, ...] = ()  # the other schools on the IdP that got the copy too
    keys_added: tuple[str, ...] = ()  # signing certificates' SHA-256 fingerprints
    keys_removed: tuple[str, ...] = ()


# Downloads at once: a hung school host holds one of them until the fetch's deadline.
FETCHES_AT_ONCE = 8


def refresh_schools(
    settings: Settings,
    registry: SqlRegistry,
    *,
    at_once: int = FETCHES_AT_ONCE,
) -> list[SchoolRefreshOutcome]:
    """Every school given by URL, by school id; an IdP several schools share once (from its
    first school's URL). Downloads `at_once` at a time; each copy is checked and written here,
    one by one, as its download ends (no school waits for a hung one before it, and no copy
    waits in memory), and the outcomes are returned by school id."""
    on_idp: dict[str, list[str]] = {}
    first: list[tuple[str, str, str]] = []
    for school_id, entity_id, url in registry.school_metadata_urls():
        if entity_id not in on_idp:
            on_idp[entity_id] = []
            first.append((school_id, entity_id, url))
        on_idp[entity_id].append(school_id)
    if not first:
        return []
    outcomes = []
    loopback = settings.peers_on_loopback
    held_by = registry.federation.sources_of("idp")  # read once for every IdP
    pool = ThreadPoolExecutor(min(at_once, len(first)), "school-refresh")
    try:
        downloads: dict[Future[str], tuple[str, str, str]] = {}
        for school_id, entity_id, url in first:
            if held := ", ".join(held_by.get(entity_id) or ()):
                # A metadata source holds its IdP (a federation now carries it): logins use the
                # source's copy, which the source's refresh keeps fresh, so the school's own URL
                # is not fetched. Not a refusal: nothing is wrong, and nothing would ever mend it
                # (`school update` refuses a held entity too). Nothing is recorded either.
                outcomes.append(SchoolRefreshOutcome(school_id, entity_id, "held", detail=held))
            else:
                download = pool.submit(fetch_metadata, url, allow_loopback=loopback)
                downloads[download] = (school_id, entity_id, url)
        for download in as_completed(list(downloads)):
            school_id, entity_id, url = downloads.pop(download)
            outcomes.append(refresh_school(registry, school_id, entity_id, url, download))
            registry.record_school_refresh(on_idp[entity_id], outcomes[-1].reason)
    finally:
        # A failure here (the registry gone) does not wait for the downloads still queued.
        pool.shutdown(wait=False, cancel_futures=True)
    return sorted(outcomes, key=lambda outcome: outcome.school_id)


def _entry(school_id: str, entity_id: str) -> Registered:
    return Registered(f"School {school_id}", school_id, entity_id, "idp")


def refresh_school(
    registry: SqlRegistry,
    school_id: str,
    entity_id: str,
    url: str,
    download: Future[str],
) -> SchoolRefreshOutcome:
    """One IdP's copy from its `download`, checked and written as `school update` does (a
    source that came to hold the IdP while it downloaded refuses it there)."""
    entry = _entry(school_id, entity_id)
    try:
        copy = checked_copy(registry, entry, download.result())
        if copy.unchanged:
            return SchoolRefreshOutcome(school_id, entity_id, "unchanged")
        also = write_copy(entry, copy, partial(registry.update_school_metadata, url=url))
    except MetadataInvalid as invalid:
        return _refused(school_id, entity_id, "metadata_invalid", invalid.detail)
    except UpdateRefused as refused:
        return _refused(school_id, entity_id, refused.code, refused.message)
    before = signing_fingerprints(copy.current, "idp")
    after = signing_fingerprints(copy.xml, "idp")
    added = tuple(f for f in after if f not in before)
    removed = tuple(f for f in before if f not in after)
    if added or removed:
        log.warning(
            "school IdP signing certificates changed by the metadata refresh",
            extra={
                "reason": "school_signing_keys_changed",
                "school": school_id,
                "entity_id": entity_id,
                "added": ",".join(added),
                "removed": ",".join(removed),
            },
        )
    log.info(
        "school metadata refreshed",
        extra={"reason": "metadata_updated", "school": school_id, "entity_id": entity_id},
    )
    return SchoolRefreshOutcome(
        school_id, entity_id, "updated", also=tuple(also), keys_added=added, keys_removed=removed
    )


def _refused(school_id: str, entity_id: str, code: str, detail: str) -> SchoolRefreshOutcome:
    log.warning(
        "school metadata refused; the last good copy stays in force",
        extra={
            "reason": f"school_metadata_refused:{code}",
            "school": school_id,
            "entity_id": entity_id,
        },
    )
    return SchoolRefreshOutcome(school_id, entity_id, "refused", code, detail)
