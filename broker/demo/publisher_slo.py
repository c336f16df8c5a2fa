"""The demo publisher's Single Logout: a "Log out" button that sends the broker a signed
LogoutRequest (Redirect by default, POST with ?binding=post), and the SLO endpoint where the
broker's LogoutRequest (from another service's or the school's logout) is answered and the
broker's LogoutResponse is shown.

`slo` in the settings: "answer" (default), "post" (answers, but its metadata names only an
HTTP-POST SingleLogoutService: the broker's answers to it are forms, not redirects),
"unframeable" (answers by HTTP-POST on a page sent with `X-Frame-Options: DENY`, as an SP behind
Spring Security's defaults does: inside the broker's logout iframe the browser refuses that page,
so the answer never leaves), "silent" (takes the request, never answers: a service that hangs),
"partial" (answers every request with a signed `Responder`/`PartialLogout`, as Shibboleth SP
does when it finds no session of its own: a logout it did not confirm) or "none" (no
SingleLogoutService in its metadata at all).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request, session, url_for
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.saml import NameID

from broker.demo import slo

_SESSION_LOGOUT = "logout_request"


def install_publisher_slo(
    app: Flask, client: Any, name: str, mode: str, received: Any, session_key: str
) -> None:
    events = slo.LogoutLog()

    def broker_idp() -> str:
        return str(sorted(client.metadata.identity_providers())[0])

    @app.get("/logout")
    def logout() -> Any:
        login = received.get(session.get(session_key, ""))
        if login is None:
            return jsonify({"error": "no login in this browser session"}), 404
        binding = slo.binding_asked(request)
        idp = broker_idp()
        name_id = NameID(
            text=login["name_id"]["value"],
            format=login["name_id"]["format"],
            name_qualifier=login["name_id"]["name_qualifier"],
            sp_name_qualifier=login["name_id"]["sp_name_qualifier"],
        )
        destination = slo.slo_destination(client, idp, "idpsso", binding)
        request_id, message = slo.logout_request(
            client, destination, binding, name_id, login.get("session_index")
        )
        session[_SESSION_LOGOUT] = request_id
        return slo.send(client, message, destination, binding, "", response=False)

    @app.route("/slo", methods=["GET", "POST"])
    def single_logout() -> Any:
        message = slo.inbound(request)
        if message is None:
            return _result(name, "failed", 400)
        try:
            verify = slo.redirect_verifier(client, broker_idp(), "idpsso")
            if message.kind == "request":
                return _answer(client, message, verify, mode, events, name)
            response = slo.read_response(client, message, verify)
        except Exception as err:
            events.add({"kind": "refused", "reason": type(err).__name__})
            return _result(name, "failed", 400)
        status = slo.status_of(response)
        events.add(
            {"kind": "response", "status": status, "in_response_to": response.in_response_to}
        )
        session.pop(_SESSION_LOGOUT, None)
        session.pop(session_key, None)
        return _result(name, status, 200)

    @app.get("/logouts.json")
    def logouts() -> Response:
        return jsonify(events.snapshot())


def _answer(
    client: Any, message: slo.Inbound, verify: Any, mode: str, events: slo.LogoutLog, name: str
) -> Any:
    parsed = slo.read_request(client, message, verify)
    slo.note_request(events, parsed, message.binding, answered=mode != "silent")
    if mode == "silent":
        return _result(name, "silent", 200)
    if mode == "unframeable":
        page = slo.answer(client, parsed, message, "idpsso", BINDING_HTTP_POST)
        page.headers["X-Frame-Options"] = "DENY"
        return page
    if mode == "partial":
        return slo.answer(client, parsed, message, "idpsso", status=slo.partial_logout())
    return slo.answer(client, parsed, message, "idpsso")


def _result(name: str, status: str, code: int) -> tuple[str, int]:
    return render_template("slo_result.html", name=name, status=status, home=url_for("home")), code


def slo_endpoints(base_url: str, mode: str) -> list[tuple[str, str]]:
    if mode == "none":
        return []
    location = base_url.rstrip("/") + "/slo"
    if mode == "post":
        return [(location, BINDING_HTTP_POST)]
    return [(location, BINDING_HTTP_REDIRECT), (location, BINDING_HTTP_POST)]
