"""Structured logs: one JSON object per line with the request id; a load balancer's request id
is kept when it looks like one; an unhandled error is logged with its error id and where it
happened, never with its message."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from flask import Flask

from broker.config import Organization
from broker.web.errors import install_error_pages
from broker.web.i18n import init_i18n
from broker.web.labels import install_site_name
from broker.web.logs import (
    REQUEST_ID_HEADER,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    install_logging,
)
from broker.web.static_urls import install_static_urls
from tests.unit.test_pages import WEB_DIR

SECRET_TEXT = "qzx-personal-value-in-an-exception"


@pytest.fixture
def app() -> Flask:
    app = Flask("broker.web", root_path=str(WEB_DIR))
    init_i18n(app)
    install_static_urls(app)
    install_site_name(app, Organization())
    install_error_pages(app)
    install_logging(app, "json")

    @app.get("/fine")
    def fine() -> str:
        logging.getLogger("broker.test").info("fine school=%s", "99XX00")
        return "ok"

    @app.get("/broken")
    def broken() -> str:
        raise RuntimeError(SECRET_TEXT)

    return app


def test_request_id_is_made_or_kept_and_echoed(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="broker"):
        made = client.get("/fine")
        kept = client.get("/fine", headers={REQUEST_ID_HEADER: "lb-req-0123456789"})
        refused = client.get("/fine", headers={REQUEST_ID_HEADER: "bad id <script>"})
    assert len(made.headers[REQUEST_ID_HEADER]) == 16
    assert kept.headers[REQUEST_ID_HEADER] == "lb-req-0123456789"
    assert refused.headers[REQUEST_ID_HEADER] != "bad id <script>"
    ids = [getattr(r, "request_id", None) for r in caplog.records if r.name == "broker.test"]
    assert ids[1] == "lb-req-0123456789" and ids[0] == made.headers[REQUEST_ID_HEADER]
    line = json.loads(JsonFormatter().format(caplog.records[1]))
    assert line["request_id"] == "lb-req-0123456789"
    assert line["message"] == "fine school=99XX00" and line["level"] == "INFO"


def test_unhandled_error_logs_id_and_frames_not_its_message(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="broker"):
        page = app.test_client().get("/broken")
    assert page.status_code == 500
    assert SECRET_TEXT not in page.get_data(as_text=True)
    (record,) = [r for r in caplog.records if "unhandled" in r.getMessage()]
    line = json.loads(JsonFormatter().format(record))
    assert "type=RuntimeError" in line["message"] and "error_id=" in line["message"]
    assert any("test_logs.py" in frame and "broken" in frame for frame in line["frames"])
    assert SECRET_TEXT not in json.dumps(line)


def _record(**extra: object) -> logging.LogRecord:
    record = logging.getLogger("broker.test").makeRecord(
        "broker.test", logging.WARNING, __file__, 1, "metadata source refused", (), None,
        extra=extra,
    )  # fmt: skip
    RequestIdFilter().filter(record)  # outside a request: None, as in the CLI
    return record


def test_json_lines_carry_the_extra_fields() -> None:
    record = _record(reason="metadata_refused:signature_invalid", source="fed", count=3)
    line = json.loads(JsonFormatter().format(record))
    assert line["reason"] == "metadata_refused:signature_invalid"
    assert line["source"] == "fed" and line["count"] == 3
    assert line["message"] == "metadata source refused" and line["request_id"] is None
    # The record's own attributes are not extras.
    assert not {"args", "msg", "lineno", "pathname", "process", "thread"} & set(line)


def test_text_lines_carry_the_extra_fields_quoted_when_needed() -> None:
    record = _record(
        reason="fetch_failed", source="fed", detail="cannot fetch the metadata: HTTP 500",
        frames=["web/x.py:3 view", "web/y.py:9 inner"], empty="", line='two\nlines "q"',
    )  # fmt: skip
    line = TextFormatter().format(record)
    assert line.endswith(
        " [None] metadata source refused reason=fetch_failed source=fed"
        ' detail="cannot fetch the metadata: HTTP 500" frames="web/x.py:3 view,web/y.py:9 inner"'
        ' empty="" line="two\\nlines \\"q\\""'
    )
    assert "\n" not in line


def test_an_exception_is_its_class_in_either_format() -> None:
    try:
        raise RuntimeError(SECRET_TEXT)
    except RuntimeError:
        record = logging.getLogger("broker.test").makeRecord(
            "broker.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    RequestIdFilter().filter(record)
    text = TextFormatter().format(record)
    assert text.endswith("failed exception=RuntimeError") and SECRET_TEXT not in text
    assert "Traceback" not in text
    line = json.loads(JsonFormatter().format(record))
    assert line["exception"] == "RuntimeError" and SECRET_TEXT not in json.dumps(line)
