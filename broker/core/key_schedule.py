"""The broker's signing keys over time: which key signs now, which are published, when that changes.

A key generation (the SAML key and certificate plus the OpenID provider's keys, rolled together)
carries three moments. From `published_from` it is in the broker's metadata and JWKS, so peers
that refresh their cached copies learn it; from `signing_from` it signs; after `retire_after` it
is gone from both. The choice is a pure function of the clock, so every worker that reads the
same key set switches at the same moment, without talking to the others. No I/O here: reading and
writing the key set on disk is broker/keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from broker.core.errors import ConfigurationError


class KeyRotationRefused(ConfigurationError):
    """A rotation that would break the schedule: told to the operator, nothing changed."""

    code = "key_rotation_refused"


@dataclass(frozen=True)
class KeyFiles:
    """Where one generation's private keys and certificate are (PEM files, keys mode 0600)."""

    saml_key: Path
    saml_cert: Path
    oidc_rsa: Path | None = None
    oidc_ec: Path | None = None


@dataclass(frozen=True)
class KeyGeneration:
    """One generation of signing keys and its moments (seconds since the epoch, UTC)."""

    number: int
    files: KeyFiles
    published_from: float
    signing_from: float
    retire_after: float | None = None

    def published_at(self, now: float) -> bool:
        return self.published_from <= now and not self.retired_at(now)

    def retired_at(self, now: float) -> bool:
        return self.retire_after is not None and now >= self.retire_after


@dataclass(frozen=True)
class KeyChoice:
    """The key set as seen at one moment: valid until `valid_until`, when some key's moment
    comes and the choice must be made again."""

    signing: KeyGeneration
    # Every generation the peers may meet: the signing one first, then the others by number.
    published: tuple[KeyGeneration, ...]
    valid_until: float

    @property
    def state(self) -> tuple[int, tuple[int, ...]]:
        """What a cache of signed documents or built pysaml2 objects must be keyed by."""
        return self.signing.number, tuple(g.number for g in self.published)


class KeySource(Protocol):
    """The key set as a worker sees it now (broker/keys/live.py reads it from disk)."""

    def current(self) -> KeyChoice: ...


def choose(generations: Iterable[KeyGeneration], now: float) -> KeyChoice:
    """The signing key (the published one whose signing period began last) and every published
    key at `now`."""
    everything = tuple(generations)
    published = [g for g in everything if g.published_at(now)]
    signers = [g for g in published if g.signing_from <= now]
    if not signers:
        raise ConfigurationError("no signing key is in its signing period now (see keys status)")
    signing = max(signers, key=lambda g: (g.signing_from, g.number))
    others = sorted((g for g in published if g is not signing), key=lambda g: g.number)
    moments = [
        moment
        for g in everything
        for moment in (g.published_from, g.signing_from, g.retire_after)
        if moment is not None and moment > now
    ]
    return KeyChoice(signing, (signing, *others), min(moments, default=math.inf))


def pending(generations: Iterable[KeyGeneration], now: float) -> KeyGeneration | None:
    """A generation that is published or waiting but does not sign yet: the next key."""
    waiting = [g for g in generations if g.signing_from > now and not g.retired_at(now)]
    return min(waiting, key=lambda g: g.signing_from, default=None)


def refuse_while_pending(generations: Iterable[KeyGeneration], now: float) -> None:
    """One next key at a time: a second would cut the first one's publish period short."""
    waiting = pending(generations, now)
    if waiting is not None:
        raise KeyRotationRefused(
            f"key {waiting.number} is already waiting to take over; a new rotation can start "
            "once it signs (see `ketenbroker keys status`)"
        )


def rotate(
    generations: Iterable[KeyGeneration],
    files: KeyFiles,
    now: float,
    *,
    publish_seconds: int,
    retain_seconds: int,
) -> tuple[KeyGeneration, ...]:
    """The key set with a next generation in `files`: published now, signing after
    `publish_seconds`; the current key then stays published `retain_seconds` past the switch,
    until everything it signed has expired. Refused while a next key is still waiting."""
    everything = tuple(generations)
    refuse_while_pending(everything, now)
    current = choose(everything, now).signing
    new = KeyGeneration(
        number=max(g.number for g in everything) + 1,
        files=files,
        published_from=now,
        signing_from=now + publish_seconds,
    )
    retire = new.signing_from + retain_seconds
    kept = tuple(replace(g, retire_after=retire) if g is current else g for g in everything)
    return (*kept, new)


def finish(
    generations: Iterable[KeyGeneration], now: float
) -> tuple[tuple[KeyGeneration, ...], tuple[KeyGeneration, ...]]:
    """(kept, removed): the retired generations leave the key set for good."""
    everything = tuple(generations)
    removed = tuple(g for g in everything if g.retired_at(now))
    return tuple(g for g in everything if g not in removed), removed
