"""Calls to a school's OpenID provider: CPU and time per call, or two transports compared.

Usage: python bench/provider_calls.py [--calls 1000] [--label now]
       python bench/provider_calls.py --before OLD_PINNED_HTTP.py [--calls 1000]

Starts a provider on 127.0.0.1 in a process of its own (plain http and TLS, a certificate of a
throwaway CA for `localhost`, a 1 KiB JSON answer, keep-alive), then makes `--calls` GETs of
it in four ways: http and https, each with a new session per call (a new connection, as the
broker's code makes one session per call) and with one session for all (a kept-alive
connection). Sessions verify with `verify=True` against a bundle that is certifi's plus the
test CA, so TLS costs what it costs in production. Prints, per way, the median and mean thread
CPU and wall time per call, in ms.

Without `--before`: whole calls through `SchoolSession` and `get_json` (the name lookup, the
destination check, the transport, the capped read). To compare two versions of broker/, run it
once per version, alternating, with PYTHONPATH naming each version's folder first.

With `--before`: the transport alone (`pinned_http`: a pinned `requests` GET and its body read,
inside `pinned_to`), this checkout's against another version of the module (say
`git show main:broker/oidc/pinned_http.py > /tmp/before.py`), call by call, alternating in one
process so that the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
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
import requests.adapters

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
            # Where requests (per connection) and provider_tls (once) read the default bundle.
            requests.adapters.DEFAULT_CA_BUNDLE_PATH = str(bundle)
            try:
                from broker.oidc import provider_tls

                provider_tls.DEFAULT_CA_BUNDLE_PATH = str(bundle)  # type: ignore[attr-defined]
            except ImportError:
                pass  # a version of broker/ without the shared context
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
    from broker.oidc.rp_http import SchoolSession, get_json

    for url in urls:
        for kept_alive in (False, True):
            shared = SchoolSession(5.0, allow_loopback=True)
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(calls):
                session = shared if kept_alive else SchoolSession(5.0, allow_loopback=True)
                _timed(cpu, wall, get_json, session, url, "discovery")
                if not kept_alive:
                    session.close()
            _report(label, _way(url, kept_alive), cpu, wall)


def _transports(urls: tuple[str, str], calls: int, before: Path) -> None:
    from broker.oidc import pinned_http

    spec = importlib.util.spec_from_file_location("pinned_http_before", before)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    versions = {"before": old, "now": pinned_http}

    def session_of(module: Any) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.mount("http://", module.PinnedAdapter())
        session.mount("https://", module.PinnedAdapter())
        return session

    def call(module: Any, session: requests.Session, url: str) -> None:
        with module.pinned_to("localhost", ["127.0.0.1"], time.monotonic() + 10):
            answer = session.get(url, stream=True, timeout=5, allow_redirects=False)
            while answer.raw.read1(16384, decode_content=True):
                pass

    for url in urls:
        for kept_alive in (False, True):
            shared = {name: session_of(module) for name, module in versions.items()}
            cpu: dict[str, list[float]] = {name: [] for name in versions}
            wall: dict[str, list[float]] = {name: [] for name in versions}
            for i in range(calls):
                order = list(versions.items())
                if i % 2:
                    order.reverse()
                for name, module in order:
                    session = shared[name] if kept_alive else session_of(module)
                    _timed(cpu[name], wall[name], call, module, session, url)
                    if not kept_alive:
                        session.close()
            for name in versions:
                _report(name, _way(url, kept_alive), cpu[name], wall[name])


def _way(url: str, kept_alive: bool) -> str:
    return f"{url.split(':', maxsplit=1)[0]:5} {'kept-alive' if kept_alive else 'new conn.':10}"


def main() -> None:
    # This checkout's broker/ and tests/ when PYTHONPATH names no other (after it, so it can).
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--label", default="")
    parser.add_argument("--before", type=Path, help="another version of pinned_http.py")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with _provider() as urls:
        if args.before:
            _transports(urls, args.calls, args.before)
        else:
            _whole_calls(urls, args.calls, args.label)


if __name__ == "__main__":
    main()
