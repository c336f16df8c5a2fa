"""A school whose subject is its NameID (the demo school's) takes a persistent NameID only.

No Format is `unspecified` (SAML core 2.2.2): an identifier not promised to stay the student's,
while the chain pseudonym is derived from it. So a Response signed by the school with no Format,
or with unspecified (or transient), ends the login like a missing subject does, with the reason
for the school's ICT contact: on the student's page, in the log line (the Format only, never the
NameID's value) and to the service (a signed AuthnFailed naming the reason code).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator

import pytest
from lxml import etree
from saml2 import samlp

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.support.client import Browser, Page
from tests.support.forge import SchoolForger, authn_request_id, redirect_message
from tests.support.live import PERSISTENT, SSO_COOKIE, LiveDemo, running_demo
from tests.support.saml_workers import demo_school_forger

UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
PROTOCOL = "{urn:oasis:names:tc:SAML:2.0:protocol}"
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
FIX = (
    "configure the IdP to send a persistent NameID "
    "(urn:oasis:names:tc:SAML:2.0:nameid-format:persistent), or register the school with an "
    "identifying attribute (username or student_number) as its subject"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("name-id-demo")) as live:
        yield live


@pytest.fixture(scope="module")
def school(demo: LiveDemo) -> SchoolForger:
    return demo_school_forger(demo)


def _answer(demo: LiveDemo, school: SchoolForger, name_id_format: str | None, lang: str) -> Page:
    """A login at Leesplank that the demo school answers for Sanne with a signed Response whose
    NameID carries `name_id_format` (None: no Format attribute at all)."""
    browser = Browser(lang)
    page = browser.get(
        f"{demo.publishers['leesplank'].base_url}/login?school={demo.school_entity_id}",
        stop=lambda url: url.startswith(demo.school_url),
    )
    location = page.location or ""
    _, params = redirect_message(location)

    def with_format(response: samlp.Response) -> None:
        response.assertion.subject.name_id.format = name_id_format

    signed = school.response(
        in_response_to=authn_request_id(location),
        destination=demo.acs_url,
        audience=demo.sp_entity_id,
        subject=demo.school_subject("sanne.jansen"),
        tamper=with_format,
    )
    sent = etree.fromstring(base64.b64decode(signed))
    (name_id,) = sent.iter("{urn:oasis:names:tc:SAML:2.0:assertion}NameID")
    assert name_id.get("Format") == name_id_format, "as signed, Format absent for None"
    return browser.post(demo.acs_url, {"SAMLResponse": signed, "RelayState": params["RelayState"]})


def test_a_persistent_name_id_signs_the_student_in(demo: LiveDemo, school: SchoolForger) -> None:
    page = _answer(demo, school, PERSISTENT, "en")
    assert page.status == 200, page.text[:500]
    assert SSO_COOKIE in page.cookies_set
    assert _status_codes(page) is None, "a Response with an assertion goes to the platform"


@pytest.mark.parametrize(
    ("name_id_format", "said"),
    [
        (None, "none, which means unspecified"),
        (UNSPECIFIED, UNSPECIFIED),
        (TRANSIENT, TRANSIENT),
    ],
    ids=["no Format", "unspecified", "transient"],
)
def test_a_name_id_that_is_not_persistent_is_refused_with_what_to_do(
    demo: LiveDemo,
    school: SchoolForger,
    caplog: pytest.LogCaptureFixture,
    name_id_format: str | None,
    said: str,
) -> None:
    page = _answer(demo, school, name_id_format, "en")
    assert page.status == 502, page.text[:500]
    assert SSO_COOKIE not in page.cookies_set
    # The platform hears it as the school's failure, with the reason code.
    assert _status_codes(page) == (
        [f"{STATUS}Responder", f"{STATUS}AuthnFailed"],
        "name_id_not_persistent",
    )
    # The student's page: what happened, and what the school's ICT contact must change.
    text = html.unescape(page.text)
    assert "<h1>Your school's sign-in needs a change</h1>" in text
    assert "sent an identifier for you that may change" in text
    assert "The school's SAML identity provider sent a NameID that is not persistent." in text
    shown = f"<code>{said}</code>" if name_id_format else said
    assert re.search(rf"Format received:\s*{re.escape(shown)}</p>", text), text
    assert "<code>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</code>" in text
    assert "(username or student_number)" in text
    # Only the school can change it: no "if it keeps happening", and going back is the main
    # (and only) button.
    assert "keeps happening" not in text and "Try again" not in text
    assert '<button class="button button--primary" type="submit">Back to' in text
    # The log: the school, the reason, the Format and the fix; never the NameID's value.
    line = f"refused school={DEMO_SCHOOL_ID} code=name_id_not_persistent: the IdP sent a NameID "
    assert f"{line}with Format {said}, not persistent: {FIX}" in caplog.text
    assert "refused code=name_id_not_persistent status=502 error_id=" in caplog.text
    assert demo.school_subject("sanne.jansen") not in caplog.text


def test_the_ict_contact_reads_it_in_dutch_too(demo: LiveDemo, school: SchoolForger) -> None:
    page = _answer(demo, school, None, "nl")
    assert page.status == 502
    text = html.unescape(page.text)
    assert '<html lang="nl">' in text
    assert "<h1>De inlogdienst van je school moet worden aangepast</h1>" in text
    assert "geen, wat unspecified betekent" in text
    assert "persistent NameID" in text and "username of student_number" in text


def _status_codes(page: Page) -> tuple[list[str | None], str | None] | None:
    """The status codes and StatusMessage of the error Response the page carries to the
    platform; None when it carries a Response with an assertion."""
    match = re.search(r'name="SAMLResponse" value="([^"]+)"', page.text)
    assert match, "no SAMLResponse on the page"
    answer = etree.fromstring(base64.b64decode(html.unescape(match.group(1))))
    if answer.find("{urn:oasis:names:tc:SAML:2.0:assertion}Assertion") is not None:
        return None
    codes = [c.get("Value") for c in answer.iter(f"{PROTOCOL}StatusCode")]
    message = answer.find(f"{PROTOCOL}Status/{PROTOCOL}StatusMessage")
    return codes, message.text if message is not None else None
