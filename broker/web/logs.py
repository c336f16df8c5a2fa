"""Structured logs: one JSON object per line, each with the request id of the request it belongs
to, so an operator can follow one login across its log lines (and a student's error id leads to
its line). What goes *into* a line is the caller's care: ids and reason codes only, never names,
e-mail addresses, source identifiers, pseudonym keys or assertions (security.md).

The request id is taken from an `X-Request-Id` header a load balancer set (when it looks like
one), else made here; it is sent back in the response's `X-Request-Id`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request
from werkzeug.wrappers import Response

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
_GOOD_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{8,64}\Z")
_HANDLER_NAME = "ketenbroker"


def current_request_id() -> str | None:
    if not has_request_context():
        return None
    value = getattr(g, "request_id", None)
    return value if isinstance(value, str) else None


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


# What every LogRecord has (and what formatters add to it), so the rest of a record is the
# `extra={…}` its caller gave; `request_id` is this module's own and has a place of its own.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
}
# A text value written as it is when printable; any other is quoted with JSON's escapes (one
# line per record, whatever the value holds).
_BARE_VALUE = re.compile(r"\A[^\s\"=\\]+\Z")


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields the caller passed as `extra={…}`: reason codes, counts, entity ids, source
    names. What goes in is the caller's care, as for the message: never personal data."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        # Fields of the line itself win over an extra of the same name.
        entry |= {k: v for k, v in extra_fields(record).items() if k not in entry}
        exception = _exception_class(record)
        if exception is not None:
            entry["exception"] = exception
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`<time> <level> <logger> [<request id>] <message>`, then each extra field as
    ` key=value` (a value with a space, a quote or `=` in it quoted), then ` exception=<class>`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = None
        fields = extra_fields(record)
        exception = _exception_class(record)
        if exception is not None:
            fields["exception"] = exception
        # The base class's line without the traceback and stack it would append (see below).
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        return line + "".join(f" {key}={_text_value(value)}" for key, value in fields.items())


def _exception_class(record: logging.LogRecord) -> str | None:
    """The exception's type only: its text or a traceback's source lines may quote personal
    data (a message, an attribute value), in either format."""
    if record.exc_info and record.exc_info[0] is not None:
        return record.exc_info[0].__name__
    return None


def _text_value(value: object) -> str:
    if isinstance(value, list | tuple):
        text = ",".join(str(each) for each in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    if _BARE_VALUE.match(text) and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


def note_refusal_logged() -> None:
    """This request's refusal has its log line: a portal page that answers a refusal itself is
    logged after the fact only when nothing did (portal/rights.py), so never twice."""
    g.refusal_logged = True


def refusal_logged() -> bool:
    return bool(g.get("refusal_logged"))


def install_logging(app: Flask, log_format: str) -> None:
    """Log the broker's own lines to stderr, as JSON (`json`) or plain text (`text`), each
    request's with its request id."""
    install_log_handler(log_format)

    @app.before_request
    def _request_id() -> None:
        # The WSGI key of the header, read directly: request.headers would rebuild the key.
        offered = request.environ.get(_REQUEST_ID_ENVIRON, "")
        g.request_id = offered if _GOOD_REQUEST_ID.match(offered) else secrets.token_hex(8)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id")  # in a request: has_request_context() is a given here
        if isinstance(request_id, str) and request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response


def install_log_handler(log_format: str) -> None:
    """The handler of the broker's own lines, once per process."""
    logger = logging.getLogger("broker")
    logger.setLevel(logging.INFO)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.addFilter(RequestIdFilter())
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(TextFormatter())
        logger.addHandler(handler)
