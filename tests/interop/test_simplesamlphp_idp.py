"""A school whose IdP is SimpleSAMLphp (Debian's 1.19.7 behind Apache with mod_php) signs a
student in through the broker to the demo's Leesplank, configured as docs/schools.md says
(tests/support/simplesamlphp_idp.py reads the doc's settings), registered with
`ketenbroker school add --saml-metadata` from the metadata SimpleSAMLphp makes for itself.

What it shows: SimpleSAMLphp's signed Response (the whole Response signed, a persistent NameID, `urn:oid:` attributes) is accepted, the publisher receives a pseudonym and
the attributes the school released; a logout at the publisher reaches SimpleSAMLphp, which
answers with a signed LogoutResponse and ends its session.
"""

from __future__ import annotations

import base64
import re
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from playwright.sync_api import Page, Request, expect

from broker.cli.instance import CONFIG_NAME
from tests.support.cli import succeeds
from tests.support.live import LiveDemo, free_ports
from tests.support.notice import continue_past_notice
from tests.support.simplesamlphp_idp import (
    SimpleSamlPhpIdp,
    Student,
    running_simplesamlphp_idp,
)

SCHOOL = "99SS"
SCHOOL_NAME = "SimpleSAMLphp College"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
STUDENT = Student(
    "lotte",
    "geheim-wachtwoord",
    {
        "uid": ["lotte.devries"],
        "givenName": ["Lotte"],
        "sn": ["de Vries"],
        "mail": ["lotte@leerling.sspcollege.example"],
        "eduPersonAffiliation": ["student"],
        "isMemberOf": ["klas-2b"],
    },
)


@dataclass(frozen=True)
class Setup:
    broker: str
    leesplank: str
    idp: SimpleSamlPhpIdp


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The demo broker and publishers; SimpleSAMLphp on another free port with the broker's SP
    metadata, registered as a school with the CLI, releasing Leesplank what it declared."""
    demo = LiveDemo(tmp_path_factory.mktemp("broker"))
    try:
        with urllib.request.urlopen(demo.broker_url + "/saml/sp/metadata", timeout=5) as got:
            sp_metadata = got.read().decode("utf-8")
        with running_simplesamlphp_idp(free_ports(1), sp_metadata, STUDENT) as idp:
            metadata = demo.directory / "simplesamlphp-idp-metadata.xml"
            metadata.write_text(idp.metadata(), encoding="utf-8")
            config = str(demo.directory / CONFIG_NAME)
            succeeds(
                "school", "add", "--config", config, "--id", SCHOOL,
                "--name", SCHOOL_NAME, "--saml-metadata", str(metadata),
            )  # fmt: skip
            succeeds(
                "policy", "set", "--config", config, "--school", SCHOOL,
                "--publisher", "leesplank", "--release", "given_name,affiliation,groups",
            )  # fmt: skip
            yield Setup(demo.broker_url, demo.publishers["leesplank"].base_url, idp)
    finally:
        demo.close()


def _login(page: Page, setup: Setup) -> dict[str, Any]:
    """From Leesplank through the broker's discovery and SimpleSAMLphp's login form; returns
    what Leesplank received."""
    page.goto(setup.leesplank + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    page.locator("#school-search").fill("simplesaml")
    page.get_by_role("button", name=re.compile("^" + SCHOOL_NAME)).click()
    expect(page).to_have_url(re.compile("^" + re.escape(setup.idp.site.base_url) + "/"))
    page.locator("#username").fill(STUDENT.username)
    page.locator("#password").fill(STUDENT.password)
    page.locator("#password").press("Enter")
    continue_past_notice(page, setup.leesplank + "/acs")
    expect(page).to_have_url(setup.leesplank + "/acs")
    received: dict[str, Any] = page.request.get(setup.leesplank + "/received.json").json()
    return received


def _posted_response(requests: list[Request], acs: str) -> etree._Element:
    posted = [r for r in requests if r.method == "POST" and r.url == acs]
    assert len(posted) == 1, [r.url for r in requests]
    form = parse_qs(posted[0].post_data or "")
    return etree.fromstring(base64.b64decode(form["SAMLResponse"][0]))


def _inflated(message: str) -> etree._Element:
    """A message of the HTTP-Redirect binding (DEFLATE, base64)."""
    return etree.fromstring(zlib.decompress(base64.b64decode(message), -15))


def test_a_simplesamlphp_school_signs_a_student_in(setup: Setup, page: Page) -> None:
    requests: list[Request] = []

    def note(request: Request) -> None:
        requests.append(request)

    page.on("request", note)
    received = _login(page, setup)

    response = _posted_response(requests, setup.broker + "/saml/sp/acs")
    assert response.find(f"{{{DS}}}Signature") is not None  # the whole Response signed
    assert response.findall(f"{{{SAML}}}EncryptedAssertion") == []
    (assertion,) = response.findall(f"{{{SAML}}}Assertion")
    # The broker's metadata says WantAssertionsSigned="false", which SimpleSAMLphp follows:
    # the Response's signature covers the assertion.
    assert assertion.find(f"{{{DS}}}Signature") is None
    name_id = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    assert name_id is not None and name_id.get("Format") == PERSISTENT
    names = {a.get("Name") for a in assertion.iter(f"{{{SAML}}}Attribute")}
    assert "urn:oid:2.5.4.42" in names and "uid" not in names, names

    assert received, received
    text = repr(received)
    assert re.search("[0-9a-f]{64}", text), received
    assert "Lotte" in text and "student" in text and "klas-2b" in text, received
    assert "lotte.devries" not in text and "de Vries" not in text, received


def test_a_logout_at_the_publisher_ends_the_simplesamlphp_session(setup: Setup, page: Page) -> None:
    """Leesplank's logout goes through the broker to SimpleSAMLphp, which answers with a signed
    LogoutResponse (`sign.logout`, docs/schools.md); the broker takes it and the student is
    back at Leesplank. SimpleSAMLphp's session is over: the next login asks for the password."""
    _login(page, setup)
    requests: list[Request] = []

    def note(request: Request) -> None:
        requests.append(request)

    page.on("request", note)
    page.goto(setup.leesplank + "/logout")

    expect(page).to_have_url(re.compile(re.escape(setup.leesplank) + "/slo\\?SAMLResponse="))
    slo = setup.idp.site.base_url + "/simplesamlphp/saml2/idp/SingleLogoutService.php?"
    assert [r.url for r in requests if r.url.startswith(slo)], [r.url for r in requests]
    answers = [r.url for r in requests if r.url.startswith(setup.broker + "/saml/sp/slo?")]
    assert len(answers) == 1, [r.url for r in requests]
    answer = parse_qs(urlsplit(answers[0]).query)
    assert "Signature" in answer
    status = _inflated(answer["SAMLResponse"][0]).find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    assert status is not None
    assert status.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success"

    page.goto(setup.leesplank + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    page.locator("#school-search").fill("simplesaml")
    page.get_by_role("button", name=re.compile("^" + SCHOOL_NAME)).click()
    expect(page.locator("#password")).to_be_visible()
