"""A school whose identity provider speaks OpenID Connect, towards SAML publishers, end to end.

The school is the demo's authlib OpenID provider (broker/demo/school_op.py): code flow, PKCE,
nonce, RS256 ID tokens, RFC 9207 `iss`. The publishers are the demo's strict pysaml2 SPs. The
expected pseudonym is derived here from the key file and the provider's documented `sub` rule.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, OIDC_SCHOOL_PORT_OFFSET
from broker.core.pseudonym import derive_chain_pseudonym
from broker.demo.school_op import school_op_subject
from tests.support.client import Browser
from tests.support.live import PAIRWISE_ID, PERSISTENT, LiveDemo, Login, attributes_by_name

GIVEN_NAME = "urn:oid:2.5.4.42"
AFFILIATION = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def op_url(demo: LiveDemo) -> str:
    return f"http://localhost:{demo.port + OIDC_SCHOOL_PORT_OFFSET}"


def expected(demo: LiveDemo, uid: str, chain: str) -> str:
    subject = school_op_subject(op_url(demo), uid)
    return derive_chain_pseudonym(
        demo.pseudonym_key, chain, f"school:{DEMO_OIDC_SCHOOL_ID}", subject
    )


def oidc_login(demo: LiveDemo, browser: Browser, publisher: str, uid: str) -> Login:
    """Log in at `publisher` through the OIDC school (named in the request, so no discovery)."""
    start = len(browser.history)
    base = demo.publishers[publisher].base_url
    page = browser.get(f"{base}/login?school={op_url(demo)}")
    if page.url.startswith(f"{op_url(demo)}/authorize"):
        assert page.status == 200, page.text
        form = next(f for f in page.forms if ("uid", uid) in f.buttons)
        page = browser.post(form.action, {"uid": uid})
    if page.status == 200 and demo.answers_publisher(page):
        page = browser.submit(page, demo.publishers[publisher].acs_url)
    return Login(page, browser.history[start:])


def test_login_through_the_oidc_school_gives_the_publisher_the_chain_pseudonym(
    demo: LiveDemo,
) -> None:
    browser = Browser()
    login = oidc_login(demo, browser, "leesplank", "sanne.jansen")
    assert login.final.status == 200, login.final.text
    assert login.final.url == demo.publishers["leesplank"].acs_url

    # The authorization request: code flow, PKCE S256, nonce, our callback, state.
    authorize = next(u for u in login.visited if u.startswith(f"{op_url(demo)}/authorize"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "ketenbroker"
    assert query["redirect_uri"] == f"{demo.broker_url}/oidc/rp/callback/{DEMO_OIDC_SCHOOL_ID}"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["nonce"] and query["state"]
    assert set(query["scope"].split()) >= {"openid", "profile", "email"}
    # The provider's answer named its issuer (RFC 9207) on the way back to the broker.
    callback = next(u for u in login.visited if u.startswith(f"{demo.broker_url}/oidc/rp/"))
    assert parse_qs(urlsplit(callback).query)["iss"] == [op_url(demo)]

    received = demo.received(browser, "leesplank")
    pseudonym = expected(demo, "sanne.jansen", "leermiddelen")
    assert HEX64.match(pseudonym)
    assert received["name_id"]["format"] == PERSISTENT
    assert received["name_id"]["value"] == pseudonym
    attributes = attributes_by_name(received)
    # The pseudonym plus what the OIDC school releases to leesplank, mapped from OIDC claims.
    assert set(attributes) == {PAIRWISE_ID, GIVEN_NAME, AFFILIATION}
    assert attributes[PAIRWISE_ID]["values"][0].startswith(pseudonym + "@")
    assert attributes[GIVEN_NAME]["values"] == ["Sanne"]
    assert attributes[AFFILIATION]["values"] == ["student"]


def test_sso_session_serves_the_chain_with_one_pseudonym_and_other_chains_another(
    demo: LiveDemo,
) -> None:
    browser = Browser()
    first = oidc_login(demo, browser, "leesplank", "daan.devries")
    assert first.final.url == demo.publishers["leesplank"].acs_url, first.final.text
    leesplank = demo.received(browser, "leesplank")["name_id"]["value"]

    # Same browser, another publisher of the same chain: answered from the SSO session,
    # without a second visit to the school's provider.
    second = demo.login(browser, "rekenroute", "daan.devries")
    assert second.final.url == demo.publishers["rekenroute"].acs_url, second.final.text
    assert not second.went_to(op_url(demo))
    rekenroute = demo.received(browser, "rekenroute")["name_id"]["value"]

    third = demo.login(browser, "toetsplein", "daan.devries")
    assert third.final.url == demo.publishers["toetsplein"].acs_url, third.final.text
    assert not third.went_to(op_url(demo))
    toetsplein = demo.received(browser, "toetsplein")["name_id"]["value"]

    assert leesplank == rekenroute == expected(demo, "daan.devries", "leermiddelen")
    assert toetsplein == expected(demo, "daan.devries", "toetsen")
    assert toetsplein != leesplank


def test_students_of_the_oidc_school_get_pseudonyms_of_their_own(demo: LiveDemo) -> None:
    seen = set()
    for uid in ("sanne.jansen", "fatima.elamrani"):
        browser = Browser()
        login = oidc_login(demo, browser, "rekenroute", uid)
        assert login.final.url == demo.publishers["rekenroute"].acs_url, login.final.text
        value = demo.received(browser, "rekenroute")["name_id"]["value"]
        assert value == expected(demo, uid, "leermiddelen")
        # Another school's login of the same person is another subject, so another pseudonym.
        assert value != demo.expected_pseudonym(uid, "leermiddelen")
        seen.add(value)
    assert len(seen) == 2
