"""Calls to a school's OpenID provider: CPU and time per call, through the broker's transport.

Usage: python bench/provider_calls.py [--calls 1000] [--label now]

Starts a provider on 127.0.0.1 in a process of its own (plain http and TLS, a certificate of a
throwaway CA for `localhost`, a 1 KiB JSON answer, keep-alive), then makes `--calls` GETs of
it through `SchoolSession` and `get_json` (the name lookup, the destination check, the pinned
transport, the capped read) in four ways: http and https, each on a new connection per call
(the process's pools emptied before each call) and on the pools' kept-alive connection (as
logins find it). TLS verifies against a bundle that is certifi's plus the test CA, so it costs
what it costs in production. Prints, per way, the median and mean thread CPU and wall time per
call, in ms. To compare two versions of broker/, run it once per version, alternating, with
PYTHONPATH naming each version's folder first.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import certifi

BODY = json.dumps({"issuer": "https://op.school.test", "padding": "x" * 1000}).encode()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    + BODY
)


def serve(directory: Path) -> None:
    """The provider: prints its two ports, then serves until its standard input closes."""
    from tests.support.pki import make_pki

    pki = make_pki(directory, "localhost")
    plain = socket.create_server(("127.0.0.1", 0), backlog=64)
    secure = socket.create_server(("127.0.0.1", 0), backlog=64)

    def answer(conn: socket.socket, tls: bool) -> None:
        try:
            if tls:
                conn = pki.server.wrap_socket(conn, server_side=True)
            with conn, conn.makefile("rb") as reader:
                while True:
                    line = reader.readline()
                    if not line:
                        return
                    while reader.readline() not in (b"\r\n", b""):
                        pass
                    conn.sendall(ANSWER)
        except OSError:
            return

    def accept(listener: socket.socket, tls: bool) -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=answer, args=(conn, tls), daemon=True).start()

    for listener, tls in ((plain, False), (secure, True)):
        threading.Thread(target=accept, args=(listener, tls), daemon=True).start()
    print(plain.getsockname()[1], secure.getsockname()[1], flush=True)
    sys.stdin.read()


@contextmanager
def _provider() -> Iterator[tuple[str, str]]:
    """The provider process; yields its URLs (http, https) after making the test CA trusted
    as part of requests' default bundle."""
    with tempfile.TemporaryDirectory(prefix="kb-bench-provider-") as tmp:
        provider = subprocess.Popen(
            [sys.executable, __file__, "--serve", tmp],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert provider.stdout is not None
            http_port, https_port = provider.stdout.readline().split()
            bundle = Path(tmp) / "bundle.pem"
            bundle.write_bytes(
                Path(certifi.where()).read_bytes() + (Path(tmp) / "ca.pem").read_bytes()
            )
            # Where the shared TLS context reads the default bundle (once per process).
            from broker.oidc import provider_tls

            provider_tls.DEFAULT_CA_BUNDLE_PATH = str(bundle)  # type: ignore[attr-defined]
            path = "/.well-known/openid-configuration"
            yield f"http://localhost:{http_port}{path}", f"https://localhost:{https_port}{path}"
        finally:
            provider.terminate()
            provider.wait(10)


def _report(label: str, way: str, cpu: list[float], wall: list[float]) -> None:
    print(
        f"{label:8} {way} cpu ms median {statistics.median(cpu) * 1e3:6.3f}"
        f" mean {statistics.mean(cpu) * 1e3:6.3f}"
        f"  wall ms median {statistics.median(wall) * 1e3:6.3f}"
        f" mean {statistics.mean(wall) * 1e3:6.3f}",
        flush=True,
    )


def _timed(cpu: list[float], wall: list[float], call: Callable[..., object], *args: Any) -> None:
    started_cpu, started = time.thread_time(), time.perf_counter()
    call(*args)
    cpu.append(time.thread_time() - started_cpu)
    wall.append(time.perf_counter() - started)


def _whole_calls(urls: tuple[str, str], calls: int, label: str) -> None:
    from broker.oidc import rp_http

    session = rp_http.SchoolSession(5.0, allow_loopback=True)
    for url in urls:
        for kept_alive in (False, True):
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(calls):
                if not kept_alive:
                    rp_http._POOLS.manager.clear()  # the next call opens a new connection
                _timed(cpu, wall, rp_http.get_json, session, url, "discovery")
            _report(label, _way(url, kept_alive), cpu, wall)


def _way(url: str, kept_alive: bool) -> str:
    return f"{url.split(':', maxsplit=1)[0]:5} {'kept-alive' if kept_alive else 'new conn.':10}"


def main() -> None:
    # This checkout's broker/ and tests/ when PYTHONPATH names no other (after it, so it can).
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--label", default="")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with _provider() as urls:
        _whole_calls(urls, args.calls, args.label)


if __name__ == "__main__":
    main()
