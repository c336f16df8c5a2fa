"""What gunicorn's own error log (`gunicorn.error`) may say about a request: the event and the
kind of error, never the client's address or what it sent.

gunicorn writes "Invalid request from ip=<address>: <error>" for a request it cannot parse,
and the error's text holds the raw input: the whole request line for InvalidRequestLine (its
query string: a login_hint, a SAMLRequest, an OAuth code), a header for InvalidHeader. It writes
"Error handling request <method> <uri>" with the query string too, for an error outside the
app, with the exception's traceback (`log.exception`), whose text may quote the request as
well. The broker's access log is off for that reason (gunicorn_conf.py); this filter does the
same for these lines: the address, the query string and the traceback are dropped, the event,
the path and the error's class are kept (an operator can still see that, and how, malformed
or failing requests arrive).

Imported by gunicorn_conf.py, so by gunicorn's master: the standard library only.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

ERROR_LOGGER = "gunicorn.error"
INVALID_REQUEST = "Invalid request from ip="
# "Error handling request", with (method, uri), (uri,) or no arguments, and its HTTP/2 kin.
HANDLING_ERRORS = ("Error handling request", "Error handling HTTP/2 request")
# How gunicorn (27; http/errors.py) starts the text of each error it answers 4xx/5xx to, and
# the error's class. A text none of these starts (a newer gunicorn's) is logged as "other".
ERROR_CLASSES = {
    "Invalid HTTP request line:": "InvalidRequestLine",
    "Invalid HTTP method:": "InvalidRequestMethod",
    "Invalid HTTP Version:": "InvalidHTTPVersion",
    "Invalid HTTP Header:": "InvalidHeader",
    "Invalid HTTP header name:": "InvalidHeaderName",
    "Obsolete line folding": "ObsoleteFolding",
    "Unsupported transfer coding:": "UnsupportedTransferCoding",
    "Invalid chunk size:": "InvalidChunkSize",
    "Invalid chunk terminator": "ChunkMissingTerminator",
    "Invalid chunk extension:": "InvalidChunkExtension",
    "Request Line is too large": "LimitRequestLine",
    "limit request ": "LimitRequestHeaders",
    "max buffer headers": "LimitRequestHeaders",
    "Invalid PROXY line:": "InvalidProxyLine",
    "Invalid PROXY header:": "InvalidProxyHeader",
    "Proxy request from": "ForbiddenProxyRequest",
    "Contradictory scheme headers": "InvalidSchemeHeaders",
    "Unable to comply with expectation": "ExpectationFailed",
    "Expected HTTP/2 connection preface": "InvalidH2CPreface",
    "Configuration problem:": "ConfigurationProblem",
    "No more data after": "NoMoreData",
    "[SSL": "SSLError",
}


def error_class(error: str) -> str:
    """The class of the gunicorn error whose text is `error`; "other" when not known."""
    for start, name in ERROR_CLASSES.items():
        if error.startswith(start):
            return name
    return "other"


class RequestDetailFilter(logging.Filter):
    """Rewrites gunicorn's lines about a bad request or a failed one without the address and
    the request's input; every other line passes as it is. Never drops a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str):
            return True
        if message.startswith(INVALID_REQUEST) and not record.args:
            # Formatted by gunicorn already: "Invalid request from ip=<address>: <error>".
            error = message.partition(": ")[2]
            record.msg, record.args = "Invalid request: %s", (error_class(error),)
        elif message.startswith(HANDLING_ERRORS):
            if record.args and isinstance(record.args, tuple):
                # (method, uri) or (uri,): the path says where, the query string is the input.
                *method, uri = record.args
                record.args = (*method, urlsplit(str(uri)).path)
            _class_for_traceback(record)
        return True


def _class_for_traceback(record: logging.LogRecord) -> None:
    """The exception's class in the message instead of its traceback: the exception's text
    (a KeyError's key, a UnicodeDecodeError's octets, a ValueError quoting a header) and the
    frames' source lines may hold what the request sent, and no handler must print them."""
    if not record.exc_info or record.exc_info[0] is None:
        return
    record.msg, record.args = f"{record.getMessage()} ({record.exc_info[0].__name__})", ()
    record.exc_info, record.exc_text = None, None


def install() -> None:
    """Put the filter on gunicorn's error logger once (a logger's own filters see every line
    logged on it, whatever handlers gunicorn's log setup gives it later)."""
    logger = logging.getLogger(ERROR_LOGGER)
    if not any(isinstance(each, RequestDetailFilter) for each in logger.filters):
        logger.addFilter(RequestDetailFilter())
