"""gunicorn's configuration for the broker: `gunicorn -c python:broker.cli.gunicorn_conf
"broker.web:create_app()"`, or `ketenbroker serve`, which runs exactly that.

It lives outside broker/web on purpose: gunicorn's master imports it, and must not import the
app (with it prometheus_client, which picks its multiprocess mode once, at import).

Settings come from the environment so one image serves every deployment:

    KETENBROKER_BIND      where to listen (default 127.0.0.1:8000; a container sets 0.0.0.0:8000)
    KETENBROKER_WORKERS   worker processes (default: the number of CPUs)
    KETENBROKER_THREADS   threads per worker (default 4)
    PROMETHEUS_MULTIPROC_DIR  where the workers keep their metric counts (default: a fresh
                          folder `ketenbroker-metrics-<pid>-<random>` under the temporary
                          directory, emptied at start and removed when the master exits,
                          however it exits; one a master killed with SIGKILL left behind is
                          removed by the next master to start, metrics_folders.py)

Choices:
- No `preload_app`: each worker builds the app itself after the fork, so nothing that holds a
  socket or a thread (Redis pools, database engines, outbound HTTP sessions, the OIDC key cache)
  is ever shared by two processes. The cost is a few hundred milliseconds per worker at start.
  A broken configuration still stops the start: every worker fails to boot and gunicorn exits.
- `gthread` workers: a login waits on Redis, the database and sometimes a school's OpenID
  provider (up to its timeout); threads keep a worker serving others meanwhile. CPU-bound work
  (signatures) is what the number of workers is for: one per core.
- No access log: the query strings of login URLs carry SAML requests and OAuth codes. The broker
  logs its own lines without them. gunicorn's error log keeps its lines about malformed or
  failed requests, without the client's address and the request line (gunicorn_log.py).
- `limit_request_line` at its maximum: a signed SAML Redirect-binding request is a long URL.
- No control socket (gunicorn 25+): see below.
- Each worker builds its SAML entities once it has loaded the app (`post_worker_init`), so the
  first logins a worker serves do not pay for it (0.1 to 0.2 s of CPU per worker).
"""

from __future__ import annotations

import atexit
import os
import shutil
from pathlib import Path
from typing import Any

from broker.cli import gunicorn_log
from broker.cli.metrics_folders import make_folder, remove_left_behind

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _env_int(name: str, default: int, high: int) -> int:
    text = os.environ.get(name, "").strip() or str(default)
    if not text.isdigit() or not 1 <= int(text) <= high:
        raise SystemExit(f"{name} must be a whole number from 1 to {high}")
    return int(text)


def _remove_folder_made(folder: str, master: int) -> None:
    """Remove the folder this configuration made, when the master that made it exits. Run at
    interpreter exit, not from gunicorn's `on_exit`: gunicorn skips that hook on a bind that
    fails (it calls sys.exit), an error in its main loop and an error in this file. Workers
    (forked from the master, so they inherit this hook) and a master re-executed after USR2
    (which makes a folder of its own) have other pids and leave it alone."""
    if os.getpid() == master:
        shutil.rmtree(folder, ignore_errors=True)


# Set before anything imports prometheus_client: it picks its multiprocess mode at import.
# A folder the operator named is never removed: another gunicorn may use it.
_MADE_FOLDER = not os.environ.get(MULTIPROC_ENV)
if _MADE_FOLDER:
    # Kept open, and locked, for the master's life; its forked workers share it.
    os.environ[MULTIPROC_ENV], _folder_lock = make_folder()
    atexit.register(_remove_folder_made, os.environ[MULTIPROC_ENV], os.getpid())
Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

bind = os.environ.get("KETENBROKER_BIND", "127.0.0.1:8000")
workers = _env_int("KETENBROKER_WORKERS", os.cpu_count() or 1, 256)
threads = _env_int("KETENBROKER_THREADS", 4, 64)
worker_class = "gthread"
preload_app = False
# A worker silent this long is killed and replaced; a login request never takes this long
# (outbound calls have their own, shorter, timeouts).
timeout = 30
graceful_timeout = 30
keepalive = 5
limit_request_line = 8190
accesslog = None
# Set here, in the master, before gunicorn sets its log up: its forked workers inherit it.
gunicorn_log.install()
proc_name = "ketenbroker"
# gunicorn 25+ opens an admin socket in the home folder by default: one path shared by every
# gunicorn of the user (two brokers on a machine would fight over it), and a read-only container
# has no home. Workers are managed with signals instead (docs/operations.md). Older gunicorn
# versions ignore this setting.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Counts left by a previous run would be added to this run's: start from an empty folder.
    A master that makes its folder also removes those of earlier masters killed too hard to
    remove their own (metrics_folders.py); one that uses the operator's folder does not."""
    for entry in Path(os.environ[MULTIPROC_ENV]).iterdir():
        if entry.is_file() and entry.suffix == ".db":
            entry.unlink()
    if _MADE_FOLDER:
        for folder in remove_left_behind():
            server.log.info("removed %s, the metrics folder of a master that was killed", folder)


def post_worker_init(worker: Any) -> None:
    """Build the worker's SAML entities before it takes its first request (broker/web/app.py)."""
    from broker.web.app import warm_up

    warm_up(worker.wsgi)


def child_exit(server: Any, worker: Any) -> None:
    """A worker that ended leaves its counter files (totals must not drop); live gauges of that
    worker are dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
