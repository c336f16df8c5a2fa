"""All four pairings, end to end, with real clients on both sides: a SAML publisher (the demo's
pysaml2 SP) and an OIDC publisher (the demo's authlib RP), each in front of a SAML school (the
demo's pysaml2 IdP) and an OIDC school (the demo's authlib OP).

For one student at one school and one chain, the SAML NameID, the SAML pairwise-id and the OIDC
`sub` are the same 64 hex characters, computed here independently from the key file.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID, OIDC_SCHOOL_PORT_OFFSET
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.core.pseudonym import derive_chain_pseudonym
from broker.demo.school_op import school_op_subject
from tests.support.client import Browser, Page
from tests.support.live import PAIRWISE_ID, LiveDemo, OidcPublisher, attributes_by_name

HEX64 = re.compile(r"^[0-9a-f]{64}$")
UID = "fatima.elamrani"
CHAIN = "leermiddelen"


def school_hint(demo: LiveDemo, publisher: str, school: str) -> str:
    """How each publisher names the school: SAML by IdP entity id (Scoping), OIDC by school id
    (login_hint)."""
    if publisher == OIDC_PUBLISHER_ID:
        return school
    if school == DEMO_SCHOOL_ID:
        return demo.school_entity_id
    return f"http://localhost:{demo.port + OIDC_SCHOOL_PORT_OFFSET}"


def log_in(demo: LiveDemo, browser: Browser, publisher: str, school: str) -> Page:
    base = demo.publishers[publisher].base_url
    page = browser.get(f"{base}/login?school={quote(school_hint(demo, publisher, school))}")
    if page.url.startswith(f"{demo.school_url}/sso"):
        answer = browser.submit(page, f"{demo.school_url}/sso/pick", {"uid": UID})
        page = browser.submit(answer, demo.acs_url)
    elif "/authorize" in page.url and not page.url.startswith(demo.broker_url):
        form = next(f for f in page.forms if ("uid", UID) in f.buttons)
        page = browser.post(form.action, {"uid": UID})
    if page.status == 200 and demo.answers_publisher(page):
        page = browser.submit(page, demo.publishers[publisher].acs_url)
    assert page.status == 200, page.text[:500]
    return page


def expected(demo: LiveDemo, school: str) -> str:
    if school == DEMO_SCHOOL_ID:
        return demo.expected_pseudonym(UID, CHAIN)
    issuer = f"http://localhost:{demo.port + OIDC_SCHOOL_PORT_OFFSET}"
    subject = school_op_subject(issuer, UID)
    return derive_chain_pseudonym(demo.pseudonym_key, CHAIN, f"school:{school}", subject)


@pytest.mark.parametrize("school", [DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID])
def test_every_pairing_carries_the_same_chain_pseudonym(
    demo: LiveDemo, woordwijs: OidcPublisher, school: str
) -> None:
    pseudonym = expected(demo, school)
    assert HEX64.match(pseudonym)

    browser = Browser()
    log_in(demo, browser, "leesplank", school)  # SAML publisher ← school
    saml = demo.received(browser, "leesplank")
    assert saml["name_id"]["value"] == pseudonym
    pairwise = attributes_by_name(saml)[PAIRWISE_ID]["values"][0]
    assert pairwise.split("@")[0] == pseudonym

    fresh = Browser()  # no SSO session: the OIDC publisher's login goes to the school itself
    log_in(demo, fresh, OIDC_PUBLISHER_ID, school)  # OIDC publisher ← school
    oidc = demo.received(fresh, OIDC_PUBLISHER_ID)
    assert oidc["sub"] == pseudonym
    assert oidc["userinfo"]["sub"] == pseudonym


def test_the_two_schools_give_the_same_student_unrelated_pseudonyms(demo: LiveDemo) -> None:
    # Different schools are different namespaces: no way to link a student across them
    # (the ECK iD, when a school uses it, is what makes a change of school continuous).
    assert expected(demo, DEMO_SCHOOL_ID) != expected(demo, DEMO_OIDC_SCHOOL_ID)


def test_the_demo_start_page_links_every_pairing(demo: LiveDemo) -> None:
    page = Browser().get(f"{demo.broker_url}/demo")
    assert page.status == 200
    links = re.findall(r'href="([^"]+/login\?school=[^"]+)"', page.text)
    assert len(links) == 4
    for link in links:
        landed = Browser().get(link.replace("&amp;", "&"))
        assert landed.status == 200, link
