"""Errors of the broker's one SOAP endpoint, `/saml/sp/slo/soap` (saml_soap_logout_routes.py):
a school's IdP calls it server to server and parses a SOAP envelope, so every error of that
route is a SOAP 1.1 fault (text/xml), never a student's HTML page. A message the broker cannot
take gets HTTP 500 (SOAP 1.1, 6.2; `Client`, `MustUnderstand`, or `Server` when the broker
failed); so does every other HTTP-level error of the route (a body over the cap, a 404, an
unhandled error...: SAML bindings 3.2.3.3 asks HTTP 500 with a fault for an error found before
the SAML processor has the message, not its own status). Only another method than POST keeps
its 405, with its Allow: no SOAP request was made at all. Over the rate limit is a 500 fault
with Retry-After (the route's own handler, saml_soap_logout_routes.py). The app's error
handlers (errors.py) send the route's errors here; the rest of the app keeps its pages. Each is
counted and logged with its reason code only.
"""

from __future__ import annotations

import logging

from werkzeug.wrappers import Response

from broker.core.errors import BrokerError
from broker.saml.entities import SP_SOAP_SLO_PATH
from broker.saml.logout_soap import (
    FAULT_CLIENT,
    FAULT_MUST_UNDERSTAND,
    FAULT_SERVER,
    SOAP_CONTENT_TYPE,
    soap_fault,
)
from broker.web import metrics

log = logging.getLogger("broker.logout")

TOO_LARGE = "message_too_large"
METHOD_NOT_ALLOWED = 405

# The reason codes an HTTP error of the endpoint is answered (and counted) with.
_REASONS = {METHOD_NOT_ALLOWED: "method_not_allowed", 413: TOO_LARGE}


def fault_status(status: int) -> int:
    """The HTTP status a fault for the HTTP error `status` is sent with. SAML bindings 3.2.3.3:
    an error of the SOAP layer, found before the SAML processor has the message, is HTTP 500
    with a fault, whatever the error (413, 404, 415, 400, 503...); only 405 (not a POST: no
    SOAP request was made) keeps its status, and its Allow."""
    return status if status == METHOD_NOT_ALLOWED else 500


def answers_soap(path: str) -> bool:
    return path == SP_SOAP_SLO_PATH


def http_error_reason(status: int) -> str:
    """The fault's reason code for an HTTP error `status`."""
    return _REASONS.get(status, "server_error" if status >= 500 else "http_error")


def soap_refusal(refusal: BrokerError) -> Response:
    """A fault for a message the broker does not take: HTTP 500 (bindings 3.2.3.3), also when it
    is over the cap (whether its Content-Length said so or its reading ran past it)."""
    note_soap_refusal(refusal.code)
    if refusal.code == "soap_header":
        code = FAULT_MUST_UNDERSTAND
    else:
        code = FAULT_CLIENT if refusal.status < 500 else FAULT_SERVER
    return soap_response(soap_fault(code, refusal.code), 500)


def soap_http_error(status: int, headers: list[tuple[str, str]]) -> Response:
    """A fault for an HTTP error `status` (sent as `fault_status` says): `Server` when the
    broker failed (the same message may succeed later), `Client` otherwise; `headers`: the
    error's own (the Allow of a 405)."""
    reason = http_error_reason(status)
    note_soap_refusal(reason)
    code = FAULT_SERVER if status >= 500 else FAULT_CLIENT
    response = soap_response(soap_fault(code, reason), fault_status(status))
    for name, value in headers:
        response.headers[name] = value
    return response


def note_soap_refusal(code: str) -> None:
    metrics.school_logout_soap(code)
    # The reason code only: never the issuer's text, the NameID or the message.
    log.warning("school logout by soap refused code=%s", code)


def soap_response(body: str, status: int) -> Response:
    response = Response(body, status=status)
    response.headers["Content-Type"] = SOAP_CONTENT_TYPE
    # Bindings 3.2.3.2: a SOAP answer is not cached.
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["Pragma"] = "no-cache"
    return response
