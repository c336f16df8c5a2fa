"""A school's choice is an agreement to the declarations the page showed: one made on a page
left open while the publisher changed them is not saved (the release invariant, portals.md:
a publisher never widens what a school chose without the school's choice).

Flask test client against the demo's broker app; the publisher's change goes through the
registry, as a second browser tab of the publisher's portal would make it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from broker.core.model import Declaration, Service
from broker.registry.errors import DeclarationsChanged, PolicyChanged
from tests.security.test_portal_declarations import sp_metadata
from tests.support.portal import (
    HTTPS,
    PUBLISHER_ID,
    PortalSite,
    assert_one_stale_page_line,
    choice_fields,
    csrf_token,
)

SERVICE = "lesweb-open-pagina"
URL = f"/portal/school/{DEMO_SCHOOL_ID}/services/{SERVICE}"
GREET = Declaration("given_name", "Om de leerling te begroeten.", purpose_en="To greet.")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("stale-choice"), port=8790)
    entity = f"https://sp.{SERVICE}.example"
    built.registry.add_service(
        Service(SERVICE, "Lesweb", entity, None, declarations=(GREET,), publisher_id=PUBLISHER_ID),
        sp_metadata(entity, f"{entity}/acs"),
    )
    built.registry.approve_service(SERVICE)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    # Signed in once for the module: a code is accepted once only (PortalSite.sign_in).
    return site.sign_in("school")


def test_a_choice_made_on_a_page_the_publisher_changed_meanwhile_is_not_saved(
    site: PortalSite, school: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    page = school.get(f"{URL}?lang=en", base_url=HTTPS).get_data(as_text=True)
    assert "To greet." in page
    # While the page is open the publisher removes the first name and declares it again for
    # another purpose, now required: every school must confirm again (core/declarations.py).
    site.registry.set_declarations(SERVICE, (), "admin:99")
    tracked = Declaration("given_name", "Voor reclame.", required=True, purpose_en="For ads.")
    site.registry.set_declarations(SERVICE, (tracked,), "admin:99")
    before = site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE)

    with caplog.at_level(logging.INFO, logger="broker.portal"):
        stale = school.post(
            f"{URL}?lang=en",
            base_url=HTTPS,
            data={**choice_fields(page), "active": "y", "attributes": ["given_name"]},
        )
    assert stale.status_code == 400
    again = stale.get_data(as_text=True)
    assert "changed what this platform asks for while you had this page open" in again
    assert "For ads." in again  # what it asks for now, to read before choosing
    # Nothing saved: the first name is not released under a purpose the school never read.
    assert site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE) == before
    assert site.registry.policy(DEMO_SCHOOL_ID, SERVICE).attributes == frozenset()
    assert "portal policy" not in caplog.text
    assert_one_stale_page_line(
        caplog, "declarations_changed", school=DEMO_SCHOOL_ID, service=SERVICE
    )

    # The page it came back with saves: the school has read the new declarations now.
    saved = school.post(
        URL,
        base_url=HTTPS,
        data={**choice_fields(again), "active": "y", "attributes": ["given_name"]},
    )
    assert saved.status_code == 303
    assert site.registry.policy(DEMO_SCHOOL_ID, SERVICE).attributes == {"given_name"}


def test_a_choice_without_the_version_its_page_showed_is_not_saved(
    site: PortalSite, school: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A script, or a page from before the field: it cannot say what it agreed to.
    page = school.get(URL, base_url=HTTPS).get_data(as_text=True)
    before = site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE)
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        refused = school.post(
            URL,
            base_url=HTTPS,
            data={"csrf_token": csrf_token(page), "active": "y", "attributes": ["given_name"]},
        )
    assert refused.status_code == 400
    assert site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE) == before
    assert "reason=declarations_changed" in caplog.text
    assert "portal policy" not in caplog.text


def test_the_version_seen_is_checked_again_where_the_choice_is_written(
    site: PortalSite,
) -> None:
    # The publisher's change landing between the page's read and the write (the registry's
    # check under the service row's lock): refused, nothing written.
    seen = site.registry.service(SERVICE)
    assert seen is not None
    site.registry.set_declarations(SERVICE, (GREET,), "admin:99")
    before = site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE)
    with pytest.raises(DeclarationsChanged):
        site.registry.set_policy(
            DEMO_SCHOOL_ID,
            SERVICE,
            frozenset({"given_name"}),
            "admin:1",
            declarations_seen=seen.declaration_version,
        )
    assert site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE) == before


@pytest.fixture(scope="module")
def colleague(site: PortalSite) -> FlaskClient:
    site.accounts["colleague"] = site.add_account(
        "privacy@lyceum.example", AdminRole.SCHOOL, DEMO_SCHOOL_ID
    )
    return site.sign_in("colleague")


def test_a_choice_made_on_a_page_a_colleague_saved_over_meanwhile_is_not_saved(
    site: PortalSite,
    school: FlaskClient,
    colleague: FlaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Both open the page; the colleague ticks the first name and saves first.
    mine = school.get(f"{URL}?lang=en", base_url=HTTPS).get_data(as_text=True)
    theirs = colleague.get(URL, base_url=HTTPS).get_data(as_text=True)
    saved = colleague.post(
        URL,
        base_url=HTTPS,
        data={**choice_fields(theirs), "active": "y", "attributes": ["given_name"]},
    )
    assert saved.status_code == 303
    before = site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE)

    # My page still shows the choice before theirs: switching off from it would undo theirs.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        stale = school.post(f"{URL}?lang=en", base_url=HTTPS, data=choice_fields(mine))
    assert stale.status_code == 400
    again = stale.get_data(as_text=True)
    assert "A colleague saved a choice for this platform while you had this page open" in again
    # The page shows the current choice: theirs, switched on, with the first name ticked.
    assert re.search(r'<input[^>]*checked[^>]*value="given_name"', again) or re.search(
        r'<input[^>]*value="given_name"[^>]*checked', again
    )
    assert site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE) == before
    assert "portal policy" not in caplog.text
    assert_one_stale_page_line(caplog, "policy_changed", school=DEMO_SCHOOL_ID, service=SERVICE)

    # From the page it came back with, my choice saves: I have seen theirs.
    switched_off = school.post(URL, base_url=HTTPS, data=choice_fields(again))
    assert switched_off.status_code == 303
    assert not site.registry.choices_of_school(DEMO_SCHOOL_ID)[SERVICE].active


def test_the_policy_version_seen_is_checked_again_where_the_choice_is_written(
    site: PortalSite,
) -> None:
    choice = site.registry.choices_of_school(DEMO_SCHOOL_ID)[SERVICE]
    service = site.registry.service(SERVICE)
    assert service is not None
    site.registry.set_policy(DEMO_SCHOOL_ID, SERVICE, frozenset(), "admin:2")
    before = site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE)
    with pytest.raises(PolicyChanged):
        site.registry.set_policy(
            DEMO_SCHOOL_ID,
            SERVICE,
            frozenset({"given_name"}),
            "admin:1",
            declarations_seen=service.declaration_version,
            policy_seen=choice.version,
        )
    assert site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE) == before


def _as_shown(site: PortalSite) -> dict[str, object]:
    """The stored choice as the page's form sends it back unchanged."""
    choice = site.registry.choices_of_school(DEMO_SCHOOL_ID)[SERVICE]
    return {"attributes": sorted(choice.attributes), **({"active": "y"} if choice.active else {})}


def test_the_choice_and_the_notice_setting_are_one_form_and_neither_is_dropped(
    site: PortalSite, school: FlaskClient, colleague: FlaskClient
) -> None:
    notice = site.broker.receipts.notice_mode
    page = school.get(URL, base_url=HTTPS).get_data(as_text=True)
    assert page.count("<form") == 2  # the page's one form and the sign-out button's
    assert notice(DEMO_SCHOOL_ID, SERVICE) == "session"
    before = site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE)
    # The notice setting changed alone: saved, and no new version of the release policy.
    fields = {**choice_fields(page), "notice_seen": "session", **_as_shown(site)}
    saved = school.post(f"{URL}?lang=en", base_url=HTTPS, data={**fields, "mode": "changes"})
    assert saved.status_code == 303
    assert notice(DEMO_SCHOOL_ID, SERVICE) == "changes"
    assert site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE) == before
    shown = school.get(URL, base_url=HTTPS, query_string={"lang": "en"}).get_data(as_text=True)
    assert "Notice setting saved." in shown and "Saved as version" not in shown

    # Both changed in one save: both kept, the choice as a new version.
    assert site.registry.choices_of_school(DEMO_SCHOOL_ID)[SERVICE].attributes == frozenset()
    page = school.get(URL, base_url=HTTPS).get_data(as_text=True)
    data = {**choice_fields(page), "notice_seen": "changes", "active": "y", "mode": "session"}
    saved = school.post(URL, base_url=HTTPS, data={**data, "attributes": ["given_name"]})
    assert saved.status_code == 303
    assert notice(DEMO_SCHOOL_ID, SERVICE) == "session"
    assert len(site.registry.policy_history(DEMO_SCHOOL_ID, SERVICE)) == len(before) + 1
    assert site.registry.choices_of_school(DEMO_SCHOOL_ID)[SERVICE].attributes == {"given_name"}

    # A page left open does not put back a colleague's notice setting it never changed.
    mine = school.get(URL, base_url=HTTPS).get_data(as_text=True)
    theirs = colleague.get(URL, base_url=HTTPS).get_data(as_text=True)
    theirs_sent: dict[str, object] = {
        **choice_fields(theirs),
        "notice_seen": "session",
        **_as_shown(site),
    }
    assert (
        colleague.post(URL, base_url=HTTPS, data={**theirs_sent, "mode": "changes"}).status_code
        == 303
    )
    data = {**choice_fields(mine), "notice_seen": "session", "active": "y", "mode": "session"}
    saved = school.post(URL, base_url=HTTPS, data={**data, "attributes": []})
    assert saved.status_code == 303, saved.get_data(as_text=True)
    assert notice(DEMO_SCHOOL_ID, SERVICE) == "changes"
    assert site.registry.choices_of_school(DEMO_SCHOOL_ID)[SERVICE].attributes == frozenset()
