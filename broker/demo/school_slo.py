"""The demo school's Single Logout: the broker tells the school a student logged out
(LogoutRequest at /slo, answered with a signed LogoutResponse), and the school can start a
logout itself (/logout?uid=…, Redirect or ?binding=post) for the latest session it issued; with
?binding=soap it sends the LogoutRequest to the broker server to server (the SOAP binding, as
Shibboleth IdP's back-channel logout propagation does) and shows the broker's SOAP answer as
it came.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from flask import Flask, Response, jsonify, render_template, request
from saml2 import BINDING_HTTP_POST, BINDING_SOAP
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.samlp import response_from_string

from broker.demo import slo

_MAX_SESSIONS = 1000
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
# SAML bindings 3.2.3.3: the SOAPAction a SAML requester may send.
SOAP_ACTION = '"http://www.oasis-open.org/committees/security"'


class IssuedSessions:
    """The latest session this school issued per (user, service): what a logout names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, str]] = {}

    def note(self, uid: str, signed_response: str) -> None:
        response = response_from_string(signed_response)
        assertion = response.assertion[0]
        statement = assertion.authn_statement[0] if assertion.authn_statement else None
        name_id = assertion.subject.name_id
        with self._lock:
            self._items[uid] = {
                "name_id": name_id.text,
                "name_qualifier": name_id.name_qualifier or "",
                "sp_name_qualifier": name_id.sp_name_qualifier or "",
                "session_index": statement.session_index if statement is not None else "",
                "sp": response.destination or "",
                "audience": name_id.sp_name_qualifier or "",
            }
            while len(self._items) > _MAX_SESSIONS:
                self._items.pop(next(iter(self._items)))

    def get(self, uid: str) -> dict[str, str] | None:
        with self._lock:
            return self._items.get(uid)


def install_school_slo(app: Flask, server: Any, school_name: str, sessions: IssuedSessions) -> None:
    events = slo.LogoutLog()

    @app.get("/logout")
    def logout() -> Any:
        issued = sessions.get(request.args.get("uid", ""))
        if issued is None:
            return jsonify({"error": "no session issued for this user"}), 404
        soap = request.args.get("binding") == "soap"
        binding = BINDING_SOAP if soap else slo.binding_asked(request)
        sp = issued["audience"]
        name_id = NameID(
            text=issued["name_id"],
            format=NAMEID_FORMAT_PERSISTENT,
            name_qualifier=issued["name_qualifier"] or None,
            sp_name_qualifier=issued["sp_name_qualifier"] or None,
        )
        destination = slo.slo_destination(server, sp, "spsso", binding)
        # `?session_index=omit`: a request that names the NameID alone (SAML allows it; some
        # IdPs send no SessionIndex), for the broker's tests of that case.
        omit = request.args.get("session_index") == "omit"
        session_index = None if omit else issued["session_index"]
        if soap:
            # Signed as for POST (an enveloped XML signature); the envelope goes round it.
            _, message = slo.logout_request(
                server, destination, BINDING_HTTP_POST, name_id, session_index
            )
            return _post_soap(destination, str(message))
        _, message = slo.logout_request(server, destination, binding, name_id, session_index)
        return slo.send(server, message, destination, binding, "", response=False)

    @app.route("/slo", methods=["GET", "POST"])
    def single_logout() -> Any:
        message = slo.inbound(request)
        if message is None:
            return _result(school_name, "failed", 400)
        try:
            if message.kind == "request":
                verify = slo.redirect_verifier(server, slo.issuer_of(message), "spsso")
                parsed = slo.read_request(server, message, verify)
                slo.note_request(events, parsed, message.binding)
                return slo.answer(server, parsed, message, "spsso")
            sp = slo.issuer_of(message)
            response = slo.read_response(
                server, message, slo.redirect_verifier(server, sp, "spsso")
            )
        except Exception as err:
            events.add({"kind": "refused", "reason": type(err).__name__})
            return _result(school_name, "failed", 400)
        status = slo.status_of(response)
        events.add({"kind": "response", "status": status})
        return _result(school_name, status, 200)

    @app.get("/logouts.json")
    def logouts() -> Response:
        return jsonify(events.snapshot())


def _result(name: str, status: str, code: int) -> tuple[str, int]:
    return render_template("slo_result.html", name=name, status=status, home=None), code


def _post_soap(destination: str, signed_xml: str) -> Response:
    """POST the signed LogoutRequest in a SOAP 1.1 envelope; the broker's answer as it came."""
    if signed_xml.startswith("<?xml"):
        signed_xml = signed_xml.split("?>", 1)[1].lstrip()
    body = (
        f'<soap11:Envelope xmlns:soap11="{SOAP_ENV}">'
        f"<soap11:Body>{signed_xml}</soap11:Body></soap11:Envelope>"
    )
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}
    answer = requests.post(destination, data=body.encode(), headers=headers, timeout=10)
    return Response(answer.content, status=answer.status_code, mimetype="text/xml")
