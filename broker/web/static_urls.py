"""`static_url(filename)` and `page_url(endpoint)` for templates and views: what
`url_for('static', filename=...)` and `url_for(endpoint)` return, without building it through
the URL map on every page (five times a first login, the same answer each time). The answer
depends only on the endpoint, the file name and the mount point (`SCRIPT_NAME`): the broker has no
URL defaults, subdomains or host matching, and these URLs are relative. So it is kept per app
and worker for each; a worker mounted under few paths keeps few entries."""

from __future__ import annotations

import threading

from flask import Flask, current_app, request, url_for

# The mount point comes from the server's environ: bounded, so a deployment that lets clients
# set it (a proxy passing a prefix header) cannot grow the cache without end.
_MAX_ENTRIES = 64


class FixedUrls:
    """Per worker: the URLs of routes without variable parts, and of static files."""

    def __init__(self) -> None:
        self._urls: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def static(self, filename: str) -> str:
        return self._url("static", filename)

    def page(self, endpoint: str) -> str:
        """`url_for(endpoint)` of a route that takes no values. A blueprint-relative name
        (".choose") would mean a different route in another blueprint's request: refused."""
        if endpoint.startswith("."):
            raise ValueError(f"page_url needs a full endpoint name, not {endpoint!r}")
        return self._url(endpoint, "")

    def _url(self, endpoint: str, filename: str) -> str:
        key = (request.script_root, endpoint, filename)
        url = self._urls.get(key)
        if url is None:
            url = url_for(endpoint, filename=filename) if filename else url_for(endpoint)
            with self._lock:
                if len(self._urls) >= _MAX_ENTRIES:
                    self._urls.clear()
                self._urls[key] = url
        return url


_EXTENSION = "ketenbroker_fixed_urls"


def install_static_urls(app: Flask) -> None:
    """`static_url` and `page_url` for `app`'s templates, and `page_url` for its views."""
    urls = FixedUrls()
    app.extensions[_EXTENSION] = urls
    app.jinja_env.globals["static_url"] = urls.static
    app.jinja_env.globals["page_url"] = urls.page


def page_url(endpoint: str) -> str:
    """In a view: the current app's `FixedUrls.page`."""
    urls: FixedUrls = current_app.extensions[_EXTENSION]
    return urls.page(endpoint)
