"""The request handler of the development servers (`ketenbroker run`, `ketenbroker demo`).

werkzeug's own handler writes every request line as it came, query included, with the client's
address: a Redirect-binding logout's query holds a SAML message with the student's pseudonym
(towards a platform) or the school's NameID (towards a school), a source identifier. Logs never
carry those (security.md), so these servers write method, path and status only, through the
broker's own log handler and format (gunicorn, in production, writes no access log at all)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

log = logging.getLogger("broker.dev_server")


class PathOnlyRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", None)
        log.info(
            "request method=%s path=%s status=%s",
            getattr(self, "command", "-"),
            urlsplit(path).path if path else "-",
            code,
        )

    def log_error(self, format: str, *args: Any) -> None:
        # http.server's messages quote the request line ("Bad request syntax ('…')").
        log.warning("request not understood by the development server")

    def log_message(self, format: str, *args: Any) -> None:
        # Any other line of http.server's: its arguments may quote the request.
        log.info("development server message")
