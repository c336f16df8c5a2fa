"""gunicorn's own error log keeps the event and the error's class of a malformed request, never
the client's address or the request line (broker/cli/gunicorn_log.py). The lines are made by
gunicorn itself: its worker's `handle_error`, with gunicorn's own Logger and error classes."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http.errors import InvalidHeader, InvalidRequestLine, LimitRequestLine
from gunicorn.workers.base import Worker

from broker.cli import gunicorn_log
from broker.cli.gunicorn_log import ERROR_LOGGER, RequestDetailFilter, error_class

CLIENT = ("203.0.113.7", 50123)
SECRET = "login_hint=99XX00&SAMLRequest=fZJNb9swDIb%2Fiu"
LINE = f"GET /saml/idp/sso?{SECRET} HTTP/1.1 extra"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def worker() -> Iterator[tuple[Worker, Lines]]:
    """A gunicorn worker as far as `handle_error` needs one (its config and Logger), with the
    broker's filter installed as gunicorn_conf.py installs it, and every line it logs kept."""
    cfg = Config()
    log = Logger(cfg)
    made = Worker.__new__(Worker)
    made.cfg, made.log = cfg, log
    lines = Lines()
    error_log = logging.getLogger(ERROR_LOGGER)
    before = list(error_log.filters)
    gunicorn_log.install()
    gunicorn_log.install()  # once only
    error_log.addHandler(lines)
    try:
        yield made, lines
    finally:
        error_log.removeHandler(lines)
        error_log.filters[:] = before


def _handle(worker: Worker, error: Exception) -> str:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        worker.handle_error(None, ours, CLIENT, error)
        answer = theirs.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 4")  # gunicorn still answers the client as before
    return answer


def test_an_invalid_request_line_keeps_the_event_and_class_not_the_address_or_the_line(
    worker: tuple[Worker, Lines],
) -> None:
    made, lines = worker
    _handle(made, InvalidRequestLine(LINE))
    assert lines.lines == ["Invalid request: InvalidRequestLine"]
    filters = logging.getLogger(ERROR_LOGGER).filters
    assert sum(isinstance(each, RequestDetailFilter) for each in filters) == 1


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (InvalidHeader(f"X-Hint: {SECRET}"), "InvalidHeader"),
        (LimitRequestLine(9000, 8190), "LimitRequestLine"),
    ],
)
def test_other_malformed_requests_are_logged_by_class_alone(
    worker: tuple[Worker, Lines], error: Exception, name: str
) -> None:
    made, lines = worker
    _handle(made, error)
    assert lines.lines == [f"Invalid request: {name}"]
    assert all(CLIENT[0] not in line and "99XX00" not in line for line in lines.lines)


def test_an_error_handling_a_request_keeps_the_path_not_the_query(
    worker: tuple[Worker, Lines],
) -> None:
    _, lines = worker
    error_log = logging.getLogger(ERROR_LOGGER)
    # As gunicorn's worker logs an error outside the app (workers/base.py).
    error_log.error("Error handling request %s %s", "GET", f"/saml/idp/sso?{SECRET}")
    error_log.error("Error handling request %s", f"/oidc/authorize?{SECRET}")
    error_log.info("Booting worker with pid: %s", 42)
    assert lines.lines == [
        "Error handling request GET /saml/idp/sso",
        "Error handling request /oidc/authorize",
        "Booting worker with pid: 42",
    ]


def test_an_exception_handling_a_request_is_logged_by_class_without_its_text(
    worker: tuple[Worker, Lines],
) -> None:
    """gunicorn logs an error outside the app with `log.exception`: the traceback's text (here
    a KeyError naming what was sent) would print the request's input, so only its class stays."""
    made, lines = worker
    error_log = logging.getLogger(ERROR_LOGGER)
    try:
        raise KeyError(SECRET)
    except KeyError as error:
        error_log.exception("Error handling request %s %s", "GET", f"/saml/idp/sso?{SECRET}")
        error_log.exception("Error handling HTTP/2 request")
        # As the worker logs it when no request was read (workers/base.py, `handle_error`).
        ours, theirs = socket.socketpair()
        with ours, theirs:
            made.handle_error(None, ours, CLIENT, error)
            assert theirs.recv(4096).decode().startswith("HTTP/1.1 500")
    assert lines.lines == [
        "Error handling request GET /saml/idp/sso (KeyError)",
        "Error handling HTTP/2 request (KeyError)",
        "Error handling request (no URI read) (KeyError)",
    ]
    # A line of another event keeps its traceback: only these can quote a request.
    try:
        raise ValueError("boom")
    except ValueError:
        error_log.exception("Exception in worker process")
    assert "Traceback" in lines.lines[-1] and "ValueError: boom" in lines.lines[-1]


def test_error_classes_by_gunicorns_texts() -> None:
    assert error_class(str(InvalidRequestLine(LINE))) == "InvalidRequestLine"
    assert error_class("limit request headers fields size") == "LimitRequestHeaders"
    assert error_class("[SSL: WRONG_VERSION_NUMBER] wrong version number") == "SSLError"
    # A text a later gunicorn may write: the event stays, the text does not.
    assert error_class(f"Something new: {SECRET}") == "other"
