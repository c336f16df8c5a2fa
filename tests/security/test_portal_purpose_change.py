"""A new purpose through the portal's real pages (core/purposes.py, docs/portals.md): the
publisher's page says how many schools share the attribute and asks to save once more; then that
attribute stops at each such school, whose page says which and why ("purpose changed from …
to …") and releases it again with one save; new wording keeps every choice; a choice made on a
page that showed the old purpose is refused.

Flask test client against the demo's broker app, signed in as the publisher and as the school.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from html import unescape

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.errors import RequiredAttributeMissing
from broker.core.model import Declaration, Service
from broker.core.release import release_for
from tests.security.test_portal_declarations import NOT_NEEDED, post, sp_metadata
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, choice_fields

NAME = Declaration("given_name", "Om te begroeten", purpose_en="To greet")
MAIL = Declaration(
    "email", "Om de leerling een inloglink te sturen", purpose_en="To send the student a link"
)
MARKETING = "Om de leerling nieuws en aanbiedingen te sturen"
BOTH = frozenset({"given_name", "email"})
LISTED = f"/portal/school/{DEMO_SCHOOL_ID}/services"
OVERVIEW = f"/portal/school/{DEMO_SCHOOL_ID}/overview"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("purpose-change"), port=8805)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def publisher(site: PortalSite) -> FlaskClient:
    return site.sign_in("publisher")


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


def _released(site: PortalSite, service_id: str, mail: Declaration = MAIL) -> tuple[str, str]:
    """A service declaring the first name and the e-mail address (`mail`), both released by
    the demo school: (the publisher's page, the school's page)."""
    entity = f"https://sp.{service_id}.example"
    site.registry.add_service(
        Service(
            service_id,
            "Leesweb",
            entity,
            None,
            declarations=(NAME, mail),
            publisher_id=PUBLISHER_ID,
        ),
        sp_metadata(entity, f"{entity}/acs"),
    )
    site.registry.approve_service(service_id)
    site.registry.set_policy(DEMO_SCHOOL_ID, service_id, BOTH, "admin:1")
    return (
        f"/portal/publisher/{PUBLISHER_ID}/services/{service_id}",
        f"/portal/school/{DEMO_SCHOOL_ID}/services/{service_id}",
    )


def _declarations(mail_purpose: str, mail_english: str = MAIL.purpose_en) -> dict[str, object]:
    return {
        **NOT_NEEDED,
        "need_given_name": "optional",
        "purpose_given_name": NAME.purpose,
        "purpose_en_given_name": NAME.purpose_en,
        "need_email": "optional",
        "purpose_email": mail_purpose,
        "purpose_en_email": mail_english,
    }


def _text(page: str, element_id: str, tag: str = "div") -> str:
    found = re.search(rf'<{tag}[^>]*id="{element_id}".*?</{tag}>', page, re.S)
    assert found is not None, f"no #{element_id}"
    # The words a person reads: markup left out (a purpose's lang span, the table's cells).
    return " ".join(unescape(re.sub(r"<[^>]+>", "", found.group(0))).split())


def _page(client: FlaskClient, url: str, lang: str = "en") -> str:
    return client.get(f"{url}?lang={lang}", base_url=HTTPS).get_data(as_text=True)


def _save_both(school: FlaskClient, url: str, page: str) -> None:
    """The school ticks the first name and the e-mail address on `page` and saves."""
    saved = school.post(
        url,
        base_url=HTTPS,
        data={**choice_fields(page), "active": "y", "attributes": ["given_name", "email"]},
    )
    assert saved.status_code == 303


def test_new_wording_of_the_same_purpose_saves_at_once_and_keeps_every_choice(
    site: PortalSite, publisher: FlaskClient
) -> None:
    url, _ = _released(site, "leesweb-tekst")
    status, _ = post(
        publisher,
        url,
        _declarations("om de leerling een  Inloglink te sturen.", "For the login link"),
        lang="en",
    )
    assert status == 303
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-tekst").attributes == BOTH
    history = _text(_page(publisher, url), "history", "ul")
    assert "purpose reworded: E-mail address. Schools' choices kept." in history
    assert "purpose changed" not in history


def test_a_new_purpose_says_how_many_schools_share_it_and_stops_it_there(
    site: PortalSite, publisher: FlaskClient
) -> None:
    url, _ = _released(site, "leesweb-doel")
    wanted = _declarations(MARKETING)
    status, page = post(publisher, url, wanted, lang="en")
    # Said before anything is saved, as for an added attribute.
    assert status == 200
    warning = _text(page, "confirm-change")
    assert "A new purpose needs the school's consent again" in warning
    assert "E-mail address: 1 school shares it now" in warning
    assert "This change needs" not in warning  # not every school's whole choice
    assert 'name="confirmed" value="1"' in page
    assert "Save (1 school must confirm again)" in page
    service = site.registry.any_service("leesweb-doel")
    assert service is not None and service.declaration_version == 1
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-doel").attributes == BOTH

    status, _ = post(publisher, url, {**wanted, "confirmed": "1"}, lang="en")
    assert status == 303
    # Only that attribute stops; the first name stays released.
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-doel").attributes == {"given_name"}
    page = _page(publisher, url)
    assert "1 school no longer shares what got a new purpose" in unescape(page)
    history = _text(page, "history", "ul")
    assert (
        "purpose changed: E-mail address. Schools stopped sharing E-mail address until each "
        "shares it again; the rest of their choices kept." in history
    )
    assert "a new purpose stopped an attribute" in _text(page, "schools", "table")
    dutch = _text(_page(publisher, url, "nl"), "history", "ul")
    assert "doel gewijzigd: E-mailadres." in dutch


def test_the_schools_page_says_what_stopped_and_why_and_one_save_releases_it_again(
    site: PortalSite, school: FlaskClient
) -> None:
    _, url = _released(site, "leesweb-school")
    site.registry.set_declarations(
        "leesweb-school", (NAME, Declaration("email", MARKETING, purpose_en="For offers")), "x"
    )
    page = _page(school, url)
    notice = _text(page, "purpose-changed")
    assert "so it no longer receives it" in notice
    # The Dutch texts, the purpose of record, marked as Dutch on an English page.
    assert f"E-mail address: purpose changed from “{MAIL.purpose}” to “{MARKETING}” on " in notice
    assert f'<span lang="nl">{MARKETING}</span>' in page
    assert re.search(r'<input[^>]*checked[^>]*value="given_name"', page)
    assert not re.search(r'<input[^>]*checked[^>]*value="email"', page)
    history = _text(page, "history", "table")
    assert "the broker: the publisher changed a purpose (declaration version 2)" in history
    dutch = _page(school, url, "nl")
    assert "E-mailadres: doel gewijzigd van „" in _text(dutch, "purpose-changed")
    listed = _page(school, f"/portal/school/{DEMO_SCHOOL_ID}/services")
    assert "A purpose changed: check your choice" in listed

    _save_both(school, url, page)
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-school").attributes == BOTH
    assert 'id="purpose-changed"' not in _page(school, url)


def test_a_choice_made_on_the_page_with_the_old_purpose_is_not_saved(
    site: PortalSite, school: FlaskClient
) -> None:
    _, url = _released(site, "leesweb-open")
    site.registry.set_policy(DEMO_SCHOOL_ID, "leesweb-open", frozenset({"given_name"}), "admin:1")
    page = _page(school, url)
    assert MAIL.purpose_en in page
    # While the page is open, the publisher gives the e-mail address a new purpose.
    site.registry.set_declarations(
        "leesweb-open", (NAME, Declaration("email", MARKETING, purpose_en="For offers")), "x"
    )
    before = site.registry.policy_history(DEMO_SCHOOL_ID, "leesweb-open")
    stale = school.post(
        url,
        base_url=HTTPS,
        data={**choice_fields(page), "active": "y", "attributes": ["given_name", "email"]},
    )
    assert stale.status_code == 400
    again = stale.get_data(as_text=True)
    assert "changed what this platform asks for while you had this page open" in again
    assert "For offers" in again  # the new purpose, to read before choosing
    assert site.registry.policy_history(DEMO_SCHOOL_ID, "leesweb-open") == before
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-open").attributes == {"given_name"}


def _ticked(page: str) -> list[str]:
    """The attributes the page's choice form has ticked, as a browser sends them back."""
    boxes = re.findall(r"<input[^>]*>", page)
    ticked = [box for box in boxes if 'name="attributes"' in box and "checked" in box]
    return [value for box in ticked for value in re.findall(r'value="([^"]+)"', box)]


def test_a_new_purpose_saved_while_the_choice_is_written_is_shown_without_the_attribute(
    site: PortalSite, school: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = _released(site, "leesweb-tussendoor")
    page = _page(school, url)
    assert _ticked(page) == ["given_name", "email"]
    write = site.registry.set_policy

    def publisher_saves_first(*args: object, **kwargs: object) -> object:
        # The publisher's save lands after the page's read of the declarations, before the
        # choice is written (the registry's check under the service row's lock refuses it).
        monkeypatch.setattr(site.registry, "set_policy", write)
        site.registry.set_declarations(
            "leesweb-tussendoor",
            (NAME, Declaration("email", MARKETING, purpose_en="For offers")),
            "x",
        )
        return write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(site.registry, "set_policy", publisher_saves_first)
    stale = school.post(
        f"{url}?lang=en",
        base_url=HTTPS,
        data={**choice_fields(page), "active": "y", "attributes": ["given_name", "email"]},
    )
    assert stale.status_code == 400
    again = stale.get_data(as_text=True)
    assert "changed what this platform asks for while you had this page open" in again
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-tussendoor").attributes == {"given_name"}
    # The page shows the choice as it is now, with the e-mail address taken out and why.
    assert _ticked(again) == ["given_name"]
    assert "so it no longer receives it" in _text(again, "purpose-changed")

    # Saved as it came back, the e-mail address stays off: only ticking it releases it.
    saved = school.post(
        url,
        base_url=HTTPS,
        data={**choice_fields(again), "active": "y", "attributes": _ticked(again)},
    )
    assert saved.status_code == 303
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-tussendoor").attributes == {"given_name"}


def test_a_required_attribute_taken_out_says_that_logins_are_refused(
    site: PortalSite, school: FlaskClient
) -> None:
    required = Declaration("email", MAIL.purpose, required=True, purpose_en=MAIL.purpose_en)
    _, url = _released(site, "leesweb-verplicht", required)
    _, optional_url = _released(site, "leesweb-optioneel")
    for service_id, mail in (("leesweb-verplicht", required), ("leesweb-optioneel", MAIL)):
        new = Declaration("email", MARKETING, required=mail.required, purpose_en="For offers")
        site.registry.set_declarations(service_id, (NAME, new), "x")
    # What the pages say is what the login path does (core/release.py).
    service = site.registry.service("leesweb-verplicht")
    assert service is not None
    policy = site.registry.policy(DEMO_SCHOOL_ID, "leesweb-verplicht")
    with pytest.raises(RequiredAttributeMissing):
        release_for(service, policy, None, {"given_name": ("Ada",), "email": ("a@b.example",)})

    # The card and the "who receives what" table say it alike (portal/logins.html).
    for listed in (LISTED, OVERVIEW):
        card = _text(_page(school, listed), "logins-refused-leesweb-verplicht", "p")
        assert card == (
            "Your students cannot sign in to this platform until you tick E-mail address and "
            "save your choice: the platform requires it."
        )
        dutch = _text(_page(school, listed, "nl"), "logins-refused-leesweb-verplicht", "p")
        assert dutch == (
            "Uw leerlingen kunnen niet inloggen op dit platform totdat u E-mailadres aanvinkt "
            "en uw keuze opslaat: het platform vereist dit."
        )
        # An optional attribute taken out refuses no login, and its card does not say so.
        assert 'id="logins-refused-leesweb-optioneel"' not in _page(school, listed)

    # The page says why it stopped, and what refuses the logins, in a notice of its own.
    page = _page(school, url)
    assert "purpose changed from" in _text(page, "purpose-changed")
    assert _text(page, "logins-refused") == (
        "The platform requires E-mail address: until you tick it under “Your choice” and save, "
        "your students cannot sign in to this platform."
    )
    assert _text(_page(school, url, "nl"), "logins-refused") == (
        "Het platform vereist E-mailadres: totdat u dit aanvinkt onder „Uw keuze” en opslaat, "
        "kunnen uw leerlingen niet inloggen op dit platform."
    )
    assert 'id="logins-refused"' not in _page(school, optional_url)

    # Shared again: the notice and the card's line are gone.
    _save_both(school, url, page)
    assert 'id="logins-refused"' not in _page(school, url)
    for listed in (LISTED, OVERVIEW):
        assert 'id="logins-refused-leesweb-verplicht"' not in _page(school, listed)


GROUPS = Declaration("groups", "Om de klas te tonen", purpose_en="To show the class")


def test_a_change_to_confirm_says_that_logins_are_refused_while_a_required_one_waits(
    site: PortalSite, school: FlaskClient
) -> None:
    required = Declaration("email", MAIL.purpose, required=True, purpose_en=MAIL.purpose_en)
    _, url = _released(site, "leesweb-bevestig", required)
    _, both_url = _released(site, "leesweb-beide", required)
    # An attribute added: the school must confirm again (core/declarations.py). The second
    # also gives the required e-mail address a new purpose: both notices, one refusal.
    site.registry.set_declarations("leesweb-bevestig", (NAME, required, GROUPS), "x")
    marketing = replace(required, purpose=MARKETING, purpose_en="For offers")
    site.registry.set_declarations("leesweb-beide", (NAME, marketing, GROUPS), "x")
    # What the pages say is what the login path does: the pseudonym alone, so refused.
    for service_id in ("leesweb-bevestig", "leesweb-beide"):
        service = site.registry.service(service_id)
        assert service is not None
        policy = site.registry.policy(DEMO_SCHOOL_ID, service_id)
        assert policy.attributes == frozenset()
        with pytest.raises(RequiredAttributeMissing):
            release_for(service, policy, None, {"given_name": ("Ada",), "email": ("a@b.nl",)})

    listed = f"/portal/school/{DEMO_SCHOOL_ID}/services"
    english = (
        "Your students cannot sign in to this platform until you confirm your choice again and "
        "share E-mail address: the platform requires it."
    )
    dutch = (
        "Uw leerlingen kunnen niet inloggen op dit platform totdat u uw keuze opnieuw bevestigt "
        "en E-mailadres deelt: het platform vereist dit."
    )
    for service_id in ("leesweb-bevestig", "leesweb-beide"):
        assert _text(_page(school, listed), f"logins-refused-{service_id}", "p") == english
        assert _text(_page(school, listed, "nl"), f"logins-refused-{service_id}", "p") == dutch
        assert f'id="pseudonym-only-{service_id}"' not in _page(school, listed)
        # The "who receives what" table: nothing is released, what to tick is named.
        assert "until you tick E-mail address and save your choice" in _text(
            _page(school, OVERVIEW), f"logins-refused-{service_id}", "p"
        )
        assert "totdat u E-mailadres aanvinkt en uw keuze opslaat" in _text(
            _page(school, OVERVIEW, "nl"), f"logins-refused-{service_id}", "p"
        )

    for page_url in (url, both_url):
        page = _page(school, page_url)
        assert page.count('id="logins-refused"') == 1
        notice = _text(page, "confirm-again")
        assert (
            "The platform requires E-mail address: until you save your choice again with it "
            "ticked, your students cannot sign in to this platform." in notice
        )
        assert "it receives the pseudonym only" not in notice
        assert _text(page, "preview", "p") == (
            "Your students cannot sign in to this platform now (see above): it receives nothing."
        )
        assert (
            "Het platform vereist E-mailadres: totdat u dit aanvinkt en uw keuze opnieuw "
            "opslaat, kunnen uw leerlingen niet inloggen op dit platform."
            in _text(_page(school, page_url, "nl"), "confirm-again")
        )
    assert "purpose changed from" in _text(_page(school, both_url), "purpose-changed")

    # Confirmed with the e-mail address ticked: the card's line and the page's notice are gone.
    page = _page(school, url)
    _save_both(school, url, page)
    assert site.registry.policy(DEMO_SCHOOL_ID, "leesweb-bevestig").attributes == BOTH
    assert 'id="logins-refused"' not in _page(school, url)
    assert 'id="logins-refused-leesweb-bevestig"' not in _page(school, listed)


def test_a_change_to_confirm_without_a_required_one_says_logins_carry_the_pseudonym_only(
    site: PortalSite, school: FlaskClient
) -> None:
    _, url = _released(site, "leesweb-alleen")
    _released(site, "leesweb-niets")
    site.registry.set_policy(DEMO_SCHOOL_ID, "leesweb-niets", frozenset(), "admin:1")
    for service_id in ("leesweb-alleen", "leesweb-niets"):
        site.registry.set_declarations(service_id, (NAME, MAIL, GROUPS), "x")
    service = site.registry.service("leesweb-alleen")
    assert service is not None
    policy = site.registry.policy(DEMO_SCHOOL_ID, "leesweb-alleen")
    assert release_for(service, policy, None, {"given_name": ("Ada",)}) == {}

    listed = f"/portal/school/{DEMO_SCHOOL_ID}/services"
    assert _text(_page(school, listed), "pseudonym-only-leesweb-alleen", "p") == (
        "Until you confirm your choice again, your students sign in with the pseudonym only: "
        "the platform does not receive First name, E-mail address."
    )
    assert _text(_page(school, listed, "nl"), "pseudonym-only-leesweb-alleen", "p") == (
        "Totdat u uw keuze opnieuw bevestigt, loggen uw leerlingen in met alleen het "
        "pseudoniem: het platform krijgt Voornaam, E-mailadres niet."
    )
    assert 'id="logins-refused-leesweb-alleen"' not in _page(school, listed)
    # A school that shared nothing loses nothing meanwhile: its card says only "confirm".
    assert 'id="pseudonym-only-leesweb-niets"' not in _page(school, listed)
    page = _page(school, url)
    assert 'id="logins-refused"' not in page
    assert "Until you save your choice again, it receives the pseudonym only." in _text(
        page, "confirm-again"
    )


def _row(page: str, service_id: str, service_url: str) -> str:
    """The words of the overview's row for `service_id`, and of its card on the services page
    (the card that links to `service_url`)."""
    row = re.search(rf'<tr data-service="{service_id}">.*?</tr>', page, re.S)
    card = re.search(rf'<li class="card">\s*<h2><a href="{service_url}">.*?</li>', page, re.S)
    found = row or card
    assert found is not None, service_id
    return " ".join(unescape(re.sub(r"<[^>]+>", "", found.group(0))).split())


def test_an_attribute_the_publisher_no_longer_declares_is_shown_released_nowhere(
    site: PortalSite, publisher: FlaskClient, school: FlaskClient
) -> None:
    """The publisher stops asking for the first name: no school confirms anything (removing an
    attribute needs no consent), and the school's stored choice still names it. The login path
    releases it no more (policy ∩ declared, core/release.py); no page may say it does: the
    preview with the demo student's first name, the services card, the overview, the
    publisher's list of what each school shares."""
    publisher_url, url = _released(site, "leesweb-weg")
    site.registry.set_declarations("leesweb-weg", (MAIL,), "x")
    service = site.registry.service("leesweb-weg")
    assert service is not None
    policy = site.registry.policy(DEMO_SCHOOL_ID, "leesweb-weg")
    assert policy.attributes == BOTH  # the choice kept as it was
    student = {"given_name": ("Sanne",), "email": ("sanne@example.nl",)}
    assert set(release_for(service, policy, None, student)) == {"email"}

    page = _page(school, url)
    assert 'id="confirm-again"' not in page
    preview = _text(page, "preview", "dl")
    assert "E-mail address" in preview
    assert "First name" not in preview and "Sanne" not in preview
    assert _row(_page(school, LISTED), "leesweb-weg", url) == "Leesweb Shares: E-mail address"
    assert "Voornaam" not in _row(_page(school, LISTED, "nl"), "leesweb-weg", url)
    overview = _row(_page(school, OVERVIEW), "leesweb-weg", url)
    assert "E-mail address" in overview and "First name" not in overview
    schools = _text(_page(publisher, publisher_url), "schools", "table")
    assert "email" in schools and "given_name" not in schools
