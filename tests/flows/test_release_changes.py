"""What a service receives follows the registry as it is now: policy changes, services that
require more than the school releases, and the per-service naming profile."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from lxml import etree

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import Declaration, NamingProfile
from tests.support.client import Browser
from tests.support.forge import NS, authn_request_id, verify_signature
from tests.support.live import (
    PAIRWISE_ID,
    UNSPECIFIED_FORMAT,
    URI_FORMAT,
    LiveDemo,
    attributes_by_name,
)

GIVEN_NAME = "urn:oid:2.5.4.42"
AFFILIATION = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"
GROUPS = "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"
MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"


@contextmanager
def released(demo: LiveDemo, service_id: str, attributes: frozenset[str]) -> Iterator[None]:
    """Set the demo school's policy for `service_id`; put the previous one back afterwards."""
    before = demo.registry.policy(DEMO_SCHOOL_ID, service_id).attributes
    demo.registry.set_policy(DEMO_SCHOOL_ID, service_id, attributes, "test")
    try:
        yield
    finally:
        demo.registry.set_policy(DEMO_SCHOOL_ID, service_id, before, "test")


def _received_names(demo: LiveDemo, browser: Browser, publisher: str) -> set[str]:
    return set(attributes_by_name(demo.received(browser, publisher)))


def test_a_policy_change_shows_on_the_next_login_without_a_restart(demo: LiveDemo) -> None:
    in_session = Browser()
    assert demo.login(in_session, "leesplank", "sanne.jansen").final.status == 200
    assert _received_names(demo, in_session, "leesplank") == {PAIRWISE_ID, GIVEN_NAME, AFFILIATION}

    with released(demo, "leesplank", frozenset({"given_name", "affiliation", "groups"})):
        fresh = Browser()
        assert demo.login(fresh, "leesplank", "sanne.jansen").final.status == 200
        groups = attributes_by_name(demo.received(fresh, "leesplank"))[GROUPS]
        assert groups["values"] == ["klas-3a"]
        assert groups["friendly_name"] == "isMemberOf"

        # The SSO session holds what the school said; the release is decided per login.
        again = demo.login(in_session, "leesplank", "sanne.jansen")
        assert not again.went_to(demo.school_url)
        assert GROUPS in _received_names(demo, in_session, "leesplank")

    with released(demo, "leesplank", frozenset()):
        fresh = Browser()
        assert demo.login(fresh, "leesplank", "sanne.jansen").final.status == 200
        assert _received_names(demo, fresh, "leesplank") == {PAIRWISE_ID}

    # And back: the policy the demo started with.
    fresh = Browser()
    demo.login(fresh, "leesplank", "sanne.jansen")
    assert _received_names(demo, fresh, "leesplank") == {PAIRWISE_ID, GIVEN_NAME, AFFILIATION}


def test_a_required_attribute_the_school_does_not_release_ends_the_login(demo: LiveDemo) -> None:
    publisher = demo.add_publisher(
        "woordkrant",
        "leermiddelen",
        (
            Declaration("given_name", "To greet the student."),
            Declaration("email", "To send the licence receipt.", required=True),
        ),
        released=frozenset({"given_name"}),
    )
    browser = Browser()
    login = demo.login(browser, "woordkrant", "sanne.jansen")

    page = login.final
    assert page.status == 403
    assert page.url == demo.acs_url
    assert "E-mail address" in page.text  # what is missing, in words
    assert "woordkrant (test publisher)" in page.text  # and for whom

    # The page's button carries a signed error Response, no assertion, to the service's ACS.
    form = page.form(publisher.acs_url)
    assert form.action == publisher.acs_url
    xml = base64.b64decode(form.fields["SAMLResponse"])
    response = etree.fromstring(xml)
    assert etree.QName(response).localname == "Response"
    assert response.get("Destination") == publisher.acs_url
    sso_url = next(u for u in login.visited if u.startswith(f"{demo.broker_url}/saml/idp/sso"))
    assert response.get("InResponseTo") == authn_request_id(sso_url)
    assert response.findtext("saml:Issuer", namespaces=NS) == demo.idp_entity_id
    top = response.find("samlp:Status/samlp:StatusCode", NS)
    assert top is not None and top.get("Value") == RESPONDER
    inner = top.find("samlp:StatusCode", NS)
    assert inner is not None and inner.get("Value") == REQUEST_DENIED
    assert response.find(".//saml:Assertion", NS) is None
    assert response.find(".//saml:EncryptedAssertion", NS) is None
    verify_signature(xml, demo.settings.saml.signing_cert, response.get("ID") or "")

    # The real SP verifies it and sees the error status; no login happened there.
    at_publisher = browser.submit(page, publisher.acs_url)
    assert at_publisher.status == 403
    assert f'<code id="status-code">{RESPONDER}</code>' in at_publisher.text
    assert f'<code id="sub-status-code">{REQUEST_DENIED}</code>' in at_publisher.text
    assert browser.get(f"{publisher.base_url}/received.json").status == 404

    # Control: once the school releases the e-mail address, the same login goes through.
    with released(demo, "woordkrant", frozenset({"given_name", "email"})):
        fresh = Browser()
        assert demo.login(fresh, "woordkrant", "sanne.jansen").final.status == 200
        mail = attributes_by_name(demo.received(fresh, "woordkrant"))[MAIL]
        assert mail["values"] == ["sanne.jansen@leerling.demoschool.example"]


def test_plain_naming_profile_sends_entree_style_names(demo: LiveDemo) -> None:
    publisher = demo.add_publisher(
        "entree-leesplank",
        "leermiddelen",
        (
            Declaration("given_name", "To greet the student."),
            Declaration("affiliation", "To show teachers the teacher tools."),
        ),
        naming=NamingProfile.PLAIN,
        released=frozenset({"given_name", "affiliation"}),
    )
    browser = Browser()
    assert demo.login(browser, publisher.id, "daan.devries").final.status == 200
    received = demo.received(browser, publisher.id)
    attributes = attributes_by_name(received)
    assert set(attributes) == {PAIRWISE_ID, "givenName", "eduPersonAffiliation"}
    assert attributes["givenName"] == {
        "name": "givenName",
        "friendly_name": None,
        "name_format": UNSPECIFIED_FORMAT,
        "values": ["Daan"],
    }
    assert attributes["eduPersonAffiliation"]["name_format"] == UNSPECIFIED_FORMAT
    assert attributes["eduPersonAffiliation"]["values"] == ["student"]
    # The pseudonym does not depend on the naming profile.
    assert attributes[PAIRWISE_ID]["name_format"] == URI_FORMAT
    expected = demo.expected_pseudonym("daan.devries", "leermiddelen")
    assert received["name_id"]["value"] == expected
    assert received["name_id"]["sp_name_qualifier"] == publisher.entity_id


def test_a_new_purpose_stops_that_attribute_until_the_school_releases_it_again(
    demo: LiveDemo,
) -> None:
    """A publisher that gives the e-mail address a new purpose stops receiving it at the next
    login (the first name stays), until the school ticks it again; new wording of the same
    purpose changes nothing for the logins (core/purposes.py)."""
    mail = Declaration("email", "Om de leerling een inloglink te sturen", purpose_en="Login link")
    name = Declaration("given_name", "Om de leerling te begroeten")
    demo.add_publisher(
        "postvak", "leermiddelen", (name, mail), released=frozenset({"given_name", "email"})
    )

    def received() -> set[str]:
        browser = Browser()
        assert demo.login(browser, "postvak", "sanne.jansen").final.status == 200
        return _received_names(demo, browser, "postvak")

    assert received() == {PAIRWISE_ID, GIVEN_NAME, MAIL}
    reworded = replace(mail, purpose="om de leerling een Inloglink te sturen.", purpose_en="Link")
    demo.registry.set_declarations("postvak", (name, reworded), "admin:9")
    assert received() == {PAIRWISE_ID, GIVEN_NAME, MAIL}

    marketing = replace(mail, purpose="Om de leerling nieuwsbrieven te sturen")
    replaced = demo.registry.set_declarations("postvak", (name, marketing), "admin:9")
    assert replaced.dropped == ((DEMO_SCHOOL_ID, ("email",)),)
    assert received() == {PAIRWISE_ID, GIVEN_NAME}

    # The school's one save on its page (which shows declaration version 3) releases it again.
    demo.registry.set_policy(
        DEMO_SCHOOL_ID,
        "postvak",
        frozenset({"given_name", "email"}),
        "admin:1",
        declarations_seen=replaced.version,
    )
    assert received() == {PAIRWISE_ID, GIVEN_NAME, MAIL}


def test_a_change_that_needs_confirmation_releases_nothing_and_refuses_required_logins(
    demo: LiveDemo,
) -> None:
    """An attribute added (core/declarations.py: the school must confirm again): until the
    school saves its choice again, logins carry the pseudonym alone, and a platform that
    requires an attribute refuses them, as the school's portal says (docs/portals.md)."""
    name = Declaration("given_name", "Om de leerling te begroeten")
    mail = Declaration("email", "Om het licentiebewijs te sturen", required=True)
    groups = Declaration("groups", "Om de klas te tonen")
    demo.add_publisher(
        "meldweb", "leermiddelen", (name, mail), released=frozenset({"given_name", "email"})
    )
    demo.add_publisher("groetweb", "leermiddelen", (name,), released=frozenset({"given_name"}))

    def login(service_id: str) -> tuple[int, set[str]]:
        browser = Browser()
        status = demo.login(browser, service_id, "sanne.jansen").final.status
        return status, _received_names(demo, browser, service_id) if status == 200 else set()

    assert login("meldweb") == (200, {PAIRWISE_ID, GIVEN_NAME, MAIL})
    assert login("groetweb") == (200, {PAIRWISE_ID, GIVEN_NAME})
    required = demo.registry.set_declarations("meldweb", (name, mail, groups), "admin:9")
    optional = demo.registry.set_declarations("groetweb", (name, groups), "admin:9")
    # Required: refused (the e-mail address is not released until the school confirms).
    assert login("meldweb")[0] == 403
    # Nothing required: the login goes through, with the pseudonym alone.
    assert login("groetweb") == (200, {PAIRWISE_ID})

    for service_id, replaced, chosen in (
        ("meldweb", required, {"given_name", "email"}),
        ("groetweb", optional, {"given_name"}),
    ):
        demo.registry.set_policy(
            DEMO_SCHOOL_ID,
            service_id,
            frozenset(chosen),
            "admin:1",
            declarations_seen=replaced.version,
        )
    assert login("meldweb") == (200, {PAIRWISE_ID, GIVEN_NAME, MAIL})
    assert login("groetweb") == (200, {PAIRWISE_ID, GIVEN_NAME})
