"""The production gunicorn configuration, plus the CPU each request spends inside its handler.

`request_cpu.py --split` runs the broker with `-c python:handler_cpu_conf`. gunicorn calls
`pre_request` in the thread that handles a request, after parsing it, and `post_request` in the
same thread once the response is written; the thread's CPU between the two (Flask, the broker's
work, the Redis and SQL clients, writing the response) goes to the file named by
KB_HANDLER_CPU_LOG, one line per request. What a request costs outside (the worker's main loop,
accepting, reading and parsing the request, handing it to a thread) is the difference between
that and the whole request's CPU from /proc.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from broker.cli.gunicorn_conf import *  # noqa: F403  # every production setting and hook

_LOG = os.environ["KB_HANDLER_CPU_LOG"]
_started = threading.local()


def pre_request(worker: Any, req: Any) -> None:
    _started.ns = time.thread_time_ns()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    spent = time.thread_time_ns() - _started.ns
    with open(_LOG, "a", encoding="ascii") as log:  # one short line: appends do not interleave
        log.write(f"{spent}\n")
