"""Schools' identity-provider products through the running demo's ACS and SLO, in the shapes
the products answer in (tests/support/idp_products.py): ADFS, Entra ID, Google Workspace and
Keycloak, each with its own generated key, registered through the broker's intake check."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from lxml import etree
from saml2.saml import AuthnContextClassRef
from saml2.samlp import IDPEntry, IDPList, RequestedAuthnContext, Scoping

from broker.core.assurance import MICROSOFT_MFA, PASSWORD, REFEDS_MFA, WINDOWS
from broker.core.errors import BadRequest
from broker.core.model import School
from broker.saml.metadata_check import idp_entity_id, single_idp_entity
from tests.flows.test_authn_requests import ServiceSp, registered_sp
from tests.support import idp_products as product
from tests.support.cli import registry_of, run
from tests.support.client import Browser, Page
from tests.support.forge import authn_request_id, redirect_message
from tests.support.hostile import deflate
from tests.support.live import LiveDemo, attributes_by_name, running_demo
from tests.support.logout import carry_saml_posts, load_frames, read_final, run_id_of, warns

ADFS_ID, ENTRA_ID, GOOGLE_ID, KEYCLOAK_ID = "21AA00", "22BB00", "23CC00", "25EE00"
ADFS_HOST = "adfs.scholengroep.example"
NS = {"samlp": product.SAMLP, "saml": product.SAML}
ENTRA_METHOD = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"
AUTHN_METHODS = "http://schemas.microsoft.com/claims/authnmethodsreferences"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("idp-products-demo")) as live:
        yield live


def register(demo: LiveDemo, school_id: str, metadata: str, **details: object) -> str:
    """The school, registered with `metadata` after the intake's own check; its entity id."""
    entity_id = idp_entity_id(metadata)
    demo.registry.add_school(
        School(school_id, f"School {school_id}", entity_id, **details),  # type: ignore[arg-type]
        metadata,
    )
    return entity_id


@pytest.fixture(scope="module")
def adfs(demo: LiveDemo) -> product.Signer:
    key = product.signer(f"ADFS Signing - {ADFS_HOST}")
    register(demo, ADFS_ID, product.adfs_metadata(ADFS_HOST, key))
    return key


def adfs_login(demo: LiveDemo, publisher: str = "leesplank") -> product.ProductLogin:
    return product.start_login(
        demo, product.adfs_entity_id(ADFS_HOST), f"https://{ADFS_HOST}/adfs/ls/", publisher
    )


def adfs_says_no(
    demo: LiveDemo,
    key: product.Signer | None,
    top: str,
    second: str,
    caplog: pytest.LogCaptureFixture,
) -> Page:
    """ADFS's error Response (`top`/`second`) to a fresh login, signed by `key` (or not),
    delivered; the student's page."""
    caplog.set_level(logging.INFO)
    login = adfs_login(demo)
    entity_id = product.adfs_entity_id(ADFS_HOST)
    answer = product.error_response(demo, entity_id, login.request_id, top, second, key)
    return product.deliver(demo, login, answer)


# -- M3: the school's IdP cannot make the persistent NameID asked for ---------------------------
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_adfs_without_a_persistent_name_id_rule_names_the_setting(
    demo: LiveDemo, adfs: product.Signer, caplog: pytest.LogCaptureFixture, signed: bool
) -> None:
    """ADFS without its Name ID rule (MSIS7070 in its log) answers Requester/InvalidNameIDPolicy:
    the student hears that the school must change a setting, the ICT contact which one, and the
    log names the status (a fixed URN, nothing of the message)."""
    caplog.set_level(logging.INFO)
    login = adfs_login(demo)
    entity_id = product.adfs_entity_id(ADFS_HOST)
    answer = product.error_response(
        demo,
        entity_id,
        login.request_id,
        "Requester",
        "InvalidNameIDPolicy",
        adfs if signed else None,
    )
    page = product.deliver(demo, login, answer)
    assert page.status == 502, page.text[:500]
    assert "<h1>Your school needs to change a setting</h1>" in page.text
    assert (
        "Signing in does not work right now: something is not set up right at your school. "
        "Trying again will not help." in page.text
    )
    assert "Show this page to your school's ICT contact." in page.text
    assert "For the school's ICT contact" in page.text
    assert "InvalidNameIDPolicy" in page.text and "saml-nameid.xml" in page.text
    assert "MSIS7070" in page.text
    assert f"school status school={ADFS_ID} status=Requester/InvalidNameIDPolicy" in caplog.text
    code = "upstream_status" if signed else "unsigned_status"
    assert f"refused code={code} status=502" in caplog.text
    # Not a dead end: trying again does not help, so the page offers no "Try again" (nor
    # another school, nor "if it keeps happening"); "Back to <platform>" is its main button.
    assert "Try again" not in page.text and "keeps happening" not in page.text
    assert not [f for f in page.forms if f.action.startswith(f"{demo.broker_url}/discovery")]
    assert 'class="button button--primary" type="submit">Back to' in page.text
    told = login.browser.submit(page, f"{demo.broker_url}/back-to-platform", follow=False)
    assert told.status == 200 and demo.answers_publisher(told), told.text[:300]
    carried = told.form(demo.publishers["leesplank"].acs_url).fields
    assert b"status:AuthnFailed" in base64.b64decode(carried["SAMLResponse"])


def test_a_status_outside_the_standard_is_logged_as_other(
    demo: LiveDemo, adfs: product.Signer, caplog: pytest.LogCaptureFixture
) -> None:
    page = adfs_says_no(demo, adfs, "Responder", "MadeUp-s.jansen@school.example", caplog)
    assert page.status == 502
    assert f"school status school={ADFS_ID} status=Responder/other" in caplog.text
    assert "s.jansen" not in caplog.text
    assert "For the school's ICT contact" not in page.text


# -- M2: the products' ways of signing in, judged by level --------------------------------------
@pytest.fixture(scope="module")
def entra(demo: LiveDemo) -> product.Signer:
    key = product.signer("Microsoft Azure Federated SSO Certificate")
    register(demo, ENTRA_ID, product.entra_metadata(key))
    return key


@pytest.fixture(scope="module")
def requiring(demo: LiveDemo) -> ServiceSp:
    """A SAML platform that states the level it needs in its AuthnRequest."""
    return registered_sp(demo, "niveau", "Platform with a required level (test publisher)")


def _level_login(
    demo: LiveDemo, sp: ServiceSp, school: str, sso: str, reference: str, comparison: str
) -> tuple[product.ProductLogin, Any, str | None]:
    """The platform asks for `reference` (`comparison`) at `school`: the login at the school,
    the platform's request, and the Comparison the school was asked with (None: no context)."""
    sso_url = f"{demo.broker_url}/saml/idp/sso"
    request = sp.authn_request(
        sso_url,
        scoping=Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=school)])),
        requested_authn_context=RequestedAuthnContext(
            authn_context_class_ref=[AuthnContextClassRef(text=reference)], comparison=comparison
        ),
    )
    browser = Browser()
    first = browser.get(sp.redirect_url(sso_url, request, sign=True), follow=False)
    location = first.location or ""
    assert location.startswith(sso), (first.status, first.text[:300])
    xml, params = redirect_message(location)
    upstream = etree.fromstring(xml)
    context = upstream.find("samlp:RequestedAuthnContext", NS)
    login = product.ProductLogin(
        browser, authn_request_id(location), params["RelayState"], upstream
    )
    return login, request, None if context is None else context.get("Comparison")


def _class_ref_told(page: Page, sp: ServiceSp, request: Any) -> str:
    assert page.status == 200, page.text[:500]
    fields = page.form(sp.acs[1]).fields
    accepted = sp.accept(fields["SAMLResponse"], request.id)
    return str(accepted.assertion.authn_statement[0].authn_context.authn_context_class_ref.text)


@pytest.mark.parametrize(
    ("product_name", "answered"),
    [("entra", PASSWORD), ("adfs", WINDOWS)],
    ids=["entra_password", "adfs_windows_integrated"],
)
def test_a_password_level_platform_takes_the_products_own_password_classes(
    demo: LiveDemo,
    entra: product.Signer,
    adfs: product.Signer,
    requiring: ServiceSp,
    product_name: str,
    answered: str,
) -> None:
    """A platform that asks "at least a password": the school is asked for no particular
    class (Entra ID would refuse a Windows or MFA sign-in, AADSTS75011), and Entra ID's
    `Password` and ADFS's Windows sign-in on a school PC are a password login."""
    if product_name == "entra":
        school, sso, key = product.entra_entity_id(), product.entra_endpoint(), entra
    else:
        school, sso, key = product.adfs_entity_id(ADFS_HOST), f"https://{ADFS_HOST}/adfs/ls/", adfs
    login, request, comparison = _level_login(
        demo, requiring, school, sso, product.PASSWORD_PROTECTED, "minimum"
    )
    assert comparison is None, "no RequestedAuthnContext towards the school"
    doc = product.response(demo, school, login.request_id, product.Answer(authn_context=answered))
    page = product.deliver(demo, login, product.signed_assertion_only(doc, key))
    assert _class_ref_told(page, requiring, request) == product.PASSWORD_PROTECTED


def test_entra_password_meets_an_exact_password_request(
    demo: LiveDemo, entra: product.Signer, requiring: ServiceSp
) -> None:
    login, request, comparison = _level_login(
        demo,
        requiring,
        product.entra_entity_id(),
        product.entra_endpoint(),
        product.PASSWORD_PROTECTED,
        "exact",
    )
    assert comparison == "exact"
    doc = product.response(
        demo, product.entra_entity_id(), login.request_id, product.Answer(authn_context=PASSWORD)
    )
    page = product.deliver(demo, login, product.signed_assertion_only(doc, entra))
    assert _class_ref_told(page, requiring, request) == product.PASSWORD_PROTECTED


@pytest.mark.parametrize("with_mfa", [True, False], ids=["mfa_listed", "password_only"])
def test_entra_mfa_listed_in_its_methods_meets_an_mfa_platform(
    demo: LiveDemo, entra: product.Signer, requiring: ServiceSp, with_mfa: bool
) -> None:
    """Entra ID's class is the first factor's (Password); MFA is among the methods of its
    authnmethodsreferences attribute. The school is asked for MFA at least."""
    login, request, comparison = _level_login(
        demo, requiring, product.entra_entity_id(), product.entra_endpoint(), REFEDS_MFA, "exact"
    )
    assert comparison == "minimum"
    methods = (ENTRA_METHOD, MICROSOFT_MFA) if with_mfa else (ENTRA_METHOD,)
    answer = product.Answer(
        authn_context=PASSWORD,
        attributes=(("givenName", ("Sanne",)), (AUTHN_METHODS, methods)),
        fraction=".1234567",
    )
    doc = product.response(demo, product.entra_entity_id(), login.request_id, answer)
    page = product.deliver(demo, login, product.signed_assertion_only(doc, entra))
    if with_mfa:
        assert _class_ref_told(page, requiring, request) == REFEDS_MFA
    else:
        assert page.status == 403, page.text[:300]


# -- M1: Entra ID's unsigned LogoutResponse -----------------------------------------------------
def _entra_signed_in(demo: LiveDemo, key: product.Signer) -> Browser:
    login = product.start_login(demo, product.entra_entity_id(), product.entra_endpoint())
    answer = product.Answer(name_id="AAAAAHbN0dBBq7pO8oeHPbDCNYw", authn_context=PASSWORD)
    doc = product.response(demo, product.entra_entity_id(), login.request_id, answer)
    page = carry_saml_posts(
        login.browser, product.deliver(demo, login, product.signed_assertion_only(doc, key))
    )
    assert page.status == 200, page.text[:300]
    return login.browser


def _logout_to_entra(demo: LiveDemo, browser: Browser) -> tuple[str, dict[str, str]]:
    """Log out everywhere from the my-data page, until the broker sends the browser to Entra
    ID; the LogoutRequest's ID and the query's parameters."""
    page = browser.get(f"{demo.broker_url}/my-data/sign-in")
    started = browser.submit(page, f"{demo.broker_url}/my-data/close")  # "Close and log out"
    load_frames(browser, started)
    to_school = browser.get(
        f"{demo.broker_url}/logout/{run_id_of(started)}/next",
        stop=lambda url: url.startswith(product.entra_endpoint()),
    )
    location = to_school.location or ""
    assert location.startswith(product.entra_endpoint()), (to_school.url, to_school.status)
    xml, params = redirect_message(location)
    assert "Signature" in params, "the broker signs its LogoutRequest"
    return str(etree.fromstring(xml).get("ID")), params


def _entra_answers(demo: LiveDemo, browser: Browser, xml: str, relay_state: str | None) -> Page:
    query = {"SAMLResponse": deflate(xml.encode())}
    if relay_state is not None:
        query["RelayState"] = relay_state
    return browser.get(f"{demo.broker_url}/saml/sp/slo?{urlencode(query)}")


def test_entras_unsigned_logout_answer_to_our_request_ends_the_wait_unconfirmed(
    demo: LiveDemo, entra: product.Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """Entra ID answers the broker's LogoutRequest unsigned: the final page is shown, with the
    school as not confirmed and the warning, never "logged out at school"."""
    caplog.set_level(logging.INFO)
    browser = _entra_signed_in(demo, entra)
    request_id, params = _logout_to_entra(demo, browser)
    answer = product.entra_logout_response(demo, request_id)
    final = carry_saml_posts(
        browser, _entra_answers(demo, browser, answer, params.get("RelayState"))
    )
    outcome = read_final(final)
    assert outcome.school != "confirmed" and outcome.school, outcome.school
    assert warns(final)
    assert f"logout answered school={ENTRA_ID} status=failed saml_status=unsigned" in caplog.text
    # The request is answered: the same unsigned answer again answers nothing.
    again = _entra_answers(demo, browser, answer, params.get("RelayState"))
    assert again.status == 400
    assert "refused code=request_unsigned" in caplog.text


def test_an_unsigned_logout_answer_to_no_request_of_ours_is_refused(
    demo: LiveDemo, entra: product.Signer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    browser = _entra_signed_in(demo, entra)
    answer = product.entra_logout_response(demo, "_not-a-request-of-ours")
    page = _entra_answers(demo, browser, answer, None)
    assert page.status == 400
    assert "refused code=request_unsigned status=400" in caplog.text
    assert "logout answered" not in caplog.text


# -- M4: a persistent NameID that is the student's e-mail address ------------------------------
GOOGLE_IDPID = "C01abcd23"


@pytest.fixture(scope="module")
def google(demo: LiveDemo) -> product.Signer:
    key = product.signer("Google")
    register(demo, GOOGLE_ID, product.google_metadata(GOOGLE_IDPID, key))
    return key


@pytest.mark.parametrize("language", ["en", "nl"])
def test_googles_persistent_name_id_holding_the_address_is_refused(
    demo: LiveDemo, google: product.Signer, caplog: pytest.LogCaptureFixture, language: str
) -> None:
    """Google Workspace's SAML app with Name ID format PERSISTENT still sends the primary
    e-mail address: refused, with what the school must change, never the value."""
    caplog.set_level(logging.INFO)
    entity_id = product.google_entity_id(GOOGLE_IDPID)
    login = product.start_login(demo, entity_id, "https://accounts.google.com/o/saml2/idp")
    login.browser.language = language
    answer = product.Answer(
        name_id="s.jansen@school.example",
        authn_context="urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified",
        fraction=".000",
    )
    doc = product.response(demo, entity_id, login.request_id, answer)
    page = product.deliver(demo, login, product.signed_response(doc, google))
    assert page.status == 502, page.text[:300]
    assert "s.jansen" not in page.text and "s.jansen" not in caplog.text
    assert f"refused school={GOOGLE_ID} code=name_id_is_address" in caplog.text
    # Its only way on, "Back to <platform>", is the main button; no "if it keeps happening".
    assert 'class="button button--primary" type="submit">' in page.text
    assert page.form(f"{demo.publishers['leesplank'].acs_url}")
    if language == "en":
        assert "keeps happening" not in page.text
        assert "Your school&#39;s sign-in service sends your e-mail address" in page.text
        assert "custom attribute that holds an identifier that never changes" in page.text
    else:
        assert "De inlogdienst van je school stuurt je e-mailadres" in page.text
        assert "OpenID Connect" in page.text


def test_a_persistent_name_id_in_the_schools_own_realm_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """Any IdP whose persistent NameID is an address of the school's realm (an ADFS rule that
    maps the UPN to Persistent): refused alike; an opaque one of the same IdP signs in."""
    caplog.set_level(logging.INFO)
    host = "adfs.realm.example"
    key = product.signer(f"ADFS Signing - {host}")
    register(demo, "26FF00", product.adfs_metadata(host, key), scopes=("realm.example",))
    entity_id, sso = product.adfs_entity_id(host), f"https://{host}/adfs/ls/"
    for value, status in (("S.Jansen@Realm.example", 502), ("Kx9V2p0m1Q==", 200)):
        login = product.start_login(demo, entity_id, sso)
        doc = product.response(demo, entity_id, login.request_id, product.Answer(name_id=value))
        page = product.deliver(demo, login, product.signed_assertion_only(doc, key))
        assert page.status == status, page.text[:300]
    assert "refused school=26FF00 code=name_id_is_address" in caplog.text


# -- L1: Keycloak's wrapped realm descriptor ----------------------------------------------------
KEYCLOAK = "https://sso.scholengroep.example"


def test_keycloaks_wrapped_descriptor_is_unwrapped_and_signs_in(demo: LiveDemo) -> None:
    """Older Keycloak versions wrap the realm's EntityDescriptor in `<EntitiesDescriptor
    Name="urn:keycloak">`: taken off at intake, and the realm's login goes through the ACS."""
    key = product.signer("scholen")
    wrapped = product.keycloak_metadata(KEYCLOAK, "scholen", key)
    with pytest.raises(BadRequest, match="not an aggregate"):
        idp_entity_id(wrapped)
    entity_id = register(demo, KEYCLOAK_ID, single_idp_entity(wrapped))
    assert entity_id == product.keycloak_entity_id(KEYCLOAK, "scholen")
    login = product.start_login(demo, entity_id, f"{entity_id}/protocol/saml")
    answer = product.Answer(name_id="G-2f1c0a1e-1111-4444-8888-000000000001", fraction=".789")
    doc = product.response(demo, entity_id, login.request_id, answer)
    product.sign(doc.find(f"{{{product.SAML}}}Assertion"), key)
    page = product.deliver(demo, login, product.signed_response(doc, key))
    assert page.status == 200 and demo.answers_publisher(page), page.text[:300]


def test_school_add_takes_keycloaks_wrapped_file(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    assert run("init", folder).exit_code == 0
    config = folder / "ketenbroker.toml"
    metadata = tmp_path / "keycloak.xml"
    metadata.write_text(product.keycloak_metadata(KEYCLOAK, "scholen", product.signer("k")))
    result = run(
        "school", "add", "--config", config, "--id", KEYCLOAK_ID, "--name", "Keycloakschool",
        "--saml-metadata", metadata,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    registry = registry_of(config)
    try:
        entity_id = product.keycloak_entity_id(KEYCLOAK, "scholen")
        stored = registry.school_metadata(idp_entity_id=entity_id)[entity_id]
    finally:
        registry.close()
    assert stored.lstrip().startswith("<md:EntityDescriptor"), stored[:80]
    assert "EntitiesDescriptor" not in stored


def _two_entities(xml: str) -> str:
    inner = xml[xml.index("<md:EntityDescriptor") : xml.index("</md:EntitiesDescriptor>")]
    return xml.replace(inner, inner + inner.replace("/realms/scholen", "/realms/andere"))


@pytest.mark.parametrize(
    "change",
    [
        _two_entities,  # an aggregate stays one
        # A signed wrapper: its signature would not hold for the inner entity alone.
        lambda xml: xml.replace(
            "<md:EntityDescriptor", '<ds:Signature Id="s"/><md:EntityDescriptor', 1
        ),
    ],
    ids=["two_entities", "signed_wrapper"],
)
def test_only_a_plain_wrapper_of_one_idp_is_taken_off(change: Any) -> None:
    wrapped = change(product.keycloak_metadata(KEYCLOAK, "scholen", product.signer("k")))
    assert single_idp_entity(wrapped) == wrapped
    with pytest.raises(BadRequest, match="not an aggregate"):
        idp_entity_id(wrapped)


# -- L2: ADFS's and Entra ID's own claim names --------------------------------------------------
XS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
TENANT_CLAIM = "http://schemas.microsoft.com/identity/claims/tenantid"


def test_adfs_default_claim_names_are_read_and_unknown_names_logged_once(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """ADFS's default claim types reach the platform under the broker's names; a name the
    broker does not know is logged (name only, once per school and hour), never its value."""
    caplog.set_level(logging.INFO)
    host = "adfs.claims.example"
    key = product.signer(f"ADFS Signing - {host}")
    register(demo, "27GG00", product.adfs_metadata(host, key))
    demo.registry.set_policy("27GG00", "leesplank", frozenset({"given_name"}), "test")
    entity_id, sso = product.adfs_entity_id(host), f"https://{host}/adfs/ls/"
    claims = (
        (XS + "givenname", ("Sanne",)),
        (XS + "surname", ("Jansen",)),
        (TENANT_CLAIM, ("0a1b2c3d-tenant-value",)),
        ("urn:example:claims:mentor", ("de heer Visser",)),
    )
    for _ in range(2):
        login = product.start_login(demo, entity_id, sso)
        answer = product.Answer(attributes=claims)
        doc = product.response(demo, entity_id, login.request_id, answer)
        page = product.deliver(demo, login, product.signed_assertion_only(doc, key))
        assert page.status == 200 and demo.answers_publisher(page), page.text[:300]
        login.browser.submit(page, demo.publishers["leesplank"].acs_url)
        released = attributes_by_name(demo.received(login.browser, "leesplank"))
        assert released["urn:oid:2.5.4.42"]["values"] == ["Sanne"]
    line = (
        f"unknown attributes dropped school=27GG00 names={TENANT_CLAIM},urn:example:claims:mentor"
    )
    assert caplog.messages.count(line) == 1, caplog.messages
    assert "tenant-value" not in caplog.text and "Visser" not in caplog.text
