"""School responses that are correctly signed but not valid SAML: the schema check's refusals.

The broker validates the school's Response against the SAML 2.0 schema once, in C, on the bytes
it received (broker/saml/schema.py), and tells pysaml2 to skip its own (pure-Python) copy of
that check. Each case here is signed by the school's real key, so only the schema can refuse it;
each is also checked against pysaml2's own validator, so nothing it refused is let through now.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import saml2.sigver
from saml2 import ExtensionElement, samlp
from saml2.xml.schema import XMLSchemaError
from saml2.xml.schema import validate as pysaml2_validate

from broker.saml import schema
from tests.security.test_saml_refusals import (  # noqa: F401  (module fixtures: demo, school)
    assert_refused,
    deliver,
    demo,
    forged,
    school,
    start_login,
)
from tests.support.forge import SAML, SchoolForger
from tests.support.live import LiveDemo


def _assertion_issued_yesterday_in_words(response: samlp.Response) -> None:
    response.assertion.issue_instant = "yesterday"


def _response_without_version(response: samlp.Response) -> None:
    response.version = None


def _assertion_without_issuer(response: samlp.Response) -> None:
    response.assertion.issuer = None


def _conditions_end_not_a_time(response: samlp.Response) -> None:
    response.assertion.conditions.not_on_or_after = "2099-13-45T99:00:00Z"


def _unknown_element_in_assertion(response: samlp.Response) -> None:
    response.assertion.extension_elements = [ExtensionElement("Smuggled", namespace=SAML, text="x")]


def _authn_instant_not_a_time(response: samlp.Response) -> None:
    response.assertion.authn_statement[0].authn_instant = "now"


CASES: dict[str, Callable[[samlp.Response], None]] = {
    "Assertion IssueInstant not a dateTime": _assertion_issued_yesterday_in_words,
    "Response without Version": _response_without_version,
    "Assertion without Issuer": _assertion_without_issuer,
    "Conditions NotOnOrAfter not a dateTime": _conditions_end_not_a_time,
    "unknown element in the Assertion": _unknown_element_in_assertion,
    "AuthnInstant not a dateTime": _authn_instant_not_a_time,
}


@pytest.mark.parametrize("case", list(CASES))
def test_signed_but_schema_invalid_response_is_refused(
    demo: LiveDemo,  # noqa: F811
    school: SchoolForger,  # noqa: F811
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login = start_login(demo)
    saml_response = forged(demo, school, login, tamper=CASES[case])
    xml = base64.b64decode(saml_response).decode()
    # What was refused before: pysaml2's own schema validator refuses it too.
    with pytest.raises(XMLSchemaError):
        pysaml2_validate(xml)
    page = deliver(demo, login, saml_response)
    assert_refused(demo, login.browser, page, caplog, ("schema_invalid",))


def test_a_valid_response_passes_both_validators(
    demo: LiveDemo,  # noqa: F811
    school: SchoolForger,  # noqa: F811
) -> None:
    login = start_login(demo)
    saml_response = forged(demo, school, login)
    xml = base64.b64decode(saml_response).decode()
    pysaml2_validate(xml)
    page = deliver(demo, login, saml_response)
    assert page.status == 200, page.text[:500]
    assert demo.answers_publisher(page)


def test_pysaml2_still_validates_outside_the_brokers_checked_block(
    demo: LiveDemo,  # noqa: F811
) -> None:
    """The skip reaches only the call the broker wraps: the demo's peers and any other
    pysaml2 user in the process keep pysaml2's own schema check."""
    assert demo.broker is not None  # the broker is built: schema.install() has run
    invalid = '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x"/>'
    with pytest.raises(XMLSchemaError):
        saml2.sigver.validate_doc_with_schema(invalid)
    with schema.prevalidated():
        saml2.sigver.validate_doc_with_schema(invalid)  # skipped: the caller validated
    with pytest.raises(XMLSchemaError):
        saml2.sigver.validate_doc_with_schema(invalid)
