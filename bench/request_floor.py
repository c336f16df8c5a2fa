"""What one request costs before the broker does anything: CPU per request through the server.

Serves a bare WSGI app (one 3-byte answer), a bare Flask app (one route, the same answer) and the
broker's `GET /healthz` on 127.0.0.1, one worker each, and sends them `--requests` requests on one
kept-alive connection (or a new connection per request with `--new-connections`, as a browser's
first request). CPU is every
server thread's, from /proc/<pid>/task/*/schedstat, so the figure is the server's HTTP handling
plus, for the broker, Flask and the broker's hooks. gunicorn runs the production configuration
for the broker (gthread, 4 threads) and the same worker class and threads for the bare apps;
`--server granian` (only if granian is installed; the broker does not use it) serves both from
granian's Rust HTTP server instead, for comparison (docs/performance.md, "The HTTP server").

    python bench/request_floor.py [--requests 2000] [--server gunicorn|granian] [--new-connections]
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from oidc_login import free_port_run  # noqa: E402
from request_cpu import on_cpu_ns  # noqa: E402
from throughput import prepare  # noqa: E402

from broker.cli.instance import CONFIG_NAME  # noqa: E402

BARE_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
"""
# Flask with one route and nothing else: what Flask's own request handling adds to the server's.
BARE_FLASK = """
from flask import Flask, Response

flask_app = Flask("bare")


@flask_app.route("/healthz")
def healthz():
    return Response("ok\\n", mimetype="text/plain")
"""
LABELS = {"bare": "bare WSGI app", "flask": "bare Flask app", "broker": "broker GET /healthz"}


def command(server: str, target: str, port: int, directory: Path) -> list[str]:
    python = sys.executable
    if server == "granian":
        app = {"broker": "broker.web.app:create_app", "flask": "bare:flask_app"}.get(
            target, "bare:app"
        )
        factory = ["--factory", app] if target == "broker" else [app]
        return [
            *(python, "-m", "granian", "--interface", "wsgi", "--workers", "1"),
            *("--blocking-threads", "4", "--port", str(port), "--log-level", "warning"),
            *factory,
        ]
    if target == "broker":
        conf = ["-c", "python:broker.cli.gunicorn_conf", "broker.web.app:create_app()"]
    else:
        app = "bare:flask_app" if target == "flask" else "bare:app"
        conf = ["--worker-class", "gthread", "--threads", "4", "--keep-alive", "5", app]
    return [
        *(python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"),
        *("--log-level", "warning", "--chdir", str(directory)),
        *conf,
    ]


def get(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"GET /healthz answered {response.status}")


def measure(server: str, target: str, requests: int, new_connections: bool) -> float:
    directory = Path(tempfile.mkdtemp(prefix="kb-bench-floor-"))
    (directory / "bare.py").write_text(BARE_APP + BARE_FLASK, encoding="utf-8")
    port = free_port_run(1)
    prepare(directory, port, "redis://127.0.0.1:6379/12", None, False)
    env = dict(
        os.environ,
        KETENBROKER_CONFIG=str(directory / CONFIG_NAME),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(directory)]),
    )
    process = subprocess.Popen(command(server, target, port, directory), env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(http.client.HTTPConnection("127.0.0.1", port, timeout=5))
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{server} did not start") from None
                time.sleep(0.2)
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        pids = [process.pid, *(int(pid) for pid in children)]
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

        def one() -> None:
            if new_connections:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                get(connection)
                connection.close()
            else:
                get(kept)

        for _ in range(200):  # warm-up: the worker's first requests build caches
            one()
        before = on_cpu_ns(pids)
        for _ in range(requests):
            one()
        time.sleep(0.05)  # the worker may still be closing the last connection
        return (on_cpu_ns(pids) - before) / 1e6 / requests
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn")
    parser.add_argument("--new-connections", action="store_true")
    args = parser.parse_args()
    if args.server == "granian" and importlib.util.find_spec("granian") is None:
        parser.error("granian is not installed (the broker does not need it)")
    print(
        f"CPU per request, ms ({args.server}, one worker, {args.requests} requests, "
        f"{'a new connection each' if args.new_connections else 'one kept-alive connection'})"
    )
    for target in ("bare", "flask", "broker"):
        spent = measure(args.server, target, args.requests, args.new_connections)
        print(f"{LABELS[target]:<22} {spent:6.3f}")


if __name__ == "__main__":
    main()
