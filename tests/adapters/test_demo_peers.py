"""The demo publisher SP logs in directly at the demo school IdP: both are real pysaml2 peers."""

from __future__ import annotations

import base64
import html
import re
import stat
import warnings
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

# pysaml2 7.5.5 touches cryptography's deprecated CFB mode when saml2.server is imported; under
# filterwarnings=error that import would fail collection until pyproject ignores that warning.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import saml2.server  # noqa: F401

from broker.certificates import self_signed_pair, write_pair
from broker.demo.publisher_sp import (
    PublisherSpSettings,
    create_publisher_sp_app,
    publisher_sp_metadata,
)
from broker.demo.school_idp import (
    DEMO_USERS,
    SchoolIdpSettings,
    create_school_idp_app,
    school_idp_metadata,
)

IDP_URL = "http://localhost:9101"
SP_URL = "http://127.0.0.1:9102"
IDP_ENTITY = f"{IDP_URL}/metadata"
SP_ENTITY = f"{SP_URL}/metadata"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"


class Peers:
    def __init__(self, tmp_path: Path) -> None:
        write_pair(tmp_path / "idp.key", tmp_path / "idp.crt", "demo school idp")
        write_pair(tmp_path / "sp.key", tmp_path / "sp.crt", "demo publisher sp")
        sp_base = PublisherSpSettings(
            base_url=SP_URL,
            entity_id=SP_ENTITY,
            name="Uitgeverij Demo",
            key_file=tmp_path / "sp.key",
            cert_file=tmp_path / "sp.crt",
            idp_metadata=(),
            requested_attributes=("givenName", "eckId"),
        )
        self.idp_settings = SchoolIdpSettings(
            base_url=IDP_URL,
            entity_id=IDP_ENTITY,
            key_file=tmp_path / "idp.key",
            cert_file=tmp_path / "idp.crt",
            sp_metadata=(publisher_sp_metadata(sp_base),),
            school_name="Demo Lyceum",
            brin="99XX00",
            users=DEMO_USERS,
        )
        self.sp_settings = PublisherSpSettings(
            base_url=sp_base.base_url,
            entity_id=sp_base.entity_id,
            name=sp_base.name,
            key_file=sp_base.key_file,
            cert_file=sp_base.cert_file,
            idp_metadata=(school_idp_metadata(self.idp_settings),),
            requested_attributes=sp_base.requested_attributes,
        )
        self.idp = create_school_idp_app(self.idp_settings).test_client()
        self.sp = create_publisher_sp_app(self.sp_settings).test_client()


@pytest.fixture
def peers(tmp_path: Path) -> Peers:
    return Peers(tmp_path)


def _form_fields(page: str) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


def _form_action(page: str) -> str:
    match = re.search(r'<form id="saml-post" method="post" action="([^"]+)"', page)
    assert match is not None
    return html.unescape(match.group(1))


def _start_login(peers: Peers, query: str = "") -> tuple[str, dict[str, list[str]]]:
    """SP /login → the Redirect-binding AuthnRequest; then show it to the IdP."""
    start = peers.sp.get(f"/login{query}")
    assert start.status_code == 303
    location = urlsplit(start.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP_URL}/sso"
    return f"{location.path}?{location.query}", parse_qs(location.query)


def _pick_and_post(peers: Peers, uid: str, query: str = "") -> tuple[str, dict[str, str]]:
    path, params = _start_login(peers, query)
    assert "SAMLRequest" in params and "RelayState" in params
    picker = peers.idp.get(path)
    assert picker.status_code == 200
    page = picker.get_data(as_text=True)
    assert "Demo school: who are you?" in page
    for user in DEMO_USERS:
        assert user.display_name in html.unescape(page)
    fields = _form_fields(page)
    chosen = peers.idp.post("/sso/pick", data={"pending": fields["pending"], "uid": uid})
    assert chosen.status_code == 200
    post_page = chosen.get_data(as_text=True)
    assert _form_action(post_page) == f"{SP_URL}/acs"
    response_fields = _form_fields(post_page)
    assert response_fields["RelayState"] == params["RelayState"][0]
    return post_page, response_fields


def test_metadata_announces_bindings_and_signing(peers: Peers) -> None:
    idp_md = school_idp_metadata(peers.idp_settings)
    assert "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" in idp_md
    assert "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" in idp_md
    assert 'use="signing"' in idp_md
    sp_md = publisher_sp_metadata(peers.sp_settings)
    assert 'AuthnRequestsSigned="false"' in sp_md
    assert 'WantAssertionsSigned="true"' in sp_md
    assert f'Location="{SP_URL}/acs"' in sp_md
    assert 'Name="urn:oid:2.5.4.42"' in sp_md and 'FriendlyName="eckId"' in sp_md
    assert peers.idp.get("/metadata").status_code == 200
    assert peers.sp.get("/metadata").mimetype == "application/samlmetadata+xml"


def test_direct_login_shows_name_id_and_attributes(peers: Peers) -> None:
    student = DEMO_USERS[0]
    _, fields = _pick_and_post(peers, student.uid)
    decoded = base64.b64decode(fields["SAMLResponse"]).decode()
    # Response and assertion both signed, RSA-SHA256.
    assert (
        decoded.count(
            'SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"'
        )
        == 2
    )
    assert f'Destination="{SP_URL}/acs"' in decoded

    received_page = peers.sp.post("/acs", data=fields)
    page = html.unescape(received_page.get_data(as_text=True))
    assert received_page.status_code == 200, page
    assert "What Uitgeverij Demo received" in page
    assert PERSISTENT in page
    assert student.given_name in page and student.family_name in page

    received = peers.sp.get("/received.json").get_json()
    name_id = received["name_id"]
    assert name_id["format"] == PERSISTENT
    assert name_id["name_qualifier"] == IDP_ENTITY
    assert name_id["sp_name_qualifier"] == SP_ENTITY
    assert name_id["value"] in page
    assert received["issuer"] == IDP_ENTITY
    by_friendly = {a["friendly_name"]: a for a in received["attributes"]}
    assert by_friendly["givenName"] == {
        "name": "urn:oid:2.5.4.42",
        "friendly_name": "givenName",
        "name_format": URI,
        "values": [student.given_name],
    }
    assert by_friendly["isMemberOf"]["name"] == "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"
    assert by_friendly["eduPersonAffiliation"]["values"] == ["student"]
    assert by_friendly["nlEduPersonHomeOrganizationId"]["values"] == ["99XX00"]
    assert by_friendly["nlEduPersonHomeOrganizationId"]["name_format"] == UNSPECIFIED
    assert by_friendly["nlEduPersonHomeOrganization"]["values"] == ["Demo Lyceum"]
    assert by_friendly["nlEduPersonProfileId"]["values"] == [student.student_number]
    assert by_friendly["eckId"]["values"] == [student.eck_id]
    for attribute in received["attributes"]:
        assert attribute["name"] in page


def test_name_id_is_stable_per_user_and_differs_between_users(peers: Peers) -> None:
    seen = []
    for uid in (DEMO_USERS[0].uid, DEMO_USERS[1].uid, DEMO_USERS[0].uid):
        _, fields = _pick_and_post(peers, uid)
        assert peers.sp.post("/acs", data=fields).status_code == 200
        seen.append(peers.sp.get("/received.json").get_json()["name_id"]["value"])
    assert seen[0] == seen[2] != seen[1]


def test_teacher_has_no_eck_id_or_student_number(peers: Peers) -> None:
    teacher = next(u for u in DEMO_USERS if u.affiliation == "employee")
    _, fields = _pick_and_post(peers, teacher.uid)
    assert peers.sp.post("/acs", data=fields).status_code == 200
    names = {a["friendly_name"] for a in peers.sp.get("/received.json").get_json()["attributes"]}
    assert "eckId" not in names and "nlEduPersonProfileId" not in names
    assert "givenName" in names


def test_school_hint_travels_as_scoping(peers: Peers) -> None:
    hint = "https://school.example/idp"
    home = peers.sp.get(f"/?school={hint}").get_data(as_text=True)
    assert "Log in via your school (Ketenbroker)" in home
    assert hint in home
    _, params = _start_login(peers, f"?school={hint}")
    request_xml = zlib.decompress(base64.b64decode(params["SAMLRequest"][0]), -15).decode()
    assert "IDPList" in request_xml and hint in request_xml


def test_tampered_response_is_refused(peers: Peers) -> None:
    _, fields = _pick_and_post(peers, DEMO_USERS[2].uid)
    decoded = base64.b64decode(fields["SAMLResponse"]).decode()
    assert "Fatima" in decoded
    tampered = decoded.replace("Fatima", "Mallory")
    fields["SAMLResponse"] = base64.b64encode(tampered.encode()).decode()
    refused = peers.sp.post("/acs", data=fields)
    assert refused.status_code == 403
    assert "refused the response: SignatureError" in refused.get_data(as_text=True)
    assert peers.sp.get("/received.json").status_code == 404


def test_idp_accepts_post_binding(peers: Peers) -> None:
    _, params = _start_login(peers)
    request_xml = zlib.decompress(base64.b64decode(params["SAMLRequest"][0]), -15)
    picker = peers.idp.post(
        "/sso",
        data={
            "SAMLRequest": base64.b64encode(request_xml).decode(),
            "RelayState": params["RelayState"][0],
        },
    )
    assert picker.status_code == 200
    fields = _form_fields(picker.get_data(as_text=True))
    chosen = peers.idp.post(
        "/sso/pick", data={"pending": fields["pending"], "uid": DEMO_USERS[1].uid}
    )
    response_fields = _form_fields(chosen.get_data(as_text=True))
    assert response_fields["RelayState"] == params["RelayState"][0]
    assert peers.sp.post("/acs", data=response_fields).status_code == 200


def test_error_status_is_shown(peers: Peers) -> None:
    from saml2.server import Server

    from broker.demo.school_idp import _idp_config

    _, params = _start_login(peers)
    request_xml = zlib.decompress(base64.b64decode(params["SAMLRequest"][0]), -15).decode()
    match = re.search(r' ID="([^"]+)"', request_xml)
    assert match is not None
    server = Server(config=_idp_config(peers.idp_settings))
    denied = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
    error = server.create_error_response(
        match.group(1),
        f"{SP_URL}/acs",
        (denied, "Your school has not released this"),
        sign=True,
        sign_alg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        digest_alg="http://www.w3.org/2001/04/xmlenc#sha256",
    )
    shown = peers.sp.post(
        "/acs",
        data={"SAMLResponse": base64.b64encode(str(error).encode()).decode(), "RelayState": "x"},
    )
    page = shown.get_data(as_text=True)
    assert shown.status_code == 403
    assert "urn:oasis:names:tc:SAML:2.0:status:Responder" in page
    assert denied in page
    assert "Your school has not released this" in page


def test_response_without_outstanding_request_is_refused(peers: Peers) -> None:
    _, fields = _pick_and_post(peers, DEMO_USERS[0].uid)
    other_browser = create_publisher_sp_app(peers.sp_settings).test_client()
    refused = other_browser.post("/acs", data=fields)
    assert refused.status_code == 403


def test_replayed_pick_is_refused(peers: Peers) -> None:
    path, _ = _start_login(peers)
    fields = _form_fields(peers.idp.get(path).get_data(as_text=True))
    data = {"pending": fields["pending"], "uid": DEMO_USERS[0].uid}
    assert peers.idp.post("/sso/pick", data=data).status_code == 200
    assert peers.idp.post("/sso/pick", data=data).status_code == 400


def test_idp_refuses_garbage_request(peers: Peers) -> None:
    assert peers.idp.get("/sso?SAMLRequest=bm90LXNhbWw%3D").status_code == 400
    assert peers.idp.get("/sso").status_code == 400


def test_certificates_pair_and_key_mode(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key_pem, cert_pem = self_signed_pair("unit test", days=2)
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert key.key_size == 2048  # type: ignore[union-attr]
    assert cert.subject == cert.issuer
    assert "unit test" in cert.subject.rfc4514_string()
    write_pair(tmp_path / "k" / "a.key", tmp_path / "a.crt", "x")
    assert stat.S_IMODE((tmp_path / "k" / "a.key").stat().st_mode) == 0o600
