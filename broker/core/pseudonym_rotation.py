"""Pseudonym key rotation per chain (pseudonyms.md, "Keys and rotation"). Pure: no I/O, no clock.

Every chain derives with one version of the pseudonym key set. The registry records, per chain
that was ever rotated, its current version and, during a *migration window*, the previous
version and the window's end. A chain without a record uses the key set's `current` alone: that
is how every chain starts. A `previous` in the key set file (from before per-chain rotation) is
never released: it has no window and no chain, so releasing it would hand every never-rotated
chain an old pseudonym forever; a previous pseudonym exists only inside the chain's own window.
The chain here is the pseudonym's chain input (`Service.pseudonym_chain`): a chain id, or
`service:<id>` for a service in no chain, so a chain of its own is rotated the same way.

During the window the chain's services receive the new pseudonym as NameID / pairwise-id / sub
and the old one beside it (`urn:ketenbroker:previous-pseudonym`, `previous_sub`); at the window's
end (or `finish`) only the new one. Nothing here decides when "now" is: callers pass it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from broker.core.errors import BadRequest
from broker.core.model import Service
from broker.core.pseudonym import PseudonymKeys

# How receipts name the previous pseudonym among the released attributes (not a catalogue
# attribute: it exists only during a window, and the service already knows its value).
PREVIOUS_PSEUDONYM_RECEIPT_NAME = "previous_pseudonym"
MAX_WINDOW_DAYS = 366


@dataclass(frozen=True)
class ChainKeyVersion:
    """The registry's record of one chain's key version (`chain`: the pseudonym chain input)."""

    chain: str
    current_version: int
    previous_version: int | None = None
    window_ends: datetime | None = None  # timezone-aware; set exactly when previous_version is

    def window_open(self, now: datetime) -> bool:
        return (
            self.previous_version is not None
            and self.window_ends is not None
            and now < self.window_ends
        )


@dataclass(frozen=True)
class KeyVersions:
    """Which key versions one login derives with: `previous` only inside an open window.
    `previous_chain`: the chain input of the previous pseudonym when it is not the service's
    own chain ("": a rotation's window; a chain move's window names the chain it left,
    chain_move.py)."""

    current: int
    previous: int | None = None
    previous_chain: str = ""

    @property
    def needed(self) -> frozenset[int]:
        return frozenset(v for v in (self.current, self.previous) if v is not None)


def key_versions_for(
    keys: PseudonymKeys, record: ChainKeyVersion | None, now: datetime
) -> KeyVersions:
    """The versions for a chain: its record's, or the key set's `current` for a chain never
    rotated (never the file's `previous`: see the module note). A window that has passed its end
    is over even before anyone runs `finish`."""
    if record is None:
        return KeyVersions(keys.current_version)
    return KeyVersions(record.current_version, released_previous_version(record, now))


def released_previous_version(record: ChainKeyVersion | None, now: datetime) -> int | None:
    """The chain's previous key version while its window is open, else None: the one rule for
    whether a previous pseudonym goes out, at a login and at every later use of what an OIDC
    login issued (`previous_pseudonym_still_released`)."""
    if record is None or not record.window_open(now):
        return None
    return record.previous_version


def previous_pseudonym_still_released(
    record: ChainKeyVersion | None, derived_with: int, now: datetime
) -> bool:
    """Whether a previous pseudonym that a login handed out beside a pseudonym of key version
    `derived_with` may go out again now (an OIDC code or token used later, up to a refresh
    family's lifetime): only while the window it came from is open, that is the chain's window
    is open and its current version is still `derived_with` (a later rotation's window pairs
    other versions). `derived_with` 0 means not recorded (a grant from before grants named it):
    the open window alone decides then."""
    if record is None or released_previous_version(record, now) is None:
        return False
    return derived_with in (0, record.current_version)


def chain_current_version(keys: PseudonymKeys, record: ChainKeyVersion | None) -> int:
    return keys.current_version if record is None else record.current_version


@dataclass(frozen=True)
class RotationPlan:
    """What `pseudonym-key rotate` does: the record to write, and whether the key set needs a
    new version first (`new_version` is then the number it must get)."""

    record: ChainKeyVersion
    add_version: bool

    @property
    def new_version(self) -> int:
        return self.record.current_version


class RotationRefused(BadRequest):
    code = "pseudonym_rotation_refused"


def window_end_problem(ends: datetime, now: datetime) -> str | None:
    """Why a migration window (a rotation's or a chain move's) ending at `ends` may not be
    taken from a registry file, or None. The commands open one for at most `MAX_WINDOW_DAYS`;
    a file may not set a later end: a previous pseudonym released for years is a second
    identifier of every student that never goes away."""
    latest = now + timedelta(days=MAX_WINDOW_DAYS)
    if ends <= latest:
        return None
    return (
        f"the window ends {ends.astimezone(UTC):%Y-%m-%d %H:%M} UTC, more than "
        f"{MAX_WINDOW_DAYS} days from now (at most {latest.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
    )


def imported_window_problem(record: ChainKeyVersion, now: datetime) -> str | None:
    """Why a registry file may not add `record` (one the registry lacks), or None: its window,
    if it has one, may end at most `MAX_WINDOW_DAYS` from now (`window_end_problem`)."""
    return None if record.window_ends is None else window_end_problem(record.window_ends, now)


def plan_rotation(
    keys: PseudonymKeys,
    record: ChainKeyVersion | None,
    chain: str,
    window_days: int,
    now: datetime,
) -> RotationPlan:
    """Move `chain` to a newer key version and open a window of `window_days`.

    The newest version in the key set is used when it is newer than the chain's (a version added
    ahead with `pseudonym-key add`, or by another chain's rotation: versions are shared, the
    chain input keeps chains apart); otherwise a new version one above the newest is needed.
    Refused while the chain's window is open: its services would lose the pseudonym they are
    re-keying from.
    """
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise RotationRefused(f"the window must be 1 to {MAX_WINDOW_DAYS} days, not {window_days}")
    if record is not None and record.window_open(now):
        assert record.window_ends is not None
        raise RotationRefused(
            f"chain {chain} is in a migration window until {record.window_ends:%Y-%m-%d %H:%M} UTC;"
            " finish it first (`ketenbroker pseudonym-key finish`)"
        )
    current = chain_current_version(keys, record)
    newest = max(keys.keys)
    add = newest <= current
    target = max(newest, current) + 1 if add else newest
    return RotationPlan(
        ChainKeyVersion(chain, target, current, now + timedelta(days=window_days)), add
    )


def finished(record: ChainKeyVersion | None, chain: str) -> ChainKeyVersion:
    """The record after `pseudonym-key finish`: the current version alone."""
    if record is None or record.previous_version is None:
        raise RotationRefused(f"chain {chain} has no migration window to finish")
    return ChainKeyVersion(chain, record.current_version)


class HeldKeySource:
    """A key source over a key set held in memory (an environment value, tests): it cannot
    learn versions later, so a chain naming one it lacks fails with a clear error."""

    def __init__(self, keys: PseudonymKeys) -> None:
        self._keys = keys

    def key_set(self) -> PseudonymKeys:
        return self._keys

    def key_set_holding(self, versions: frozenset[int]) -> PseudonymKeys:
        for version in sorted(versions):
            self._keys.key(version)  # raises for a version the set lacks
        return self._keys


def open_windows(
    records: Iterable[ChainKeyVersion], services: Iterable[Service], now: datetime
) -> list[ChainKeyVersion]:
    """The open windows that concern `services` (a publisher's, for its portal notice)."""
    chains = {service.pseudonym_chain for service in services}
    return [r for r in records if r.chain in chains and r.window_open(now)]


class MigrationWindow(Protocol):
    """A window in which a previous pseudonym goes out: a chain's key rotation
    (`ChainKeyVersion`) or a service's chain move (chain_move.py `ChainMove`)."""

    @property
    def window_ends(self) -> datetime | None: ...

    def window_open(self, now: datetime) -> bool: ...


@dataclass(frozen=True)
class WindowOutlook:
    """The open migration windows, for monitoring: how many, and the nearest end."""

    open: int
    nearest_end_in: float | None  # seconds; None when no window is open


def window_outlook(windows: Iterable[MigrationWindow], now: datetime) -> WindowOutlook:
    """Every open window counts, a rotation's and a move's alike: each ends a previous
    pseudonym that some platform is re-keying its accounts from."""
    ends = [w.window_ends for w in windows if w.window_open(now) and w.window_ends is not None]
    nearest = (min(ends) - now).total_seconds() if ends else None
    return WindowOutlook(len(ends), nearest)
