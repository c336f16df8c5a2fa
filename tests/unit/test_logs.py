"""Structured logs: one JSON object per line with the request id; a load balancer's request id
is kept when it looks like one; an unhandled error is logged with its error id and where it
happened, never with its message."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask

from broker.web.errors import install_error_pages
from broker.web.i18n import init_i18n
from broker.web.logs import REQUEST_ID_HEADER, JsonFormatter, install_logging
from broker.web.static_urls import install_static_urls
from tests.unit.test_pages import WEB_DIR

SECRET_TEXT = "qzx-personal-value-in-an-exception"


@pytest.fixture
def app() -> Flask:
    app = Flask("broker.web", root_path=str(WEB_DIR))
    init_i18n(app)
    install_static_urls(app)
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
