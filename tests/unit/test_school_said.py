"""What a school's unsigned error status says, among the few a student's page words
(back.school_said): only the status codes' values count, second level first."""

from __future__ import annotations

import pytest
from lxml import etree

from broker.core.errors import SchoolSaid
from broker.saml.back import school_said

STATUS = "urn:oasis:names:tc:SAML:2.0:status:"


def response(*codes: str, message: str = "") -> etree._Element:
    """An error Response whose StatusCodes nest in `codes`' order, with a StatusMessage."""
    nested = "".join(f'<samlp:StatusCode Value="{STATUS}{c}">' for c in codes)
    nested += "</samlp:StatusCode>" * len(codes)
    text = f"<samlp:StatusMessage>{message}</samlp:StatusMessage>" if message else ""
    return etree.fromstring(
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="r" '
        f'Version="2.0" IssueInstant="2026-11-29T08:30:00Z"><samlp:Status>{nested}{text}'
        "</samlp:Status></samlp:Response>"
    )


@pytest.mark.parametrize(
    ("codes", "said"),
    [
        (("Responder", "AuthnFailed"), "authn_failed"),
        (("Requester", "AuthnFailed"), "authn_failed"),
        (("Responder", "RequestDenied"), "request_denied"),
        (("Responder", "NoAuthnContext"), "no_authn_context"),
        (("Requester", "InvalidNameIDPolicy"), "name_id_policy"),
        # A school that puts the reason at the top level (not SAML core's rule) is understood.
        (("AuthnFailed",), "authn_failed"),
        # Anything else says no more than "not signed in".
        (("Responder",), ""),
        (("Requester", "RequestUnsupported"), ""),
        (("Responder", "NoPassive"), ""),
        (("Responder", "NoAvailableIDP"), ""),
        ((), ""),
    ],
)
def test_the_page_words_a_few_status_codes(codes: tuple[str, ...], said: SchoolSaid) -> None:
    assert school_said(response(*codes)) == said


def test_a_status_message_is_never_read() -> None:
    assert school_said(response("Responder", message=f"{STATUS}AuthnFailed")) == ""
