"""`ketenbroker metadata refresh`, for the SAML metadata schools and services were given by URL:
fetch again the URL each school's IdP (`schools.idp_metadata_url`, revision 0027) and each
service's SP (`services.sp_metadata_url`, revision 0029) was registered or last updated with,
check the copy exactly as `school update` / `publisher update --saml-metadata URL` check it, and
keep the last good copy on any failure. One piece of code for both roles: `role` "idp" (schools)
or "sp" (services) picks the registry's columns and the update's write.

Why: ADFS (AutoCertificateRollover) makes its next signing certificate 20 days before the
current one ends and signs with it 5 days later; a copy loaded once at registration then refuses
every login (`bad_signature`). A platform rolling its SP key is as bad: its AuthnRequests and
LogoutRequests signed with the new key are refused, and assertions are encrypted to a key it no
longer holds. Fetched on every run of the operator's timer, the new certificate is in force as
soon as the entity publishes it (docs/schools.md, ADFS; docs/publishers.md, key roll-over).

One piece of code with the updates: the fetch is saml/metadata_fetch.py's (https, plain http
only on loopback; public addresses only and connected to those checked, no redirects, time- and
size-capped: the rules `metadata refresh` applies to a source's URL too), the checks and the
compare-and-set write are metadata_update.py's (`checked_copy`, `write_copy`). A certificate
changes only through the URL the entry registered: one given as a file is not fetched. A school
on a board's IdP shares its metadata with the IdP's other schools (shared_idps.py): the IdP is
fetched once, from its first school's URL, and the copy written to all of them (a service's
entity id is its own: one service an entity).

Never makes things worse: a copy that cannot be fetched, is not metadata the broker accepts, is
for another entity id, or whose entry changed meanwhile, is refused with a reason code and
logged (WARNING: the entry's id and the reason; no personal data), and the copy held stays. A
copy whose key certificates differ is logged with the entity id and the certificates' SHA-256
fingerprints, added and removed (an IdP's signing ones; an SP's signing and encryption ones).

Thousands of entries: the downloads run FETCHES_AT_ONCE at a time on a thread pool, each with
the fetch's own deadline (a hung host holds one thread for at most that), so hung hosts cost
about deadline x ceil(hanging / FETCHES_AT_ONCE) however many answer. The threads only
download; each copy is checked and written on the calling thread (the registry is used from
that thread alone), one by one as the downloads end, and the outcomes are said in id order.

Every outcome is stored with the entry (revisions 0028, 0029, `record_refresh`): the last
success, the last failure and its reason code, on every school on the IdP; the attention
report's `school_metadata_not_refreshed` / `service_metadata_not_refreshed` read them
(core/attention.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from broker.cli.metadata_update import (
    Registered,
    UpdateRefused,
    checked_copy,
    metadata_writer,
    write_copy,
)
from broker.config import Settings
from broker.core.model import AssertionEncryption
from broker.registry import SqlRegistry
from broker.saml.metadata_changes import signing_fingerprints
from broker.saml.metadata_check import MetadataInvalid
from broker.saml.metadata_fetch import fetch_metadata

log = logging.getLogger(__name__)

# What an entry of each role is called in the log lines.
NOUN = {"idp": "school", "sp": "service"}
# A copy with other key certificates: the log line and its reason code, by role.
KEYS_CHANGED = {
    "idp": ("school IdP signing certificates changed by the metadata refresh", "school_signing"),
    "sp": ("service SP certificates changed by the metadata refresh", "service"),
}


@dataclass(frozen=True)
class UrlRefreshOutcome:
    entry_id: str  # the school's or service's id
    entity_id: str
    # "updated", "unchanged", "refused" (the copy held stays in force) or "held" (a metadata
    # source holds the entity: its URL is not fetched; `detail` names the sources)
    result: str
    reason: str | None = None
    detail: str = ""
    also: tuple[str, ...] = ()  # the other schools on the IdP that got the copy too
    keys_added: tuple[str, ...] = ()  # key certificates' SHA-256 fingerprints
    keys_removed: tuple[str, ...] = ()


# Downloads at once: a hung host holds one of them until the fetch's deadline.
FETCHES_AT_ONCE = 8


def refresh_by_url(
    settings: Settings,
    registry: SqlRegistry,
    role: str,
    *,
    at_once: int = FETCHES_AT_ONCE,
) -> list[UrlRefreshOutcome]:
    """Every school (`role` "idp") or service ("sp") given by URL, by id; an IdP several
    schools share once (from its first school's URL). Downloads `at_once` at a time; each copy
    is checked and written here, one by one, as its download ends (no entry waits for a hung
    one before it, and no copy waits in memory), and the outcomes are returned by id."""
    on_entity: dict[str, list[str]] = {}
    first: list[tuple[str, str, str]] = []
    for entry_id, entity_id, url in registry.metadata_urls(role):
        if entity_id not in on_entity:
            on_entity[entity_id] = []
            first.append((entry_id, entity_id, url))
        on_entity[entity_id].append(entry_id)
    if not first:
        return []
    entry_of = _entries(registry, role)
    outcomes = []
    loopback = settings.peers_on_loopback
    held_by = registry.federation.sources_of(role)  # read once for every entity
    pool = ThreadPoolExecutor(min(at_once, len(first)), f"{NOUN[role]}-refresh")
    try:
        downloads: dict[Future[str], tuple[Registered, str]] = {}
        for entry_id, entity_id, url in first:
            if held := ", ".join(held_by.get(entity_id) or ()):
                # A metadata source holds the entity (a federation now carries it): logins use
                # the source's copy, which the source's refresh keeps fresh, so the entry's own
                # URL is not fetched. Not a refusal: nothing is wrong, and nothing would ever
                # mend it (the updates refuse a held entity too). Nothing is recorded either.
                outcomes.append(UrlRefreshOutcome(entry_id, entity_id, "held", detail=held))
            else:
                download = pool.submit(fetch_metadata, url, allow_loopback=loopback)
                downloads[download] = (entry_of(entry_id, entity_id), url)
        for download in as_completed(list(downloads)):
            entry, url = downloads.pop(download)
            outcomes.append(refresh_entry(registry, entry, url, download))
            registry.record_refresh(role, on_entity[entry.entity_id], outcomes[-1].reason)
    finally:
        # A failure here (the registry gone) does not wait for the downloads still queued.
        pool.shutdown(wait=False, cancel_futures=True)
    return sorted(outcomes, key=lambda outcome: outcome.entry_id)


def _entries(registry: SqlRegistry, role: str) -> Callable[[str, str], Registered]:
    """How an entry of `role` is named and checked: a service whose assertion encryption is
    `off` is not refused for an encryption key the broker could not encrypt for (as `publisher
    update` checks it); its switch read once for every service."""
    if role == "idp":
        return lambda entry_id, entity_id: Registered(
            f"School {entry_id}", entry_id, entity_id, "idp"
        )
    not_encrypting: Collection[str] = {
        s.id for s in registry.all_services() if s.assertion_encryption is AssertionEncryption.OFF
    }
    return lambda entry_id, entity_id: Registered(
        f"Service {entry_id}", entry_id, entity_id, "sp", entry_id not in not_encrypting
    )


def refresh_entry(
    registry: SqlRegistry, entry: Registered, url: str, download: Future[str]
) -> UrlRefreshOutcome:
    """One entity's copy from its `download`, checked and written as the updates do (a
    source that came to hold the entity while it downloaded refuses it there)."""
    noun = NOUN[entry.role]
    try:
        copy = checked_copy(registry, entry, download.result())
        if copy.unchanged:
            return UrlRefreshOutcome(entry.entry_id, entry.entity_id, "unchanged")
        also = write_copy(entry, copy, metadata_writer(registry, entry.role, url))
    except MetadataInvalid as invalid:
        return _refused(entry, "metadata_invalid", invalid.detail)
    except UpdateRefused as refused:
        return _refused(entry, refused.code, refused.message)
    before = signing_fingerprints(copy.current, entry.role)
    after = signing_fingerprints(copy.xml, entry.role)
    added = tuple(f for f in after if f not in before)
    removed = tuple(f for f in before if f not in after)
    if added or removed:
        message, reason = KEYS_CHANGED[entry.role]
        log.warning(
            message,
            extra={
                "reason": f"{reason}_keys_changed",
                noun: entry.entry_id,
                "entity_id": entry.entity_id,
                "added": ",".join(added),
                "removed": ",".join(removed),
            },
        )
    log.info(
        f"{noun} metadata refreshed",
        extra={"reason": "metadata_updated", noun: entry.entry_id, "entity_id": entry.entity_id},
    )
    return UrlRefreshOutcome(
        entry.entry_id,
        entry.entity_id,
        "updated",
        also=tuple(also),
        keys_added=added,
        keys_removed=removed,
    )


def _refused(entry: Registered, code: str, detail: str) -> UrlRefreshOutcome:
    noun = NOUN[entry.role]
    log.warning(
        f"{noun} metadata refused; the last good copy stays in force",
        extra={
            "reason": f"{noun}_metadata_refused:{code}",
            noun: entry.entry_id,
            "entity_id": entry.entity_id,
        },
    )
    return UrlRefreshOutcome(entry.entry_id, entry.entity_id, "refused", code, detail)
