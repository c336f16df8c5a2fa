"""The publisher's declarations in the portal, with the Flask test client: registering a SAML
service in one round (every problem at once, localised, the metadata kept, an error summary),
what a publisher configures, bilingual purposes shown in the page's language, and a change of
declarations that says how many schools must confirm again before it saves."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from html import unescape
from io import BytesIO

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from broker.core.catalogue import CATALOGUE
from broker.core.model import Declaration, OidcUpstream, School, Service
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, csrf_token

NEW = f"/portal/publisher/{PUBLISHER_ID}/services/new"
NOT_NEEDED = {f"need_{name}": "" for name in CATALOGUE}
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def sp_metadata(entity_id: str, acs: str) -> str:
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" entityID="{entity_id}">'
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:KeyDescriptor use="signing"/>'
        f'<md:AssertionConsumerService Binding="{POST}" Location="{acs}" index="0"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("declarations"), port=8740)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def publisher(site: PortalSite) -> FlaskClient:
    return site.sign_in("publisher")


def post(
    client: FlaskClient, url: str, data: Mapping[str, object], lang: str = "nl"
) -> tuple[int, str]:
    token = csrf_token(client.get(f"{url}?lang={lang}", base_url=HTTPS).get_data(as_text=True))
    response = client.post(
        url, base_url=HTTPS, data={"csrf_token": token, **data}, content_type="multipart/form-data"
    )
    return response.status_code, response.get_data(as_text=True)


def summary_links(page: str) -> list[str]:
    found = re.search(r'<div class="alert error-summary".*?</div>', page, re.S)
    assert found, "no error summary"
    return re.findall(r'<a href="#([\w-]+)">', found.group(0))


def post_new_service(
    publisher: FlaskClient, service_id: str, xml: str, **fields: str
) -> tuple[int, str]:
    """A new SAML service named `service_id` with metadata `xml` uploaded as a file."""
    return post(
        publisher,
        NEW,
        {
            **NOT_NEEDED,
            "service_id": service_id,
            "name": service_id,
            "naming": "oid",
            "need_given_name": "optional",
            **fields,
            "metadata_file": (BytesIO(xml.encode()), "metadata.xml"),
        },
    )


def test_registration_checks_everything_in_one_round_and_keeps_the_metadata(
    site: PortalSite, publisher: FlaskClient
) -> None:
    bad = sp_metadata("https://sp.educo.example", "http://educo.example/acs")
    status, page = post_new_service(publisher, "Educo Lezen", bad)
    assert status == 400
    # All three problems in this one answer: the id, the purpose, the metadata (in Dutch).
    assert summary_links(page) == ["service_id", "metadata_file", "purpose_given_name"]
    assert re.search(
        r"De ACS-URL 'http://educo\.example/acs' van \S+ moet https zijn", unescape(page)
    )
    assert "must be https" not in page
    # The rule for the id is a hint before anyone gets it wrong, not only an error.
    assert 'id="service_id-hint"' in page
    # The uploaded file's content comes back in the text field: no second upload needed.
    kept = re.search(r'<textarea[^>]*name="metadata_xml"[^>]*>(.*?)</textarea>', page, re.S)
    assert kept is not None and unescape(kept.group(1)).strip() == bad
    assert site.registry.any_service("educo-lezen") is None

    good = bad.replace("http://educo.example/acs", "https://educo.example/acs")
    status, page = post(
        publisher,
        NEW,
        {
            **NOT_NEEDED,
            "service_id": "educo-lezen",
            "name": "Educo Lezen",
            "naming": "oid",
            "need_given_name": "optional",
            "purpose_given_name": "Om de leerling te begroeten.",
            "purpose_en_given_name": "To greet the student.",
            "metadata_xml": good,  # pasted, or kept from the round before
        },
    )
    assert status == 303, page
    service = site.registry.any_service("educo-lezen")
    assert service is not None and service.entity_id == "https://sp.educo.example"
    assert service.declarations == (
        Declaration("given_name", "Om de leerling te begroeten.", False, "To greet the student."),
    )


def test_metadata_problems_are_english_on_an_english_page(publisher: FlaskClient) -> None:
    status, page = post(
        publisher,
        NEW,
        {**NOT_NEEDED, "service_id": "x-en", "name": "X", "naming": "oid", "metadata_xml": "<a"},
        lang="en",
    )
    assert status == 400
    assert "metadata is not well-formed XML (line 1)" in page
    assert summary_links(page) == ["metadata_file"]


def test_a_saml_service_page_says_what_to_configure(
    site: PortalSite, publisher: FlaskClient
) -> None:
    site.registry.add_service(
        Service("saml-info", "Info", "https://sp.info.example", None, publisher_id=PUBLISHER_ID),
        sp_metadata("https://sp.info.example", "https://sp.info.example/acs"),
    )
    page = publisher.get(
        f"/portal/publisher/{PUBLISHER_ID}/services/saml-info?lang=en", base_url=HTTPS
    ).get_data(as_text=True)
    block = re.search(r'<dl class="credentials" id="saml-idp">.*?</dl>', page, re.S)
    assert block is not None
    base = site.settings.base_url
    assert f"<code>{base}/saml/idp/metadata</code>" in block.group(0)
    assert f"<code>{base}/saml/idp/sso</code>" in block.group(0)
    assert "nameid-format:persistent" in block.group(0)


def _declare(site: PortalSite, service_id: str) -> str:
    name = Declaration("given_name", "Om te begroeten", purpose_en="To greet")
    site.registry.add_service(
        Service(
            service_id,
            "Lesweb",
            f"https://sp.{service_id}.example",
            None,
            declarations=(name,),
            publisher_id=PUBLISHER_ID,
        ),
        sp_metadata(f"https://sp.{service_id}.example", f"https://sp.{service_id}.example/acs"),
    )
    site.registry.approve_service(service_id)
    site.registry.set_policy(DEMO_SCHOOL_ID, service_id, frozenset({"given_name"}), "admin:1")
    return f"/portal/publisher/{PUBLISHER_ID}/services/{service_id}"


def test_a_new_purpose_text_saves_at_once_and_keeps_the_choices(
    site: PortalSite, publisher: FlaskClient
) -> None:
    url = _declare(site, "lesweb-tekst")
    status, _ = post(
        publisher,
        url,
        {
            **NOT_NEEDED,
            "need_given_name": "optional",
            # Another capital, a full stop, a new English text: the same purpose
            # (core/purposes.py; a new one: test_portal_purpose_change.py).
            "purpose_given_name": "Om te Begroeten.",
            "purpose_en_given_name": "To greet the student.",
        },
    )
    assert status == 303
    assert site.registry.policy(DEMO_SCHOOL_ID, "lesweb-tekst").attributes == {"given_name"}
    page = publisher.get(f"{url}?lang=en", base_url=HTTPS).get_data(as_text=True)
    history = re.search(r'<ul id="history">.*?</ul>', page, re.S)
    assert history is not None
    assert "purpose reworded: First name." in history.group(0)
    assert "Schools' choices kept." in history.group(0)
    # Who: the colleague's address on the page (the registry records only `admin:<id>`).
    assert "dev@noord.example:" in history.group(0) and "admin:" not in history.group(0)


def test_the_history_names_the_brokers_tools_and_no_namesake_of_another_role(
    site: PortalSite, publisher: FlaskClient
) -> None:
    """Registration and a registry import by the operator are named by what they are (the
    import's record keeps the operator's login name on the server, the page does not show it);
    a school administrator whose school id is the publisher's id string is no colleague."""
    url = _declare(site, "lesweb-wie")  # version 1: recorded as `registration`
    issuer = "https://login.namesake.example"
    namesake_school = School(
        PUBLISHER_ID, "Namesake", issuer, oidc=OidcUpstream(issuer, "client", "secret")
    )
    site.registry.add_school(namesake_school, "")
    namesake = site.add_account("ict@namesake.example", AdminRole.SCHOOL, PUBLISHER_ID)
    purposes = (Declaration("given_name", "Om te begroeten.", purpose_en="To greet."),)
    site.registry.set_declarations("lesweb-wie", purposes, "import:beheer-jdevries")
    required = (Declaration("given_name", "Om te begroeten.", True, purpose_en="To greet."),)
    site.registry.set_declarations("lesweb-wie", required, f"admin:{namesake.admin.id}")
    for lang, registration, operator, removed in (
        ("en", "registration of the service", "the broker's operator (registry import)", "removed administrator"),
        ("nl", "registratie van de dienst", "de operator van de federatie (registerimport)", "verwijderde beheerder"),
    ):  # fmt: skip
        page = publisher.get(f"{url}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
        history = re.search(r'<ul id="history">.*?</ul>', page, re.S)
        assert history is not None
        # Newest first: "Version 3, <when>, <who>: ..."
        authors = re.findall(r"<li>\w+ \d+, [^,]+, (.*?):", unescape(history.group(0)))
        assert authors == [removed, operator, registration]
        assert "beheer-jdevries" not in page and "ict@namesake.example" not in page


def test_a_change_that_needs_confirming_says_how_many_schools_first(
    site: PortalSite, publisher: FlaskClient
) -> None:
    url = _declare(site, "lesweb-nodig")
    wanted = {
        **NOT_NEEDED,
        "need_given_name": "required",
        "purpose_given_name": "Om te begroeten",
        "purpose_en_given_name": "To greet",
    }
    status, page = post(publisher, url, wanted, lang="en")
    assert status == 200
    assert "This change needs 1 school to confirm its choice again." in unescape(page)
    assert 'name="confirmed" value="1"' in page
    service = site.registry.any_service("lesweb-nodig")
    assert service is not None and service.declaration_version == 1  # nothing saved yet
    status, _ = post(publisher, url, {**wanted, "confirmed": "1"})
    assert status == 303
    service = site.registry.any_service("lesweb-nodig")
    assert service is not None and service.reconfirm_version == 2
    assert site.registry.policy(DEMO_SCHOOL_ID, "lesweb-nodig").attributes == frozenset()
    page = publisher.get(f"{url}?lang=en", base_url=HTTPS).get_data(as_text=True)
    assert "now required: First name. Schools must confirm again." in " ".join(page.split())


def test_the_school_portal_shows_the_purpose_in_the_pages_language(site: PortalSite) -> None:
    _declare(site, "lesweb-taal")
    school = site.sign_in("school")
    url = f"/portal/school/{DEMO_SCHOOL_ID}/services/lesweb-taal"
    dutch = school.get(f"{url}?lang=nl", base_url=HTTPS).get_data(as_text=True)
    english = school.get(f"{url}?lang=en", base_url=HTTPS).get_data(as_text=True)
    assert "Om te begroeten" in dutch and "To greet" not in dutch
    assert "To greet" in english and "Om te begroeten" not in english


def test_metadata_with_an_acs_url_on_a_unicode_host_is_refused_naming_its_xn_form(
    site: PortalSite, publisher: FlaskClient
) -> None:
    xml = sp_metadata("https://sp.bucher.example", "https://bücher.example/acs")
    purpose = "Om de leerling bij de voornaam te begroeten."
    status, page = post_new_service(publisher, "buecher", xml, purpose_given_name=purpose)
    assert status == 400
    assert (
        "URL 'https://bücher.example/acs' van https://sp.bucher.example moet de host in ASCII "
        "schrijven (de xn---vorm): gebruik 'https://xn--bcher-kva.example/acs'"
    ) in unescape(page)
    assert site.registry.any_service("buecher") is None


@pytest.mark.parametrize(
    ("lang", "hint"),
    [
        ("nl", "Schrijf elk doel aan de leerling"),
        ("en", "Write each purpose to the student"),
    ],
)
def test_the_declaration_form_asks_for_a_purpose_written_to_the_student(
    publisher: FlaskClient, lang: str, hint: str
) -> None:
    """Students read the purpose on the notice and their data page ("Why: …"): the form asks
    for it in the second person ("Om je te begroeten."), not about "the student"."""
    page = publisher.get(f"{NEW}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
    assert hint in page
    assert "&#34;Om je te begroeten.&#34;" in page or '"Om je te begroeten."' in page
