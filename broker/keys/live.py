"""Every worker's view of the key set: re-read when the manifest changed, chosen by the clock.

The login path asks for the current choice on every signature, so the cost is one clock read
and a comparison; the manifest is looked at (one `stat`) at most every `check_seconds`, and read
again only when it changed. A rotation therefore reaches every worker within seconds, and the
switch itself happens in all of them at the same moment: the moment is in the manifest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from broker.config import Settings
from broker.core.errors import ConfigurationError
from broker.core.key_schedule import KeyChoice, KeyGeneration, choose
from broker.keys.manifest import configured_generation, read_manifest

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# The file's identity and version: a replaced manifest has a new inode, an edited one a new mtime.
_Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _require_readable(generations: tuple[KeyGeneration, ...], now: float) -> None:
    """Every file of a key that is or will be published can be read: a manifest copied to a
    machine before its key folder must not take that machine's logins down."""
    for generation in generations:
        if generation.retired_at(now):
            continue
        for path in vars(generation.files).values():
            if isinstance(path, Path) and not os.access(path, os.R_OK):
                raise ConfigurationError(f"key {generation.number}: cannot read {path}")


class LiveKeySet:
    """The signing keys of this worker, following the manifest on disk (or the configured key
    alone while there is none). `clock` is the wall clock and `monotonic` paces the look at
    the manifest; tests pass clocks of their own."""

    def __init__(
        self, settings: Settings, *, clock: Clock = time.time, monotonic: Clock = time.monotonic
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._fallback = configured_generation(settings)
        rotation = settings.key_rotation
        self._manifest = rotation.manifest if rotation is not None else None
        self._check_seconds = rotation.check_seconds if rotation is not None else 0
        self._lock = threading.Lock()
        self._stamp: _Stamp = None
        self._generations: tuple[KeyGeneration, ...] = (self._fallback,)
        self._next_check = 0.0
        self._choice: KeyChoice | None = None
        # A broken manifest at start-up stops the worker (like a bad configuration); later, a
        # broken one is logged and the last good one kept, so logins do not stop mid-day.
        self._load(strict=True)

    def now(self) -> float:
        return self._clock()

    def current(self) -> KeyChoice:
        """The key choice at this moment (cheap: see the module's docstring)."""
        now = self._clock()
        if self._manifest is not None and self._monotonic() >= self._next_check:
            self._load(strict=False)
        choice = self._choice
        if choice is None or now >= choice.valid_until or now < choice.signing.signing_from:
            choice = choose(self._generations, now)
            self._choice = choice
        return choice

    def _load(self, *, strict: bool) -> None:
        with self._lock:
            self._next_check = self._monotonic() + self._check_seconds
            if self._manifest is None:
                return
            stamp = _stamp(self._manifest)
            if stamp == self._stamp and not strict:
                return
            if stamp is None and (strict or self._stamp is None):
                # No manifest (yet): the configured keys are a key set of one.
                generations: tuple[KeyGeneration, ...] = (self._fallback,)
            elif stamp is None:
                # The manifest vanished while this worker ran: after a rotation the configured
                # key may be a retired one, so the last good set stays in force.
                log.error(
                    "key set manifest missing; the last good key set stays in force",
                    extra={"reason": "key_set_unreadable"},
                )
                return
            else:
                try:
                    generations = read_manifest(self._manifest)
                    choose(generations, self._clock())
                    _require_readable(generations, self._clock())
                except ConfigurationError:
                    if strict:
                        raise
                    log.error(
                        "key set manifest unreadable; the last good key set stays in force",
                        extra={"reason": "key_set_unreadable"},
                    )
                    self._stamp = stamp
                    return
            self._stamp = stamp
            self._generations = generations
            self._choice = None
