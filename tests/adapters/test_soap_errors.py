"""The SOAP endpoint's HTTP errors (soap_errors.py): SAML bindings 3.2.3.3 answers each with
HTTP 500 and a fault, except another method than POST (405, with its Allow)."""

from __future__ import annotations

import pytest

from broker.saml.logout_soap import SOAP_CONTENT_TYPE
from broker.web.soap_errors import fault_status, soap_http_error


@pytest.mark.parametrize(
    ("status", "fault"),
    [
        *((status, "Client") for status in (400, 404, 413, 415, 429)),
        *((status, "Server") for status in (500, 502, 503)),
    ],
)
def test_every_http_error_but_405_is_a_500_fault(status: int, fault: str) -> None:
    assert fault_status(status) == 500
    response = soap_http_error(status, [])
    assert response.status_code == 500
    assert response.headers["Content-Type"] == SOAP_CONTENT_TYPE
    body = response.get_data(as_text=True)
    assert f"<faultcode>soap11:{fault}</faultcode>" in body
    assert "<html" not in body.lower()


def test_405_keeps_its_status_and_its_allow() -> None:
    assert fault_status(405) == 405
    response = soap_http_error(405, [("Allow", "POST")])
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    body = response.get_data(as_text=True)
    assert "<faultcode>soap11:Client</faultcode>" in body
    assert "<faultstring>method_not_allowed</faultstring>" in body


def test_the_error_headers_go_along_with_the_500() -> None:
    """A 429 reaching this handler (not the route's own rate-limit handler) keeps its
    Retry-After, sent with 500 as every other error."""
    response = soap_http_error(429, [("Retry-After", "30")])
    assert response.status_code == 500
    assert response.headers["Retry-After"] == "30"
