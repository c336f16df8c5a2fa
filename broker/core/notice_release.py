"""What the information notice tells a student about one release, as a mark to compare
(docs/receipts.md, "The information notice").

The notice names each attribute the service receives and the purpose the publisher declared for
it. It may be skipped only when nothing the student would read has changed: not the names, and
not an attribute's *purpose of record* (core/purposes.py: the Dutch text, compared as the
re-confirmation rule compares it, so a full stop or an English translation changes nothing, a new
purpose does). The session's mark (login/participants.py) and a held notice carry the
fingerprint of both (`NoticeRelease.fingerprint`).

A receipt names attributes only; its hash chain seals its fields, and a purpose would be text
of the publisher's in a record that outlives the service. So a receipt is compared by its time
instead: it shows what the student read when its names are the release's and it was written
after every released attribute's purpose of record began (`purposes_since`, from the service's
declaration history; `read_under_current_purposes`). A purpose that changed since then shows
the notice, one that did not keeps it skipped, for receipts of any age: no deploy shows every
student the notice again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from hashlib import sha256

from broker.core.model import Declaration, Service
from broker.core.pseudonym_rotation import PREVIOUS_PSEUDONYM_RECEIPT_NAME
from broker.core.purposes import purpose_of_record

FINGERPRINT_PREFIX = "v2:"
# COMPAT(notice-names-only): a mark written before 2026-11-30 names the attributes only,
# `v1:a,b`. It counts while no released attribute's purpose began after the session's login
# (`NoticeRelease.seen_in`); a replaced session does not hand it on (participants.py). Remove
# this, `names_only_mark` and its callers once `sso_session_seconds` has passed since every
# worker writes `v2:` marks.
NAMES_ONLY_PREFIX = "v1:"
# The declaration change commits a moment after its `changed_at` was read, and every worker's
# view of the registry sees it up to a second later (registry/cached.py); machines' clocks
# differ a little. A login within this margin after a purpose began may have shown the old one:
# it counts as before the change (the notice shows once more, the safe side).
PURPOSE_CHANGE_MARGIN_SECONDS = 5.0

# `purposes_since` of the service, asked for only when a comparison needs it (the worker's
# view keeps it per registry generation: no query per login).
Since = Callable[[], Mapping[str, float]]


@dataclass(frozen=True)
class NoticeRelease:
    """One release as the notice shows it: the attribute names (`notice_names`) and the
    fingerprint of the names with each one's purpose of record."""

    service_id: str
    attributes: tuple[str, ...]
    fingerprint: str

    def seen_in(self, mark: str | None, since: Since, session_start: float) -> bool:
        """Whether a session's `mark` (or a held notice's, the one the student just continued
        past) says the student read this release. `since` (`purposes_since`) is asked only
        for a COMPAT(notice-names-only) mark: it counts when its names are this release's and
        no released attribute's purpose of record began after `session_start`, the login of
        the session holding it (no replaced session hands such a mark on, participants.py;
        one an older worker handed on is older than that login, a rest docs/receipts.md
        accepts for the sessions open at the upgrade)."""
        if not mark:
            return False
        if mark == self.fingerprint:
            return True
        return mark == names_only_mark(self.attributes) and read_under_current_purposes(
            session_start, self.attributes, since()
        )

    def receipt_shows(self, attributes: Iterable[str], issued_at: int, since: Since) -> bool:
        """Whether a receipt (its attribute names, its time) shows the student read this
        release: the same names, written after each one's purpose of record began. `since`
        is asked only when the names are the same."""
        return notice_names(attributes) == self.attributes and read_under_current_purposes(
            issued_at, self.attributes, since()
        )


def notice_release(service: Service, released: Iterable[str]) -> NoticeRelease:
    """The notice's view of `released` (what a receipt of the login names) at `service`, with
    each attribute's purpose of record from the service's current declarations."""
    names = notice_names(released)
    purposes = {d.attribute: d.purpose for d in service.declarations}
    # One line per name: catalogue names hold neither a tab nor a line break.
    lines = "\n".join(f"{name}\t{_purpose_digest(purposes.get(name))}" for name in names)
    digest = sha256(lines.encode("utf-8")).hexdigest()
    return NoticeRelease(service.id, names, FINGERPRINT_PREFIX + digest)


def notice_names(attributes: Iterable[str]) -> tuple[str, ...]:
    """The attribute names the notice's mark counts, sorted. A school saving the same choice
    again (a new policy version) changes none. The previous pseudonym of a key rotation's window
    does not count: the service held it already, so its start and end would otherwise show
    every student the notice twice for nothing new."""
    return tuple(sorted(a for a in attributes if a != PREVIOUS_PSEUDONYM_RECEIPT_NAME))


def names_only_mark(names: Sequence[str]) -> str:
    """COMPAT(notice-names-only): the mark as workers before 2026-11-30 wrote it."""
    return NAMES_ONLY_PREFIX + ",".join(names)


def is_current_mark(mark: str) -> bool:
    """Whether `mark` holds purposes too (a replaced session hands on only these)."""
    return mark.startswith(FINGERPRINT_PREFIX)


def _purpose_digest(purpose: str | None) -> str:
    """The purpose of record as the fingerprint takes it ("" for an undeclared name)."""
    return _digest_of(purpose) if purpose is not None else ""


@lru_cache(maxsize=1024)
def _digest_of(purpose: str) -> str:
    # Cached: the same few texts on every login, and `purpose_of_record` normalises Unicode.
    tokens = purpose_of_record(purpose)
    return sha256(json.dumps(tokens, separators=(",", ":")).encode("utf-8")).hexdigest()


def purposes_since(
    history: Iterable[tuple[int, tuple[Declaration, ...], datetime]],
) -> dict[str, float]:
    """When each attribute of the newest version in `history` (a service's declaration
    versions: number, declarations, when saved) began to be declared under its current purpose
    of record, in Unix seconds: the version that started the run of versions declaring it with
    that purpose. Left out when the run reaches the oldest version the history holds, or a
    version it lacks (a registry rebuilt from a file holds versions from the import on): no
    change is known there, and it counts for nothing, as for schools' choices
    (registry/purpose_drops.py `purposes_changed_since`). An attribute declared again after a
    version without it begins again too."""
    versions = {number: (declarations, at) for number, declarations, at in history}
    if not versions:
        return {}
    newest = max(versions)
    since: dict[str, float] = {}
    for declaration in versions[newest][0]:
        record = purpose_of_record(declaration.purpose)
        number = newest
        while number - 1 in versions and _declares(
            versions[number - 1][0], declaration.attribute, record
        ):
            number -= 1
        if number - 1 in versions:
            since[declaration.attribute] = versions[number][1].timestamp()
    return since


def _declares(
    declarations: tuple[Declaration, ...], attribute: str, record: tuple[str, ...]
) -> bool:
    found = next((d for d in declarations if d.attribute == attribute), None)
    return found is not None and purpose_of_record(found.purpose) == record


def read_under_current_purposes(
    read_at: float, attributes: Iterable[str], since: Mapping[str, float]
) -> bool:
    """Whether what the student read at `read_at` named the current purpose of each of
    `attributes`: every purpose began before it (with the margin), or has no known beginning."""
    return all(
        a not in since or read_at > since[a] + PURPOSE_CHANGE_MARGIN_SECONDS for a in attributes
    )
