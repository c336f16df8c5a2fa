"""A peer's LogoutResponse status (broker/saml/logout_messages.py): read by pysaml2 with all
of its checks but the status's, and carried to the log by its standard names only."""

from __future__ import annotations

import inspect

import pytest
from saml2.entity import Entity
from saml2.response import LogoutResponse, StatusResponse

from broker.saml.firewall import status_names
from broker.saml.logout_messages import LOGOUT_RESPONSE, LogoutMessage, _StatusLeftToTheBroker


def test_the_reader_is_pysaml2s_own_but_for_the_status() -> None:
    """`parse_checked` calls what pysaml2's `parse_logout_request_response` calls, with the
    reader that leaves the status to the broker: a pysaml2 that reads LogoutResponses
    otherwise must be looked at again (tests/flows/test_logout_not_confirmed.py)."""
    source = inspect.getsource(Entity.parse_logout_request_response)
    assert 'self._parse_response(xmlstr, LogoutResponse, "single_logout_service", binding)' in (
        source
    )
    assert issubclass(_StatusLeftToTheBroker, LogoutResponse)
    # Only the status check is its own; pysaml2's raises for every status but Success.
    overridden = {
        name for name, value in vars(_StatusLeftToTheBroker).items() if inspect.isfunction(value)
    }
    assert overridden == {"status_ok"}
    assert "err_cls(msg)" in inspect.getsource(StatusResponse.status_ok)


@pytest.mark.parametrize(
    ("top", "second", "logged"),
    [
        ("urn:oasis:names:tc:SAML:2.0:status:Responder", "", "Responder"),
        (
            "urn:oasis:names:tc:SAML:2.0:status:Responder",
            "urn:oasis:names:tc:SAML:2.0:status:PartialLogout",
            "Responder/PartialLogout",
        ),
        ("urn:oasis:names:tc:SAML:2.0:status:Requester", "urn:x:mine", "Requester/other"),
        ("urn:oasis:names:tc:SAML:2.0:status:Responder\nfake=line", "", "other"),
        ("", "", "other"),
    ],
)
def test_a_status_reaches_the_log_only_by_its_standard_names(
    top: str, second: str, logged: str
) -> None:
    assert status_names(top, second) == logged


@pytest.mark.parametrize(
    ("signed", "success", "partial", "confirms"),
    [
        (True, True, False, True),
        (True, True, True, False),  # Success/PartialLogout: other sessions may stand
        (True, False, True, False),
        (True, False, False, False),
        (False, True, False, False),  # unsigned: anyone could have sent it
        (False, False, False, False),
    ],
)
def test_only_a_signed_whole_success_confirms_a_logout(
    signed: bool, success: bool, partial: bool, confirms: bool
) -> None:
    """The rule the school logout route only asks (`LogoutMessage.confirms`)."""
    message = LogoutMessage(
        LOGOUT_RESPONSE,
        "https://idp.school.example",
        "_r1",
        0.0,
        "",
        in_response_to="_q1",
        success=success,
        partial=partial,
        signed=signed,
    )
    assert message.confirms is confirms
