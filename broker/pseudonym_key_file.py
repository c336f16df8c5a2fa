"""The pseudonym key set as a file: read by workers (again when a chain names a version they
lack) and extended by `ketenbroker pseudonym-key` (pseudonym_rotation.py).

The file is only ever *extended*: a version, once written, is never changed or removed by the
broker, so a worker that read it earlier holds the same key. Writes take an exclusive lock on a
lock file beside it, read the file again inside the lock, and replace it atomically (a new file
with mode 0600, then rename), so two commands at once cannot give one version two keys and a
worker never reads half a file. Key material is never printed or logged.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from broker.config import parse_pseudonym_keys
from broker.core.errors import ConfigurationError
from broker.core.pseudonym import KEY_LENGTH, PseudonymKeys

HEADER = (
    "# The chain pseudonym key set (docs/configuration.md). Never share, never commit.\n"
    "# `ketenbroker pseudonym-key` adds versions; never change or remove a version a chain\n"
    "# uses, and never change `current` by hand (docs/operations.md).\n"
)


def read_key_set(path: Path) -> PseudonymKeys:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigurationError(
            f"cannot read the pseudonym key set {path}: {err.strerror}"
        ) from None
    return parse_pseudonym_keys(text)


def key_set_text(keys: PseudonymKeys) -> str:
    lines = [HEADER, f"current = {keys.current_version}\n"]
    if keys.previous_version is not None:
        lines.append(f"previous = {keys.previous_version}\n")
    lines.append("\n[keys]\n")
    lines.extend(f'"{version}" = "{keys.keys[version].hex()}"\n' for version in sorted(keys.keys))
    return "".join(lines)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def add_key_version(path: Path, version: int) -> PseudonymKeys:
    """Make sure the key set at `path` holds `version` (a fresh random key if it does not yet);
    the key set as written. Versions already there are kept as they are."""
    with _locked(path):
        keys = read_key_set(path)
        if version in keys.keys:
            return keys
        if version < max(keys.keys):
            raise ConfigurationError(f"pseudonym key version {version} is older than the newest")
        extended = PseudonymKeys(
            keys.current_version,
            {**keys.keys, version: secrets.token_bytes(KEY_LENGTH)},
            keys.previous_version,
        )
        _replace(path, key_set_text(extended))
        return extended


class PseudonymKeyFile:
    """`broker.core.ports.PseudonymKeySource` over the key set file, for one process.

    A version the held set lacks makes it read the file again (one small read, only then), so
    a rotation started by the CLI after this worker started needs no restart.
    """

    def __init__(self, path: Path, keys: PseudonymKeys) -> None:
        self._path = path
        self._keys = keys
        self._lock = threading.Lock()

    def key_set(self) -> PseudonymKeys:
        return self._keys

    def key_set_holding(self, versions: frozenset[int]) -> PseudonymKeys:
        keys = self._keys
        if keys.holds(versions):
            return keys
        with self._lock:
            keys = self._keys
            if not keys.holds(versions):
                keys = read_key_set(self._path)
                if not keys.holds(versions):
                    missing = ", ".join(str(v) for v in sorted(versions - keys.keys.keys()))
                    raise ConfigurationError(
                        f"the registry names pseudonym key version {missing}, which the key set "
                        f"{self._path} lacks"
                    )
                self._keys = keys
        return keys
