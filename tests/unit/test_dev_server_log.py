"""The development servers' request lines (`ketenbroker run`, `ketenbroker demo`): method, path
and status only. A Redirect-binding logout's query holds a SAML message with a pseudonym or the
school's NameID; werkzeug's own handler wrote it, with the client's address."""

from __future__ import annotations

import logging
import threading
import urllib.request

import pytest
from flask import Flask
from werkzeug.serving import make_server

from broker.cli.dev_server import PathOnlyRequestHandler


def test_a_request_line_has_no_query_and_no_address(caplog: pytest.LogCaptureFixture) -> None:
    app = Flask(__name__)
    app.add_url_rule("/saml/idp/slo", "slo", lambda: "ok")
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=PathOnlyRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    secret = "SAMLRequest=fZJdT4MwFIb%2Fqmsecretmarker"
    try:
        with caplog.at_level(logging.INFO, logger="broker.dev_server"):
            url = f"http://127.0.0.1:{server.server_port}/saml/idp/slo?{secret}"
            with urllib.request.urlopen(url) as answer:
                assert answer.read() == b"ok"
    finally:
        server.shutdown()
        thread.join()
    lines = [r.getMessage() for r in caplog.records if r.name == "broker.dev_server"]
    assert lines == ["request method=GET path=/saml/idp/slo status=200"]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "secretmarker" not in everything and "127.0.0.1" not in everything
