"""A school whose identity provider speaks OpenID Connect, towards SAML publishers, end to end.

The school is the demo's authlib OpenID provider (broker/demo/school_op.py): code flow, PKCE,
nonce, RS256 ID tokens, RFC 9207 `iss`. The publishers are the demo's strict pysaml2 SPs. The
expected pseudonym is derived here from the key file and the provider's documented `sub` rule.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete, insert, select, update

from broker.cli.demo import DEMO_OIDC_HOSTED_DOMAIN, DEMO_OIDC_SCHOOL_ID, OIDC_SCHOOL_PORT_OFFSET
from broker.core import hosted_domain
from broker.core.pseudonym import derive_chain_pseudonym
from broker.core.sealed_secrets import PREFIX
from broker.demo.school_op import school_op_subject
from broker.registry.migration import migration_connection
from broker.registry.sealed_only import SealedOnlyRow
from broker.registry.tables import SchoolOidcRow
from tests.support.client import Browser, Page
from tests.support.live import (
    PAIRWISE_ID,
    PERSISTENT,
    SSO_COOKIE,
    LiveDemo,
    Login,
    attributes_by_name,
)

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


# -- the hosted domain (core/hosted_domain.py): Google Workspace's `hd` ------------------------
# The demo provider sends `hd` = DEMO_OIDC_HOSTED_DOMAIN for its students (their addresses are
# in it) and none for its staff, as a Workspace sends none for a personal Google account.


@pytest.fixture
def give_hosted_domain(demo: LiveDemo) -> Iterator[Callable[[str], None]]:
    """Sets the demo OIDC school's hosted domain in the registry; puts it back afterwards."""
    original = demo.registry.school(DEMO_OIDC_SCHOOL_ID)
    assert original is not None and original.oidc is not None
    oidc = original.oidc

    def give(domain: str) -> None:
        changed = replace(original, oidc=replace(oidc, hosted_domain=domain))
        demo.registry.update_school_idp(changed, "")

    yield give
    demo.registry.update_school_idp(original, "")


def refused_login(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture, uid: str, code: str, status: int
) -> Page:
    """`uid` logs in at leesplank through the OIDC school and is refused at the callback with
    `code`: a page with an error id, no session, nothing for the publisher, and an audit line
    with the reason and never whose account it was."""
    browser = Browser()
    with caplog.at_level(logging.INFO):
        page = oidc_login(demo, browser, "leesplank", uid).final
    assert page.url.startswith(f"{demo.broker_url}/oidc/rp/callback/{DEMO_OIDC_SCHOOL_ID}")
    assert page.status == status, page.text[:500]
    assert "Error code:" in page.text and "Traceback" not in page.text
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    assert f"oidc login refused school={DEMO_OIDC_SCHOOL_ID} code={code}" in caplog.text
    assert DEMO_OIDC_HOSTED_DOMAIN not in caplog.text
    assert uid.split(".")[1] not in caplog.text.lower()
    received = browser.get(f"{demo.publishers['leesplank'].base_url}/received.json")
    assert received.status == 404, "the publisher received a login"
    return page


def refused_before_the_school(demo: LiveDemo, caplog: pytest.LogCaptureFixture, code: str) -> None:
    """A login at leesplank through the OIDC school, refused with `code` before the student is
    sent to the provider (nobody signs in there for nothing): the page of a school whose
    sign-in is not set up, no session."""
    browser = Browser()
    with caplog.at_level(logging.INFO):
        page = oidc_login(demo, browser, "leesplank", "sanne.jansen").final
    assert page.url.startswith(demo.broker_url) and "/oidc/rp/callback/" not in page.url
    assert page.status == 503 and "Error code:" in page.text, page.text[:500]
    assert "Signing in with your school is not set up" in page.text
    assert "Traceback" not in page.text
    assert f"code={code}" in caplog.text
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)


def test_a_student_of_the_hosted_domain_signs_in(
    demo: LiveDemo, give_hosted_domain: Callable[[str], None]
) -> None:
    give_hosted_domain(DEMO_OIDC_HOSTED_DOMAIN)
    browser = Browser()
    login = oidc_login(demo, browser, "leesplank", "sanne.jansen")
    assert login.final.url == demo.publishers["leesplank"].acs_url, login.final.text[:500]
    received = demo.received(browser, "leesplank")
    # The same pseudonym as without a hosted domain: the check adds nothing to the subject.
    assert received["name_id"]["value"] == expected(demo, "sanne.jansen", "leermiddelen")


def test_an_account_of_another_hosted_domain_is_refused(
    demo: LiveDemo,
    give_hosted_domain: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    give_hosted_domain("other-school.example")
    page = refused_login(demo, caplog, "sanne.jansen", "hosted_domain_mismatch", 403)
    assert "not your school" in page.text


def test_an_account_without_a_hosted_domain_is_refused(
    demo: LiveDemo,
    give_hosted_domain: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # marieke.bakker's address is outside the domain: her ID token carries no `hd` (as a
    # personal Google account's).
    give_hosted_domain(DEMO_OIDC_HOSTED_DOMAIN)
    refused_login(demo, caplog, "marieke.bakker", "hosted_domain_mismatch", 403)


def test_a_school_on_a_shared_issuer_without_a_hosted_domain_lets_nobody_in(
    demo: LiveDemo,
    give_hosted_domain: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The demo provider stands in for Google: its host counts as a shared issuer's, and the
    # school (registered before the rule, say) has no hosted domain. Even a student whose
    # token carries the right `hd` is refused: the broker cannot know which domain is right.
    monkeypatch.setattr(hosted_domain, "SHARED_ISSUER_HOSTS", frozenset({"localhost"}))
    give_hosted_domain("")
    refused_before_the_school(demo, caplog, "hosted_domain_missing")
    # Given the domain, the same school lets its students in again.
    give_hosted_domain(DEMO_OIDC_HOSTED_DOMAIN)
    again = oidc_login(demo, Browser(), "leesplank", "sanne.jansen")
    assert again.final.url == demo.publishers["leesplank"].acs_url, again.final.text[:500]


@pytest.fixture
def stored_client_secret(demo: LiveDemo) -> Iterator[Callable[[str], None]]:
    """Puts a value in the demo OIDC school's `client_secret` column as the database holds it
    (sealed, tampered, or in clear as code before revision 0020 wrote it), and the sealed
    original back afterwards; the generation moves on so every view reads it again."""
    url = demo.settings.registry_url
    where = SchoolOidcRow.school_id == DEMO_OIDC_SCHOOL_ID
    with migration_connection(url) as connection:
        original = connection.scalar(select(SchoolOidcRow.client_secret).where(where))
    assert original is not None and original.startswith(PREFIX)

    def store(value: str) -> None:
        with migration_connection(url) as connection:
            connection.execute(update(SchoolOidcRow).where(where).values(client_secret=value))
        school = demo.registry.school(DEMO_OIDC_SCHOOL_ID)
        assert school is not None
        demo.registry.set_school_town(DEMO_OIDC_SCHOOL_ID, school.town)  # bumps the generation

    yield store
    store(original)


def test_a_school_whose_client_secret_does_not_open_lets_nobody_in_and_says_so(
    demo: LiveDemo,
    stored_client_secret: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = (demo.directory / "peers" / "school-op-client-secret").read_text().strip()
    sealed = demo.registry.snapshot()  # the registry opens it: the stored value is sealed
    assert any(e.school.oidc and e.school.oidc.client_secret == secret for e in sealed.schools)
    # Changed in the database (or sealed under a session secret this broker no longer has).
    with migration_connection(demo.settings.registry_url) as connection:
        stored = connection.scalar(
            select(SchoolOidcRow.client_secret).where(
                SchoolOidcRow.school_id == DEMO_OIDC_SCHOOL_ID
            )
        )
    assert stored is not None and secret not in stored
    stored_client_secret(stored[:-2] + ("AA" if not stored.endswith("AA") else "BB"))
    # The page of a school whose sign-in is not set up (not a 500); the operator's log names
    # the school and the reason.
    refused_before_the_school(demo, caplog, "client_secret_unreadable")
    assert (
        f"oidc login refused school={DEMO_OIDC_SCHOOL_ID} code=client_secret_unreadable"
        in caplog.text
    )
    assert f"school client secret unreadable school={DEMO_OIDC_SCHOOL_ID}" in caplog.text
    assert stored[len(PREFIX) + 9 :] not in caplog.text and secret not in caplog.text

    # In clear, in a registry that holds sealed secrets only (the demo's is new: revision 0021
    # marked it): not the broker's doing, refused as a secret that does not open.
    stored_client_secret(secret)
    refused_before_the_school(demo, caplog, "client_secret_unreadable")
    refusal = f"oidc login refused school={DEMO_OIDC_SCHOOL_ID} code=client_secret_unreadable"
    assert f"{refusal} reason=in clear, and the registry holds sealed secrets only" in caplog.text
    assert secret not in caplog.text

    # As code before revision 0020 left it, in a registry upgraded with values in clear (not
    # marked until `registry seal-secrets`): still read, the student signs in.
    with sealed_only_unset(demo):
        stored_client_secret(secret)  # the generation moves on: every view reads it again
        again = oidc_login(demo, Browser(), "leesplank", "sanne.jansen")
    assert again.final.url == demo.publishers["leesplank"].acs_url, again.final.text[:500]


@contextmanager
def sealed_only_unset(demo: LiveDemo) -> Iterator[None]:
    """The registry without its mark (registry/sealed_only.py), as one upgraded with values in
    clear has it; set again afterwards."""
    url = demo.settings.registry_url
    with migration_connection(url) as connection:
        since = connection.scalar(select(SealedOnlyRow.since))
        assert since is not None
        connection.execute(delete(SealedOnlyRow))
    try:
        yield
    finally:
        with migration_connection(url) as connection:
            connection.execute(insert(SealedOnlyRow).values(id=1, since=since))


@pytest.mark.parametrize(
    "repeated",
    [
        "&iss=http%3A%2F%2Fevil.example",
        "&code=AAAA",
        "&state=x.y",
        "&error=access_denied&error=login_required",
    ],
)
def test_a_callback_with_a_repeated_parameter_is_refused_and_changes_nothing(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture, repeated: str
) -> None:
    """Which value of a repeated parameter counts is the reader's guess (Werkzeug's first, a
    proxy's last): refused with a 400 page before the state is looked up (before review-bcp the
    first was used). The school's own answer after it still completes the login."""
    callback_prefix = f"{demo.broker_url}/oidc/rp/callback/"
    browser = Browser()
    base = demo.publishers["leesplank"].base_url
    page = browser.get(f"{base}/login?school={op_url(demo)}")
    form = next(f for f in page.forms if ("uid", "sanne.jansen") in f.buttons)
    answer = browser.post(
        form.action, {"uid": "sanne.jansen"}, stop=lambda u: u.startswith(callback_prefix)
    )
    callback = answer.location
    assert callback is not None and callback.startswith(callback_prefix), answer.status
    with caplog.at_level(logging.INFO):
        refused = browser.get(callback + repeated, follow=False)
    assert refused.status == 400 and "Error code:" in refused.text, refused.text[:300]
    assert "code=repeated_parameter" in caplog.text
    done = browser.get(callback)
    assert done.status == 200 and demo.answers_publisher(done), done.text[:300]
