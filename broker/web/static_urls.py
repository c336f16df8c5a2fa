"""`static_url(filename)` for templates: what `url_for('static', filename=...)` returns, without
building it through the URL map on every page (two or three times a page, the same answer each
time). The answer depends only on the file name and the mount point (`SCRIPT_NAME`), so it is
kept per worker for both; a worker mounted under few paths keeps few entries."""

from __future__ import annotations

import threading

from flask import Flask, request, url_for

# The mount point comes from the server's environ: bounded, so a deployment that lets clients
# set it (a proxy passing a prefix header) cannot grow the cache without end.
_MAX_ENTRIES = 64


class StaticUrls:
    def __init__(self) -> None:
        self._urls: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def __call__(self, filename: str) -> str:
        key = (request.script_root, filename)
        url = self._urls.get(key)
        if url is None:
            url = url_for("static", filename=filename)
            with self._lock:
                if len(self._urls) >= _MAX_ENTRIES:
                    self._urls.clear()
                self._urls[key] = url
        return url


def install_static_urls(app: Flask) -> None:
    app.jinja_env.globals["static_url"] = StaticUrls()
