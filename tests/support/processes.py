"""Processes and sockets the failure drills start, stop and break: a private redis-server, a
TCP forwarder that can refuse or hang, and the broker under gunicorn.

Each one is a context manager that cleans up even when the test fails, and every wait is a poll
with a deadline, never a bare sleep.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from enum import Enum
from pathlib import Path

import redis
import requests

from tests.support.live import free_ports

START_SECONDS = 30.0


def wait_for(
    condition: Callable[[], bool],
    what: str,
    seconds: float = START_SECONDS,
    *,
    interval: float = 0.05,
) -> None:
    """Poll `condition` every `interval` until it holds; fail with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _stop(process: subprocess.Popen[bytes], seconds: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(seconds)


class RedisServer:
    """A redis-server of this test's own on a free port, without persistence, so stopping it
    loses everything (as a Redis restart without persistence does in production)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_ports(1)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis[bytes]:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            # SIGKILL: a crash, not a graceful shutdown (no persistence either way).
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.process.returncode}")
        try:
            with closing(self.client()) as client:
                return client.ping() is True
        except redis.RedisError:
            return False


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Mode(Enum):
    FORWARD = "forward"  # pass bytes both ways
    HANG = "hang"  # accept, read, never answer
    REFUSE = "refuse"  # accept and close at once (a peer that is down)
    # Pass nothing either way, on the connections already open too, and cut none: a peer (or a
    # proxy, a firewall) gone silent under established connections. FORWARD thaws them.
    FREEZE = "freeze"


class TcpForwarder:
    """Listens on a free loopback port and forwards each connection to `target_port`; the test
    switches it to HANG or REFUSE (which also cuts the connections already open) or FREEZE
    (which keeps every connection and passes nothing until it forwards again)."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_ports(1)
        self.mode = Mode.FORWARD
        self.restored_at = time.monotonic()  # when it last went back to FORWARD
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._open: set[socket.socket] = set()
        self._held: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def held(self) -> int:
        """Connections accepted in HANG mode and still open (a caller waiting on us)."""
        with self._lock:
            return sum(1 for sock in self._held if sock.fileno() != -1)

    def set_mode(self, mode: Mode) -> None:
        if mode is Mode.FORWARD and self.mode is not Mode.FORWARD:
            self.restored_at = time.monotonic()
        self.mode = mode
        if mode in (Mode.HANG, Mode.REFUSE):
            self._cut_all()

    def close(self) -> None:
        self._running = False
        self._thread.join(5)
        self._listener.close()
        self._cut_all()

    def _cut_all(self) -> None:
        with self._lock:
            sockets, self._open, self._held = self._open, set(), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            mode = self.mode
            if mode is Mode.REFUSE:
                client.close()
                continue
            self._track(client)
            if mode is Mode.HANG:
                # The kernel buffers what the client sends; nothing ever comes back.
                with self._lock:
                    self._held.add(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            self._track(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, one: socket.socket, other: socket.socket) -> None:
        peers = {one: other, other: one}
        try:
            while self._running and self.mode in (Mode.FORWARD, Mode.FREEZE):
                if self.mode is Mode.FREEZE:
                    # Read nothing: what either side sends stays in the kernel's buffers.
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in peers:
                sock.close()


@contextmanager
def tcp_forwarder(target_port: int, port: int | None = None) -> Iterator[TcpForwarder]:
    forwarder = TcpForwarder(target_port, port)
    try:
        yield forwarder
    finally:
        forwarder.close()


def worker_pids(master: int) -> list[int]:
    """The live children of gunicorn's master `master` (its workers)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    try:
        return [int(pid) for pid in children.read_text().split()]
    except OSError:
        return []


def running(pid: int) -> bool:
    """Whether process `pid` runs: alive and not a zombie (which has closed its files, and with
    them its locks)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False


class GunicornBroker:
    """`gunicorn 'broker.web.app:create_app()'` on its own port, configured by `config`."""

    def __init__(
        self, config: Path, port: int, *, workers: int = 2, threads: int = 1, log: Path
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        env = {**os.environ, "KETENBROKER_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    # More than one thread: gthread workers, as `serve` runs them.
                    "--threads",
                    str(threads),
                    "--graceful-timeout",
                    "2",
                    # The access log shows a test which broker process served which step.
                    "--access-logfile",
                    "-",
                    "--access-logformat",
                    "%(m)s %(U)s %(s)s",
                    "broker.web.app:create_app()",
                ],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.workers = workers

    def wait_ready(self) -> None:
        wait_for(self._ready, f"gunicorn broker on port {self.port} (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited: {self.log_path.read_text()[-2000:]}")
        if len(self.worker_pids()) < self.workers:
            return False
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def served(self, method: str, path: str) -> int:
        """How many `method path` requests this broker answered so far (its access log)."""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return sum(1 for line in lines if line.startswith(f"{method} {path} "))

    def worker_pids(self) -> list[int]:
        """The master's live children (gunicorn's workers)."""
        return worker_pids(self.process.pid)

    def kill_workers(self) -> list[int]:
        """SIGKILL every worker (a crash mid-request); the master starts new ones."""
        killed = self.worker_pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        return killed

    def wait_for_new_workers(self, killed: list[int]) -> None:
        def replaced() -> bool:
            current = self.worker_pids()
            return len(current) >= self.workers and not set(current) & set(killed)

        wait_for(replaced, "gunicorn to replace its killed workers")
        wait_for(self._ready, "the new workers to answer")

    def stop(self) -> None:
        _stop(self.process)


@contextmanager
def gunicorn_broker(
    config: Path, port: int | None = None, *, workers: int = 2, threads: int = 1, log: Path
) -> Iterator[GunicornBroker]:
    broker = GunicornBroker(
        config, port or free_ports(1), workers=workers, threads=threads, log=log
    )
    try:
        broker.wait_ready()
        yield broker
    finally:
        broker.stop()
