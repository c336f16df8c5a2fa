"""The Prometheus multiprocess folders gunicorn's master makes when PROMETHEUS_MULTIPROC_DIR is
not set (gunicorn_conf.py), and the removal of those that masters killed too hard to clean up
left behind.

A master removes its folder when it exits, however it exits, unless it gets no chance to:
`SIGKILL` (the OOM killer, `kill -9`). On a long-lived host such folders pile up in the
temporary directory, so a master, as it starts, removes those of earlier masters that are
certainly gone, and nothing else. A folder is removed only when all of these hold:

- its name is one this module gives, `ketenbroker-metrics-<pid>-<random>` (the pid of the master
  that made it), directly in the temporary directory; it is a directory, not a symbolic link (no
  link is followed, here or in the removal: `shutil.rmtree` on Linux), and this user owns it;
- its `master` file says it was made on this machine since its last boot (the kernel's boot id)
  by a process that is gone: no process has that pid, or the one that has it started at another
  moment (the pid was reused; the start time is field 22 of /proc/<pid>/stat);
- nothing holds the lock on that file: the master takes it before writing the file and holds it
  until it ends, and its workers (forked, they share it) until they end. So a worker that
  outlives a killed master, or a live master that /proc does not show (another PID namespace
  sharing the temporary directory), keeps its folder.

Whatever cannot be judged is left alone: no /proc (not Linux), a file that cannot be read, a
folder of a version before this one (no pid in its name), and one made under another boot id:
that may be this machine before a reboot (a crash; most systems empty the temporary directory
at boot anyway) or another machine sharing the directory, whose live master's lock need not
reach this one. A folder left behind costs a few kilobytes; one removed under a live master's
workers would break their metrics. A folder the operator names in PROMETHEUS_MULTIPROC_DIR is
not made here and has no `master` file: never removed.

Standard library only: gunicorn's master imports this (gunicorn_conf.py) and must not import
the app or prometheus_client.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

PREFIX = "ketenbroker-metrics-"
MARKER = "master"
_NAME = re.compile(r"\Aketenbroker-metrics-([1-9][0-9]{0,9})-[a-z0-9_]{1,32}\Z")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_MARKER_BYTES = 200


class _Unknown(Exception):
    """What a folder's master is cannot be told: the folder stays."""


def boot_id() -> str | None:
    """The kernel's id of this boot of this machine; None without /proc."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def started(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot: /proc/<pid>/stat field 22), None
    when there is no such process; `_Unknown` when /proc cannot say."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as err:
        raise _Unknown from err
    # The name (field 2) is in parentheses and may hold spaces and parentheses itself.
    fields = text.rpartition(b")")[2].split()
    if len(fields) < 20 or not fields[19].isdigit():
        raise _Unknown
    return int(fields[19])


def make_folder(directory: str | None = None) -> tuple[str, int]:
    """A fresh folder for this process (the master) and the descriptor of its `master` file,
    locked: keep it open while the folder is in use (the lock ends with the last process that
    has it: the master and its forked workers; not one started by exec, it is not inherited)."""
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=directory)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    descriptor = os.open(os.path.join(folder, MARKER), flags, 0o600)
    # Locked before it says anything: a folder whose file says who made it is locked while
    # that master or a worker of it lives. A file system without locks gets a folder that
    # says nothing (never removed by another master), not a master that does not start.
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return folder, descriptor
    boot = boot_id()
    try:
        start = started(os.getpid()) if boot else None
    except _Unknown:
        start = None
    if boot and start is not None:
        # Nothing written without both: such a folder is never removed by another master.
        os.write(descriptor, f"{boot} {start}\n".encode("ascii"))
    return folder, descriptor


def remove_left_behind(directory: str | None = None) -> list[str]:
    """Remove the folders of earlier masters that are certainly gone (the module docstring
    says when); the paths removed."""
    boot = boot_id()
    base = directory or tempfile.gettempdir()
    if boot is None:
        return []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    removed = []
    for name in names:
        found = _NAME.match(name)
        if found is None or int(found[1]) == os.getpid():
            continue
        path = os.path.join(base, name)
        try:
            if _removed_if_left(path, int(found[1]), boot):
                removed.append(path)
        except (OSError, _Unknown):
            continue  # not judged, or not removable: it stays
    return removed


def _removed_if_left(path: str, pid: int, boot: str) -> bool:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    descriptor = os.open(os.path.join(path, MARKER), flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return False
        said = os.read(descriptor, _MARKER_BYTES).decode("ascii", "replace").split()
        if len(said) != 2 or said[0] != boot or not said[1].isdigit():
            return False  # made before a reboot, elsewhere, or by a version that did not say
        if started(pid) == int(said[1]):
            return False  # its master is alive
        # Raises (BlockingIOError) while the master or a worker of it holds the lock.
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(path)
        return True
    finally:
        os.close(descriptor)
