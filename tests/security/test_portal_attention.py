"""The operator's "Needs attention" page (core/attention.py through operations/attention.py):
every kind present in one registry, set up as the broker would hold it (copies from before intake
checked their URLs written straight in, a school registered without metadata, a service
waiting for approval, one source never fetched and one whose refresh fails, a secret in
clear), then the kinds in their order, with counts, explanations and links, in Dutch (formal)
and English; an empty registry says so; only operators open it, and it changes nothing."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.config import MetadataSettings, MetadataSource
from broker.core.federation import FederationEntity, FeedDates, LeftOut
from broker.core.model import School, Service
from tests.support.portal import (
    HTTPS,
    PUBLISHER_ID,
    PortalSite,
    form_fields,
    page_addresses,
    plain_http_copy,
)

PAGE = "/portal/operator/attention"
WAITING = "wachtdienst"
NO_METADATA = "33CC"
NOT_BRIN = "lyceum-oost"
NAMING_IDP = "https://idp.bestuur.example/md"
OLD_CHAIN = f"service:{WAITING}"
EXPIRED = "55EE"
EXPIRED_IDP = "https://idp.verlopen.example/md"
LEFT_OUT = "77GG"
SOURCES = tuple(
    MetadataSource(name, f"https://{name}.example/md.xml", None, (Path("/nonexistent.crt"),))
    for name in ("fed", "oud", "weg")
)


def _registry_file(site: PortalSite) -> Path:
    return site.directory / "registry.sqlite3"


def _attention_site(directory: Path, port: int) -> PortalSite:
    """A site whose registry holds every kind of the report (module note)."""
    built = PortalSite(directory, port=port)
    registry = built.registry
    # The demo school's copy with plain-http SSO and SLO URLs, past every intake check.
    original = registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    registry.update_school_metadata(
        DEMO_SCHOOL_ID,
        plain_http_copy(original, "/sso", ("/sso", "/slo"), "http://idp.lyceum.example"),
    )
    # A school registered with no metadata, and no source holding its IdP.
    registry.add_school(School(NO_METADATA, "Zonder Metadata College", "https://idp.zm/md"), "")
    # A school whose id is no BRIN on an IdP that must name its school (a registry restored
    # from before the rule: the mark written by hand).
    demo_idp = registry.school(DEMO_SCHOOL_ID)
    assert demo_idp is not None
    board = original.replace(f'entityID="{demo_idp.idp_entity_id}"', f'entityID="{NAMING_IDP}"')
    registry.add_school(School(NOT_BRIN, "Lyceum Oost", NAMING_IDP), board)
    # A publisher's service waiting for approval whose ACS and SLO URLs are plain http.
    demo = registry.any_service("leesplank")
    assert demo is not None
    own = registry.registered_metadata("sp", demo.id).replace(
        f'entityID="{demo.entity_id}"', 'entityID="https://sp.wacht.example/md"'
    )
    own = plain_http_copy(own, "/acs", ("/acs", "/slo"), "http://sp.wacht.example")
    registry.add_service(
        Service(
            WAITING,
            "Wachtdienst",
            "https://sp.wacht.example/md",
            None,
            approved=False,
            publisher_id=PUBLISHER_ID,
        ),
        own,
    )
    # Two sources configured: one never fetched, one fetched three hours ago (stale: twice
    # its refresh period has passed); and a staff secret in clear in a registry not marked.
    now = datetime.now(UTC)
    registry.federation.store(
        "oud", "0" * 64, FeedDates(None, now + timedelta(days=7)), [], now - timedelta(hours=3)
    )
    registry.federation.refused("oud", "fetch_failed", now)
    # A school registered by entity id whose source's copy has expired since: only the source
    # mends it (the school's own page does not).
    expired = board.replace(f'entityID="{NAMING_IDP}"', f'entityID="{EXPIRED_IDP}"')
    past = now - timedelta(hours=1)
    registry.federation.store(
        "weg",
        "1" * 64,
        FeedDates(None, past),
        [FederationEntity(EXPIRED_IDP, "idp", expired, past)],
        now - timedelta(days=2),
    )
    registry.add_school(School(EXPIRED, "Verlopen College", EXPIRED_IDP), "")
    settings = dataclasses.replace(built.settings, metadata=MetadataSettings(sources=SOURCES))
    built.app.extensions["ketenbroker"] = dataclasses.replace(built.broker, settings=settings)
    built.add_account("oud@broker.example", built.accounts["operator"].admin.role, None)
    with sqlite3.connect(_registry_file(built)) as connection:
        connection.execute("INSERT INTO idps_naming_school (entity_id) VALUES (?)", (NAMING_IDP,))
        # A chain registered before the rule for chain ids, spelled as the waiting service's
        # own chain input (it is in no chain).
        connection.execute("INSERT INTO chains (id, name) VALUES (?, 'Oude keten')", (OLD_CHAIN,))
        connection.execute("DELETE FROM sealed_only")
        connection.execute(
            "UPDATE admins SET totp_secret = 'JBSWY3DPEHPK3PXP' WHERE email = 'oud@broker.example'"
        )
    return built


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    """Shared by the tests that only read it."""
    built = _attention_site(tmp_path_factory.mktemp("attention"), 8833)
    yield built
    built.registry.close()


@pytest.fixture
def own_site(tmp_path: Path) -> Iterator[PortalSite]:
    """One of its own, for a test that changes the registry."""
    built = _attention_site(tmp_path, 8835)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    return site.sign_in("operator")


def _sections(page: str) -> list[tuple[str, int]]:
    """(kind, count) of each section, in the page's order."""
    found = re.findall(r'id="attention-([a-z_]+)">\s*<h2>[^<]*<span class="muted">\((\d+)\)', page)
    return [(kind, int(count)) for kind, count in found]


def _section(page: str, kind: str) -> str:
    start = page.index(f'id="attention-{kind}"')
    return page[start : page.index("</li>\n", page.index("</ul>", start))]


def test_every_kind_in_its_order_with_counts_reasons_and_links(
    site: PortalSite, operator: FlaskClient
) -> None:
    before = site.registry.snapshot()
    response = operator.get(PAGE + "?lang=en", base_url=HTTPS)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # Logins refused first (schools by reason, in id order within each), then what waits for
    # the operator, then what works but is at risk, then the logouts that do not arrive.
    assert _sections(page) == [
        ("schools_logins_refused", 4),
        ("services_logins_refused", 1),
        ("sources_untrusted", 2),
        ("services_awaiting_approval", 1),
        ("sources_stale", 1),
        ("chains_id_not_plain", 1),
        ("secrets_in_clear", 1),
        ("schools_logout_unreached", 1),
        ("services_logout_unreached", 1),
    ]
    schools = _section(page, "schools_logins_refused")
    assert "Every login through these schools is refused" in schools
    assert schools.index(NO_METADATA) < schools.index(EXPIRED) < schools.index(DEMO_SCHOOL_ID)
    assert schools.index(DEMO_SCHOOL_ID) < schools.index(NOT_BRIN)
    assert "no metadata in force for its identity provider" in schools
    assert "the metadata source&#39;s copy of its identity provider has expired" in schools
    assert "sign-in address (SSO URL) is not https" in schools
    assert "its id is not a BRIN, on an identity provider that must name the school" in schools
    services = _section(page, "services_logins_refused")
    assert "address for receiving sign-ins (ACS URL) is not https" in services
    assert "fed" in _section(page, "sources_untrusted")
    assert "no good copy yet" in _section(page, "sources_untrusted")
    assert "refresh failing (fetch_failed)" in _section(page, "sources_stale")
    assert "Run ketenbroker registry seal-secrets" in _section(page, "secrets_in_clear")
    chains = _section(page, "chains_id_not_plain")
    assert f'Oude keten <span class="muted">({OLD_CHAIN})</span>' in chains
    assert "its services receive the pseudonyms of the service of that id" in chains
    assert "ketenbroker chain move SERVICE --to CHAIN --window DAYS" in chains
    assert "logout address (SLO URL) is not https" in _section(page, "schools_logout_unreached")
    # Each school links to its operator page, each service to its card on the Services page
    # (searched by its id, so the card is on the list's first page however long the list).
    addresses = page_addresses(page)
    for school_id in (NO_METADATA, DEMO_SCHOOL_ID, NOT_BRIN):
        assert f"/portal/operator/schools/{school_id}" in addresses
    card = f"/portal/operator/services?q={WAITING}#service-{WAITING}"
    assert card in addresses
    services_page = operator.get(card, base_url=HTTPS).get_data(as_text=True)
    assert f'id="service-{WAITING}"' in services_page
    # The first item of the operator's navigation; read only: its one form is the sign-out's.
    nav = page[page.index('class="portal-nav"') :]
    assert nav.index(PAGE) < nav.index("/portal/operator/services")
    action, _ = form_fields(page, "")
    assert action == "/portal/sign-out" and page.count("<form") == 1
    assert site.registry.snapshot() == before


def test_what_to_do_depends_on_the_reason(operator: FlaskClient) -> None:
    """A kind whose reasons are mended in different places says what to do per reason, each
    after its reason's words; a school on a metadata source's expired copy and one whose id is
    not a BRIN on a shared provider are not sent to their own pages, where nothing helps."""
    page = operator.get(PAGE + "?lang=en", base_url=HTTPS).get_data(as_text=True)
    advice = re.findall(r'<p class="advice">(.*?)</p>', _section(page, "schools_logins_refused"))
    assert advice == [
        "<strong>no metadata in force for its identity provider:</strong> Ask the school to "
        "register its identity provider&#39;s metadata on its Identity provider page, or "
        "register it yourself with ketenbroker school update --saml-metadata; when a metadata "
        "source is to supply it, run ketenbroker metadata refresh and check ketenbroker "
        "metadata status.",
        "<strong>the metadata source&#39;s copy of its identity provider has expired:</strong> "
        "This metadata comes from a metadata source whose copy has expired, so registering it "
        "again does not help: check ketenbroker metadata status and the log of the refresh, "
        "and run ketenbroker metadata refresh.",
        "<strong>sign-in address (SSO URL) is not https:</strong> Ask the school to register "
        "its identity provider again on its Identity provider page, or register it yourself "
        "with ketenbroker school update.",
        "<strong>its id is not a BRIN, on an identity provider that must name the school:"
        "</strong> Only you can mend this: the school&#39;s Identity provider page shows a "
        "shared identity provider read-only. Register the school again with its BRIN as id "
        "(ketenbroker school remove, then ketenbroker school add --id with its BRIN); its "
        "students get new pseudonyms at its services.",
    ]
    # One reason, or reasons mended alike: the advice once, with no reason before it.
    sources = re.findall(r'<p class="advice">(.*?)</p>', _section(page, "sources_untrusted"))
    assert sources == [
        "Check ketenbroker metadata status and the log of the refresh, and run ketenbroker "
        "metadata refresh."
    ]


def test_dutch_speaks_formally(operator: FlaskClient) -> None:
    page = operator.get(PAGE + "?lang=nl", base_url=HTTPS).get_data(as_text=True)
    assert "<h1>Aandacht nodig</h1>" in page
    assert ">Aandacht nodig</a>" in page  # the navigation
    assert "Scholen waarvan de leerlingen niet kunnen inloggen" in page
    assert "Diensten die op uw goedkeuring wachten" in page
    assert "totdat u ze goedkeurt" in page
    assert "inlogadres (SSO-URL) is geen https" in page
    assert "Scholen waar uitlogberichten niet aankomen" in page
    assert "Diensten waar uitlogberichten niet aankomen" in page
    assert "alleen u kunt dit verhelpen" in page.lower()
    assert "Ketens waarvan de id niet aan de regel voor keten-id" in page
    assert not re.search(r"\b(je|jij|jouw)\b", page, re.IGNORECASE)


def test_past_the_first_entries_the_count_says_how_many_more(
    site: PortalSite, operator: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The page lists one entry per kind (its default is 50, more than set up here).
    # (The package's attribute `operator_pages` is the blueprint: the module is taken by name.)
    monkeypatch.setattr(sys.modules["broker.web.portal.operator_pages"], "ATTENTION_SHOWN", 1)
    page = operator.get(PAGE + "?lang=en", base_url=HTTPS).get_data(as_text=True)
    schools = _section(page, "schools_logins_refused")
    assert schools.count("/portal/operator/schools/") == 1
    assert "And 3 more: ketenbroker registry problems --all names them all." in schools
    # What to do covers every reason of the kind, not only the one entry listed.
    assert schools.count('<p class="advice">') == 4


def test_an_empty_report_says_so(tmp_path: Path) -> None:
    fresh = PortalSite(tmp_path, port=8834)
    try:
        client = fresh.sign_in("operator")
        page = client.get(PAGE + "?lang=en", base_url=HTTPS)
        text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "Nothing needs your attention" in text and 'id="attention-' not in text
        dutch = client.get(PAGE + "?lang=nl", base_url=HTTPS)
        assert "Niets heeft uw aandacht nodig" in dutch.get_data(as_text=True)
    finally:
        fresh.registry.close()


@pytest.mark.parametrize("role", ["school", "publisher"])
def test_school_and_publisher_administrators_are_forbidden(site: PortalSite, role: str) -> None:
    response = site.sign_in(role).get(PAGE, base_url=HTTPS)
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Geen toegang" in page and "attention-" not in page


def test_a_registry_change_shows_on_the_next_view(own_site: PortalSite) -> None:
    """The app keeps the registry's facts per generation (operations/attention.py `Memo`):
    approving the service (a new generation) takes it off the page at once; sealing the secret
    in clear (no new generation) too."""
    site, operator = own_site, own_site.sign_in("operator")
    first = operator.get(PAGE + "?lang=en", base_url=HTTPS).get_data(as_text=True)
    assert "attention-services_awaiting_approval" in first
    site.registry.approve_service(WAITING)
    site.registry.seal_secrets()
    page = operator.get(PAGE + "?lang=en", base_url=HTTPS).get_data(as_text=True)
    kinds = [kind for kind, _ in _sections(page)]
    assert "services_awaiting_approval" not in kinds and "secrets_in_clear" not in kinds
    assert "services_logins_refused" in kinds  # its ACS URL is still plain http


def test_a_school_its_source_left_out_is_sent_to_its_federation(own_site: PortalSite) -> None:
    """The feed of source `fed` holds the school's identity provider but left it out (a
    plain-http SSO URL): not "no metadata in force" with the advice to register it, but the
    source's reason, its words for it (as the refresh said them, in English), and the
    federation as the place to mend it. The list moves without a new generation (an unchanged
    feed replaces it), and the page reads it fresh."""
    site, operator = own_site, own_site.sign_in("operator")
    left_idp = "https://idp.weggelaten.example/md"
    site.registry.add_school(School(LEFT_OUT, "Weggelaten College", left_idp), "")
    until = FeedDates(None, datetime.now(UTC) + timedelta(days=7))
    site.registry.federation.store("fed", "2" * 64, until, [], datetime.now(UTC))
    first = operator.get(PAGE + "?lang=en", base_url=HTTPS).get_data(as_text=True)
    assert "Weggelaten College" in _section(first, "schools_logins_refused")
    generation = site.registry.generation()
    detail = f"SSO URL 'http://idp.weggelaten.example/sso' of {left_idp} must be https"
    member = LeftOut(left_idp, "entity_unusable", detail, "idp")
    assert not site.registry.federation.store(
        "fed", "2" * 64, until, [], datetime.now(UTC), left_out=[member]
    )
    assert site.registry.generation() == generation
    page = operator.get(PAGE + "?lang=en", base_url=HTTPS).get_data(as_text=True)
    schools = _section(page, "schools_logins_refused")
    entry = re.search(rf"<li><a href=\"[^\"]*/{LEFT_OUT}\">.*?</li>", schools, re.DOTALL)
    assert entry is not None
    assert "a metadata source left out its identity provider: its entry fails the checks" in (
        entry.group()
    )
    shown = detail.replace("'", "&#39;")
    assert f'<span class="muted" lang="en">({shown})</span>' in entry.group()
    assert "no metadata in force" not in entry.group()
    advice = re.findall(r'<p class="advice">(.*?)</p>', schools)
    assert (
        "<strong>a metadata source left out its identity provider: its entry fails the checks:"
        "</strong> A metadata source holds this identity provider but left its entry out, so "
        "registering its metadata here does not mend it: ask the school to have its entry in "
        "its federation corrected. ketenbroker registry problems and ketenbroker metadata "
        "refresh say what is wrong with it."
    ) in advice
    dutch = operator.get(PAGE + "?lang=nl", base_url=HTTPS).get_data(as_text=True)
    assert "een metadatabron heeft de inlogdienst weggelaten: de vermelding voldoet niet" in dutch
    assert "vraag de school om haar vermelding bij haar federatie te laten corrigeren" in dutch
    assert not re.search(r"\b(je|jij|jouw)\b", dutch, re.IGNORECASE)
