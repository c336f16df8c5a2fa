"""`static_url(filename)` and `page_url(endpoint)` for templates and views: what
`url_for('static', filename=...)` and `url_for(endpoint)` return, without building it through
the URL map on every page (five times a first login, the same answer each time). The answer
depends only on the endpoint, the file name and the mount point (`SCRIPT_NAME`): the broker has no
URL defaults, subdomains or host matching, and these URLs are relative. So it is kept per app
and worker for each; a worker mounted under few paths keeps few entries.

A static file's URL carries its version, `?v=` and the start of the SHA-256 of its bytes (read
once per worker): a request naming the file's current version may be kept by the browser for a
year without asking again (`immutable_static`), so a page on a slow connection does not spend a
round trip re-checking each script before it paints. A request without it, or with an older one (a
page from before an upgrade), is answered as before: cached, but checked again each time."""

from __future__ import annotations

import hashlib
import os
import threading

from flask import Flask, Response, current_app, request, url_for

# The mount point comes from the server's environ: bounded, so a deployment that lets clients
# set it (a proxy passing a prefix header) cannot grow the cache without end.
_MAX_ENTRIES = 64

# How long a browser keeps a file fetched under its current version: a year, the longest
# lifetime caches are asked to honour; a new version is a new URL.
_VERSIONED_MAX_AGE = 365 * 24 * 3600
_VERSION_LENGTH = 10  # hex digits of the SHA-256: 40 bits, enough to tell versions apart


class FixedUrls:
    """Per worker: the URLs of routes without variable parts, and of static files."""

    def __init__(self, static_folder: str | None) -> None:
        self._urls: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._static_folder = static_folder
        self._versions: dict[str, str] | None = None

    def static(self, filename: str) -> str:
        return self._url("static", filename)

    def version(self, filename: str) -> str | None:
        """The current version of the static file `filename`, None for a name that is not one
        of the folder's files (a request's own spelling, "./style.css", is never read)."""
        versions = self._versions
        if versions is None:
            versions = self._versions = _file_versions(self._static_folder)
        return versions.get(filename)

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
            if not filename:
                url = url_for(endpoint)
            elif (version := self.version(filename)) is None:
                url = url_for(endpoint, filename=filename)
            else:
                url = url_for(endpoint, filename=filename, v=version)
            with self._lock:
                if len(self._urls) >= _MAX_ENTRIES:
                    self._urls.clear()
                self._urls[key] = url
        return url


_EXTENSION = "ketenbroker_fixed_urls"


def install_static_urls(app: Flask) -> None:
    """`static_url` and `page_url` for `app`'s templates, and `page_url` for its views."""
    urls = FixedUrls(app.static_folder)
    app.extensions[_EXTENSION] = urls
    app.jinja_env.globals["static_url"] = urls.static
    app.jinja_env.globals["page_url"] = urls.page


def page_url(endpoint: str) -> str:
    """In a view: the current app's `FixedUrls.page`."""
    urls: FixedUrls = current_app.extensions[_EXTENSION]
    return urls.page(endpoint)


def immutable_static(app: Flask, filename: str, response: Response) -> Response:
    """`response`, the static file `filename`, to be kept unasked when the request named the
    file's current version; otherwise left as it is (no-cache: revalidated with its ETag)."""
    urls: FixedUrls = app.extensions[_EXTENSION]
    version = request.args.get("v")
    if version is not None and version == urls.version(filename):
        cache = response.cache_control
        cache.no_cache = None
        cache.public = True
        cache.max_age = _VERSIONED_MAX_AGE
        cache.immutable = True
    return response


def _file_versions(folder: str | None) -> dict[str, str]:
    """Each file of the static folder (and its subfolders), by its name in a URL, with its
    version. Read whole once per worker: the folder holds a few small files."""
    versions: dict[str, str] = {}
    if folder is None:
        return versions
    for directory, _subfolders, files in os.walk(folder):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as file:
                digest = hashlib.sha256(file.read()).hexdigest()
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            versions[relative] = digest[:_VERSION_LENGTH]
    return versions
