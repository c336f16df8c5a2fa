"""The broker's session interface (broker/web/cookie_session.py): Flask's signed cookie, minus
the work for requests that have no session."""

from __future__ import annotations

from flask import Flask, session

from broker.web.cookie_session import BrokerSessionInterface


def _app() -> tuple[Flask, BrokerSessionInterface]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret-key-of-some-length")
    interface = BrokerSessionInterface()
    app.session_interface = interface

    @app.route("/plain")
    def plain() -> str:
        return "ok"

    @app.route("/write")
    def write() -> str:
        session["answer"] = 42
        return "ok"

    @app.route("/read")
    def read() -> str:
        return str(session.get("answer"))

    @app.route("/sign-in")
    def sign_in() -> str:
        session.permanent = True  # as the portal's sign-in does
        session["admin"] = 7
        return "ok"

    @app.route("/clear")
    def clear() -> str:
        session.clear()
        return "ok"

    return app, interface


def test_a_request_without_a_session_builds_no_serializer_and_sets_no_cookie() -> None:
    app, interface = _app()
    response = app.test_client().get("/plain")
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    assert interface._serializers == {}


def test_a_written_session_round_trips_with_one_serializer() -> None:
    app, interface = _app()
    client = app.test_client()
    written = client.get("/write")
    assert "session=" in written.headers["Set-Cookie"]
    assert client.get("/read").get_data(as_text=True) == "42"
    assert client.get("/read").headers["Vary"] == "Cookie"
    assert len(interface._serializers) == 1


def test_a_forged_cookie_is_an_empty_session_and_clearing_deletes_the_cookie() -> None:
    app, _ = _app()
    client = app.test_client()
    client.set_cookie("session", "forged.value.here")
    assert client.get("/read").get_data(as_text=True) == "None"
    client.get("/write")
    cleared = client.get("/clear")
    assert "session=;" in cleared.headers["Set-Cookie"]


def test_a_new_secret_gets_its_own_serializer() -> None:
    app, interface = _app()
    client = app.test_client()
    client.get("/write")
    app.config["SECRET_KEY"] = "another-secret-key-of-some-length"
    assert client.get("/read").get_data(as_text=True) == "None"  # signed with the old key
    assert len(interface._serializers) == 2


def test_a_request_that_leaves_a_permanent_session_alone_sends_no_cookie_back() -> None:
    """Flask renews a permanent session's cookie on every request, with the copy the request
    came with; a late answer (a favicon, a script) would put back a session a form has changed
    since. Only requests that read or change the session answer with it."""
    app, _ = _app()
    client = app.test_client()
    client.get("/sign-in")
    untouched = client.get("/plain")
    assert "Set-Cookie" not in untouched.headers and "Vary" not in untouched.headers
    # A page that used the session renews its cookie, as before.
    assert "session=" in client.get("/read").headers["Set-Cookie"]
