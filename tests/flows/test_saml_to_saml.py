"""A whole login, SAML in and SAML out, through real pysaml2 peers on live servers.

The publisher is the demo's pysaml2 SP: it checks the broker's signatures, audience, destination
and InResponseTo the way a strict SP library does, and shows what it accepted. The expected
pseudonym is derived here from the key file, not read from the broker.
"""

from __future__ import annotations

import re
import tomllib

from tests.support.client import Browser
from tests.support.live import (
    PAIRWISE_ID,
    PERSISTENT,
    URI_FORMAT,
    LiveDemo,
    attributes_by_name,
)

GIVEN_NAME = "urn:oid:2.5.4.42"
AFFILIATION = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _configured_scope(demo: LiveDemo) -> str:
    config = tomllib.loads((demo.directory / "ketenbroker.toml").read_text(encoding="utf-8"))
    scope: str = config["broker"]["scope"]
    return scope


def test_login_at_leesplank_passes_every_hop_and_releases_what_the_school_allowed(
    demo: LiveDemo,
) -> None:
    browser = Browser()
    login = demo.login(browser, "leesplank", "sanne.jansen")

    # The student went publisher → broker → discovery → school → broker ACS → publisher ACS.
    leesplank = demo.publishers["leesplank"]
    assert login.final.status == 200, login.final.text
    assert login.final.url == leesplank.acs_url
    for hop in (
        f"{demo.broker_url}/saml/idp/sso",
        f"{demo.broker_url}/discovery",
        f"{demo.school_url}/sso",
        demo.acs_url,
    ):
        assert login.went_to(hop), hop

    received = demo.received(browser, "leesplank")
    expected = demo.expected_pseudonym("sanne.jansen", "leermiddelen")
    assert HEX64.match(expected)
    assert received["issuer"] == demo.idp_entity_id
    assert received["name_id"] == {
        "format": PERSISTENT,
        "value": expected,
        "name_qualifier": demo.idp_entity_id,
        "sp_name_qualifier": leesplank.entity_id,
    }

    attributes = attributes_by_name(received)
    # Exactly the pseudonym plus what the demo school releases to leesplank; its declared
    # `groups` is not released, and nothing the school sent beyond that (surname, e-mail …).
    assert set(attributes) == {PAIRWISE_ID, GIVEN_NAME, AFFILIATION}
    assert attributes[PAIRWISE_ID]["values"] == [f"{expected}@{_configured_scope(demo)}"]
    assert attributes[PAIRWISE_ID]["name_format"] == URI_FORMAT
    assert attributes[GIVEN_NAME] == {
        "name": GIVEN_NAME,
        "friendly_name": "givenName",
        "name_format": URI_FORMAT,
        "values": ["Sanne"],
    }
    assert attributes[AFFILIATION] == {
        "name": AFFILIATION,
        "friendly_name": "eduPersonAffiliation",
        "name_format": URI_FORMAT,
        "values": ["student"],
    }


def test_rekenroute_gets_the_pseudonym_alone(demo: LiveDemo) -> None:
    browser = Browser()
    login = demo.login(browser, "rekenroute", "daan.devries")
    assert login.final.status == 200, login.final.text

    received = demo.received(browser, "rekenroute")
    expected = demo.expected_pseudonym("daan.devries", "leermiddelen")
    rekenroute = demo.publishers["rekenroute"]
    assert received["name_id"]["value"] == expected
    assert received["name_id"]["sp_name_qualifier"] == rekenroute.entity_id
    attributes = attributes_by_name(received)
    # rekenroute declared `affiliation` but the school released nothing to it.
    assert set(attributes) == {PAIRWISE_ID}
    assert attributes[PAIRWISE_ID]["values"] == [f"{expected}@{_configured_scope(demo)}"]


def test_the_publisher_can_tell_teachers_from_students(demo: LiveDemo) -> None:
    browser = Browser()
    demo.login(browser, "leesplank", "marieke.bakker")
    received = demo.received(browser, "leesplank")
    attributes = attributes_by_name(received)
    assert attributes[AFFILIATION]["values"] == ["employee"]
    assert attributes[GIVEN_NAME]["values"] == ["Marieke"]
    assert received["name_id"]["value"] == demo.expected_pseudonym("marieke.bakker", "leermiddelen")
