"""Single Logout for the demo's pysaml2 peers (the school IdP and the publisher SPs).

They stand in for outside parties, so they do what a plain pysaml2 deployment does: read a
logout message with pysaml2 (the Redirect binding's query signature checked by passing SigAlg
and Signature, the POST binding's XML signature by pysaml2 itself), refuse unsigned ones, and
answer with signed messages. Which sessions a peer ended is kept in memory for the demo pages
(and the tests) to show.
"""

from __future__ import annotations

import base64
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from flask import Request, redirect, render_template
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.saml import NameID
from saml2.samlp import (
    STATUS_RESPONDER,
    STATUS_SUCCESS,
    Status,
    StatusCode,
    logout_request_from_string,
    logout_response_from_string,
)
from saml2.sigver import verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from werkzeug.wrappers import Response

STATUS_PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
_MAX_EVENTS = 1000


@dataclass
class LogoutLog:
    """What this peer heard and said about logouts, newest last (a demo keeps it in memory)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)
            del self.events[:-_MAX_EVENTS]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)


@dataclass(frozen=True)
class Inbound:
    binding: str
    kind: str  # "request" or "response"
    value: str
    relay_state: str | None
    sigalg: str | None
    signature: str | None


def inbound(request: Request) -> Inbound | None:
    values = request.args if request.method == "GET" else request.form
    binding = BINDING_HTTP_REDIRECT if request.method == "GET" else BINDING_HTTP_POST
    for kind, name in (("request", "SAMLRequest"), ("response", "SAMLResponse")):
        if values.get(name):
            return Inbound(
                binding,
                kind,
                values[name],
                values.get("RelayState"),
                request.args.get("SigAlg"),
                request.args.get("Signature"),
            )
    return None


def read_request(entity: Any, message: Inbound, verify_redirect: Any) -> Any:
    """The verified LogoutRequest (pysaml2 object); raises for a bad or unsigned one. Over
    HTTP-Redirect the query signature is checked with `verify_redirect` (redirect_verifier):
    pysaml2's parse_logout_request does not check it with these peers' configuration."""
    _check_redirect_signature(message, "SAMLRequest", verify_redirect)
    parsed = entity.parse_logout_request(
        message.value,
        message.binding,
        relay_state=message.relay_state,
        sigalg=message.sigalg,
        signature=message.signature,
    )
    if parsed is None:
        raise ValueError("LogoutRequest refused")
    if message.binding == BINDING_HTTP_POST and parsed.message.signature is None:
        raise ValueError("unsigned LogoutRequest")
    return parsed.message


def read_response(entity: Any, message: Inbound, verify_redirect: Any) -> Any:
    """The verified LogoutResponse (pysaml2 object); raises for a bad or unsigned one."""
    _check_redirect_signature(message, "SAMLResponse", verify_redirect)
    parsed = entity.parse_logout_request_response(message.value, message.binding)
    if parsed is None:
        raise ValueError("LogoutResponse refused")
    if message.binding == BINDING_HTTP_POST and parsed.response.signature is None:
        raise ValueError("unsigned LogoutResponse")
    return parsed.response


def _check_redirect_signature(message: Inbound, name: str, verify_redirect: Any) -> None:
    """An HTTP-Redirect message's query signature, as pysaml2 deployments check it."""
    if message.binding != BINDING_HTTP_REDIRECT:
        return
    signed = {name: message.value, "SigAlg": message.sigalg or ""}
    signed["Signature"] = message.signature or ""
    if message.relay_state is not None:
        signed["RelayState"] = message.relay_state
    if not message.signature or not verify_redirect(signed):
        raise ValueError(f"{name} signature invalid")


def redirect_verifier(entity: Any, peer_entity_id: str, role: str) -> Any:
    def verify(signed: dict[str, str]) -> bool:
        certs = entity.metadata.certs(peer_entity_id, role, "signing")
        return any(
            verify_redirect_signature(signed, entity.sec.sec_backend, cert) for _, cert in certs
        )

    return verify


def send(
    entity: Any, message: Any, destination: str, binding: str, relay_state: str, *, response: bool
) -> Response:
    """Carry a message to `destination`: signed query string (Redirect) or signed XML (POST)."""
    param = "SAMLResponse" if response else "SAMLRequest"
    if binding == BINDING_HTTP_REDIRECT:
        info = entity.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(message),
            destination,
            relay_state,
            response=response,
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        return redirect(dict(info["headers"])["Location"], code=303)
    return Response(
        render_template(
            "slo_post.html",
            action=destination,
            name=param,
            value=base64.b64encode(str(message).encode()).decode("ascii"),
            relay_state=relay_state or None,
        )
    )


def logout_request(
    entity: Any, destination: str, binding: str, name_id: NameID, session_index: str | None
) -> tuple[str, Any]:
    """(id, request): XML-signed for POST; for Redirect the query string is signed instead."""
    request_id, message = entity.create_logout_request(
        destination,
        issuer_entity_id=None,
        name_id=name_id,
        session_indexes=[session_index] if session_index else None,
        sign=binding == BINDING_HTTP_POST,
        sign_alg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
    )
    return str(request_id), message


def logout_response(entity: Any, request: Any, binding: str, status: Any = None) -> Any:
    """The signed answer to `request` (its destination from the sender's metadata): Success,
    or `status` (`partial_logout`)."""
    return entity.create_logout_response(
        request,
        [binding],
        status=status,
        sign=binding == BINDING_HTTP_POST,
        sign_alg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
    )


def partial_logout() -> Any:
    """`Responder` with the second-level `PartialLogout`: what Shibboleth SP answers a
    LogoutRequest that finds no session of its own (SAML core 3.7.3.2)."""
    return Status(
        status_code=StatusCode(
            value=STATUS_RESPONDER, status_code=StatusCode(value=STATUS_PARTIAL_LOGOUT)
        )
    )


def status_of(response: Any) -> str:
    """ "success", "partial" or "failed" for a LogoutResponse."""
    code = response.status.status_code if response.status is not None else None
    if code is None or code.value != STATUS_SUCCESS:
        return "failed"
    inner = code.status_code
    return "partial" if inner is not None and inner.value == STATUS_PARTIAL_LOGOUT else "success"


def slo_destination(entity: Any, peer_entity_id: str, role: str, binding: str) -> str:
    endpoints = entity.metadata.single_logout_service(peer_entity_id, binding, role)
    if not endpoints:
        raise ValueError("peer has no SingleLogoutService for this binding")
    return str(endpoints[0]["location"])


def note_request(events: LogoutLog, parsed: Any, binding: str, **extra: Any) -> None:
    events.add(
        {
            "kind": "request",
            "name_id": parsed.name_id.text if parsed.name_id is not None else None,
            "session_index": [s.text for s in parsed.session_index],
            "binding": binding,
            **extra,
        }
    )


def answer(
    entity: Any,
    parsed: Any,
    message: Inbound,
    peer_role: str,
    binding: str | None = None,
    status: Any = None,
) -> Response:
    """Answer a verified LogoutRequest with a signed Success (or `status`), by the binding it
    came with (or `binding`)."""
    binding = binding or message.binding
    destination = slo_destination(entity, parsed.issuer.text, peer_role, binding)
    response = logout_response(entity, parsed, binding, status)
    return send(entity, response, destination, binding, message.relay_state or "", response=True)


def issuer_of(message: Inbound) -> str:
    """The claimed issuer of a LogoutRequest or LogoutResponse, to pick the keys its signature
    must verify with."""
    raw = base64.b64decode(message.value)
    xml = (zlib.decompress(raw, -15) if message.binding == BINDING_HTTP_REDIRECT else raw).decode()
    # pysaml2's readers give None for a message of the other kind.
    parsed = logout_request_from_string(xml) or logout_response_from_string(xml)
    if parsed is None or parsed.issuer is None or not parsed.issuer.text:
        raise ValueError("logout message without an Issuer")
    return str(parsed.issuer.text).strip()


def binding_asked(request: Request) -> str:
    """The binding a demo "Log out" link asks for: ?binding=post, else Redirect."""
    post = request.args.get("binding") == "post"
    return str(BINDING_HTTP_POST if post else BINDING_HTTP_REDIRECT)
