"""Fuzz targets for Single Logout (saml/logout_messages.py): LogoutRequest and LogoutResponse,
Redirect and POST binding, at the IdP's and the SP's SLO endpoints. Whatever arrives, the
broker refuses it with its own error and answers below 500; a valid-looking message from a
registered peer (unsigned) is damaged at random so hypothesis gets past the first checks.
"""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from broker.core.errors import BrokerError
from broker.saml.logout_messages import LOGOUT_REQUEST, LOGOUT_RESPONSE, Received, read_logout
from tests.fuzz.conftest import FUZZ
from tests.fuzz.test_fuzz_parsers import SIG_ALGS, below_500, damaged, deflate, texts

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
ENDPOINTS = ("/saml/idp/slo", "/saml/sp/slo")


def _request(issuer: str, destination: str) -> bytes:
    return (
        f'<samlp:LogoutRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_l1" Version="2.0" '
        f'IssueInstant="2026-01-01T00:00:00Z" Destination="{destination}">'
        f"<saml:Issuer>{issuer}</saml:Issuer><saml:NameID>abc</saml:NameID>"
        "<samlp:SessionIndex>_s</samlp:SessionIndex></samlp:LogoutRequest>"
    ).encode()


def _response(issuer: str, destination: str) -> bytes:
    return (
        f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_r1" '
        f'Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="{destination}" '
        f'InResponseTo="_x"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status>'
        '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
        "</samlp:LogoutResponse>"
    ).encode()


@pytest.fixture(scope="module")
def originals(broker_app: Flask) -> list[bytes]:
    """Logout messages claiming to come from the demo's own publisher and school."""
    b = broker_app.extensions["ketenbroker"]
    service = b.view.service("leesplank")
    school = b.view.school("99XX00")
    assert service is not None and school is not None
    idp_slo = b.settings.url("/saml/idp/slo")
    sp_slo = b.settings.url("/saml/sp/slo")
    return [
        _request(service.entity_id, idp_slo),
        _response(service.entity_id, idp_slo),
        _request(school.idp_entity_id, sp_slo),
        _response(school.idp_entity_id, sp_slo),
    ]


def _message_inputs(originals: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(originals),
        st.sampled_from(originals).flatmap(damaged),
        st.binary(max_size=512),
    )


@FUZZ
@given(data=st.data())
def test_logout_redirect_binding(
    client: FlaskClient, originals: list[bytes], data: st.DataObject
) -> None:
    xml = data.draw(_message_inputs(originals))
    param = data.draw(st.sampled_from(["SAMLRequest", "SAMLResponse"]))
    query = {param: deflate(xml)}
    for name, strategy in (
        ("RelayState", texts),
        ("SigAlg", st.one_of(st.sampled_from(SIG_ALGS), texts)),
        ("Signature", texts),
    ):
        value = data.draw(st.one_of(st.none(), strategy))
        if value is not None:
            query[name] = value
    below_500(client.get(data.draw(st.sampled_from(ENDPOINTS)), query_string=query))


@FUZZ
@given(data=st.data())
def test_logout_post_binding(
    client: FlaskClient, originals: list[bytes], data: st.DataObject
) -> None:
    xml = data.draw(_message_inputs(originals))
    param = data.draw(st.sampled_from(["SAMLRequest", "SAMLResponse"]))
    form = {param: base64.b64encode(xml).decode()}
    relay_state = data.draw(st.one_of(st.none(), texts))
    if relay_state is not None:
        form["RelayState"] = relay_state
    below_500(client.post(data.draw(st.sampled_from(ENDPOINTS)), data=form))


@FUZZ
@given(data=st.data())
def test_read_logout_refuses_with_broker_errors(
    broker_app: Flask, originals: list[bytes], data: st.DataObject
) -> None:
    """The reader itself: only the broker's own errors come out (never pysaml2's, never a
    crash), and nothing unsigned is ever accepted."""
    b = broker_app.extensions["ketenbroker"]
    xml = data.draw(_message_inputs(originals))
    kind = data.draw(st.sampled_from([LOGOUT_REQUEST, LOGOUT_RESPONSE]))
    binding = data.draw(st.sampled_from(["redirect", "post"]))
    value = deflate(xml) if binding == "redirect" else base64.b64encode(xml).decode()
    urn = f"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-{'Redirect' if binding == 'redirect' else 'POST'}"
    for entity, role, path in (
        (b.saml_entities.server, "spsso", "/saml/idp/slo"),
        (b.saml_entities.client, "idpsso", "/saml/sp/slo"),
    ):
        with pytest.raises(BrokerError):
            read_logout(
                entity,
                role,
                Received(urn, value),
                kind,
                destination=b.settings.url(path),
                max_age=900,
                skew=60,
            )
