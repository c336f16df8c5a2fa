"""Which metrics folders a starting master removes (broker/cli/metrics_folders.py): those of
masters that are certainly gone, judged with real processes, /proc and the folder's lock, and
nothing else. The whole of it under gunicorn: tests/adapters/test_cli_serve.py."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cli.metrics_folders import MARKER, make_folder, remove_left_behind
from tests.support.processes import running, wait_for

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
pytestmark = pytest.mark.skipif(not BOOT_ID.exists(), reason="needs Linux's /proc")


def _started(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[19])


def _master(base: Path, *, worker: bool = False) -> tuple[subprocess.Popen[bytes], Path]:
    """A real process that makes its folder as gunicorn's master does, optionally forks a
    "worker" (which shares the lock), then waits for the test; the folder it made."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from broker.cli.metrics_folders import make_folder
        folder, _lock = make_folder({str(base)!r})
        if {worker} and os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        print(folder, flush=True)
        time.sleep(600)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert process.stdout is not None
    with process.stdout:
        return process, Path(process.stdout.readline().decode().strip())


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # SIGKILL: no exit handler runs
    process.wait(10)


def _gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait(10)
    return process.pid


def _by_hand(base: Path, name: str, says: str) -> Path:
    """A folder named like a master's, with `says` in its `master` file, locked by nobody."""
    folder = base / name
    folder.mkdir(mode=0o700)
    (folder / MARKER).write_text(says, encoding="ascii")
    (folder / "counter_7.db").write_bytes(b"counts")
    return folder


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "tmp"
    folder.mkdir()
    yield folder


def test_a_killed_masters_folder_goes_a_live_ones_stays(base: Path) -> None:
    killed, killed_folder = _master(base)
    live, live_folder = _master(base)
    try:
        assert killed_folder.name.startswith(f"ketenbroker-metrics-{killed.pid}-")
        assert (killed_folder / MARKER).read_text() == (
            f"{BOOT_ID.read_text().strip()} {_started(killed.pid)}\n"
        )
        _kill(killed)
        assert killed_folder.is_dir()
        assert remove_left_behind(str(base)) == [str(killed_folder)]
        assert not killed_folder.exists() and live_folder.is_dir()
        assert remove_left_behind(str(base)) == []
    finally:
        _kill(live)
    assert remove_left_behind(str(base)) == [str(live_folder)]


def test_a_worker_that_outlives_its_killed_master_keeps_the_folder(base: Path) -> None:
    master, folder = _master(base, worker=True)
    worker = int(Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()[0])
    _kill(master)
    try:
        assert remove_left_behind(str(base)) == []  # the worker holds the lock
        assert folder.is_dir()
    finally:
        os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not running(worker), "the orphaned worker to end")
    assert remove_left_behind(str(base)) == [str(folder)]


def test_a_reused_pid_does_not_keep_a_folder_but_its_own_master_does(base: Path) -> None:
    """The pid lives, but another process has it (it started at another moment): the folder's
    master is gone. The same pid with its own start time is the master itself."""
    boot = BOOT_ID.read_text().strip()
    live = subprocess.Popen(["sleep", "600"])
    try:
        start = _started(live.pid)
        reused = _by_hand(base, f"ketenbroker-metrics-{live.pid}-reused00", f"{boot} {start - 1}\n")
        alive = _by_hand(base, f"ketenbroker-metrics-{live.pid}-itsown00", f"{boot} {start}\n")
        assert remove_left_behind(str(base)) == [str(reused)]
        assert alive.is_dir()
    finally:
        _kill(live)


def test_nothing_else_is_removed(base: Path, tmp_path: Path) -> None:
    """Only a folder that says it was made since this boot by a process that is gone, named as
    a master names it, a directory of this user's and no link, locked by nobody."""
    boot, gone = BOOT_ID.read_text().strip(), _gone_pid()
    stale = f"{boot} 1\n"  # started one tick after boot: not the process that has `gone` now
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = _by_hand(elsewhere, f"ketenbroker-metrics-{gone}-target00", stale)
    (base / f"ketenbroker-metrics-{gone}-link0000").symlink_to(target)
    (base / f"ketenbroker-metrics-{gone}-afile000").write_text(stale)
    kept = [
        _by_hand(base, "ketenbroker-metrics-k2j4h5g6", stale),  # before this version: no pid
        _by_hand(base, f"ketenbroker-metrics-{gone}-rebooted", "another-boot 1\n"),
        _by_hand(base, f"ketenbroker-metrics-{gone}-unsaid00", ""),  # e.g. the operator's
        _by_hand(base, f"other-metrics-{gone}-abcd1234", stale),
        _by_hand(base, f"ketenbroker-metrics-{os.getpid()}-mine0000", stale),
    ]
    locked = _by_hand(base, f"ketenbroker-metrics-{gone}-locked00", stale)
    if os.getuid() == 0:
        kept.append(_by_hand(base, f"ketenbroker-metrics-{gone}-nobody00", stale))
        os.chown(kept[-1], 65534, 65534)
    with (locked / MARKER).open("rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # as a live master's worker holds it
        assert remove_left_behind(str(base)) == []
    assert all(folder.is_dir() for folder in [*kept, locked, target])
    assert (base / f"ketenbroker-metrics-{gone}-link0000").is_symlink()
    assert (base / f"ketenbroker-metrics-{gone}-afile000").is_file()
    assert remove_left_behind(str(base)) == [str(locked)]


def test_the_folder_made_is_the_masters_own(base: Path) -> None:
    folder, descriptor = make_folder(str(base))
    try:
        assert Path(folder).parent == base and (os.stat(folder).st_mode & 0o777) == 0o700
        assert Path(folder).name.startswith(f"ketenbroker-metrics-{os.getpid()}-")
        assert remove_left_behind(str(base)) == []  # this process is alive (and skipped)
    finally:
        os.close(descriptor)
