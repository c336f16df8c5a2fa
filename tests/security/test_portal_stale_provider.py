"""Two administrators of one school with its Identity provider page open at once: the later
save, from a page a colleague's save has overtaken, is refused and shows the current settings,
never applied over the colleague's (a subject put back gives every student a new pseudonym).
The version a page showed is core/provider_version.py's, checked again under the school row's
lock where the change is written."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from io import BytesIO

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from broker.core.provider_version import provider_version
from broker.registry.errors import ProviderChanged
from tests.support.portal import HTTPS, PortalSite, assert_one_stale_page_line, page_fields

IDP = f"/portal/school/{DEMO_SCHOOL_ID}/identity-provider"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("stale-provider"), port=8796)
    built.accounts["colleague"] = built.add_account(
        "privacy@lyceum.example", AdminRole.SCHOOL, DEMO_SCHOOL_ID
    )
    yield built
    built.registry.close()


def _saml(site: PortalSite, page: str, subject: str) -> dict[str, object]:
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    xml = site.registry.school_metadata()[school.idp_entity_id]
    upload = (BytesIO(xml.encode()), "idp.xml")
    return {**page_fields(page), "metadata_file": upload, "saml_subject": subject}


def test_a_save_from_a_page_a_colleague_saved_over_is_refused(
    site: PortalSite, caplog: pytest.LogCaptureFixture
) -> None:
    ict, privacy = site.sign_in("school"), site.sign_in("colleague")
    mine = ict.get(f"{IDP}?lang=en", base_url=HTTPS).get_data(as_text=True)
    theirs = privacy.get(IDP, base_url=HTTPS).get_data(as_text=True)
    # The colleague identifies students by their student number now (the school has realms).
    saved = privacy.post(f"{IDP}/saml", base_url=HTTPS, data=_saml(site, theirs, "student_number"))
    assert saved.status_code == 303, saved.get_data(as_text=True)
    after = site.registry.school(DEMO_SCHOOL_ID)
    assert after is not None and after.subject_attribute == "student_number"
    generation = site.registry.generation()

    # My page still shows the NameID: saving it would silently put it back.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        stale = ict.post(f"{IDP}/saml", base_url=HTTPS, data=_saml(site, mine, "name_id"))
    assert stale.status_code == 400
    page = stale.get_data(as_text=True)
    assert 'id="changed-meanwhile"' in page
    assert "A colleague changed your school's identity provider settings" in page
    # The page shows the settings as they are: the student number chosen.
    assert re.search(r'<option selected value="student_number">', page), page
    assert site.registry.school(DEMO_SCHOOL_ID) == after
    assert site.registry.generation() == generation
    assert_one_stale_page_line(caplog, "provider_changed", school=DEMO_SCHOOL_ID)
    assert "portal school idp school" not in caplog.text
    # The OpenID form of the stale page likewise (checked before the provider is fetched).
    oidc = {**page_fields(mine), "issuer": "http://127.0.0.1:9/none", "client_id": "broker",
            "client_secret": "geheim", "algorithm": "RS256", "oidc_subject": "sub"}  # fmt: skip
    caplog.clear()
    refused = ict.post(f"{IDP}/oidc", base_url=HTTPS, data=oidc)
    assert refused.status_code == 400 and 'id="changed-meanwhile"' in refused.get_data(as_text=True)
    assert_one_stale_page_line(caplog, "provider_changed", school=DEMO_SCHOOL_ID)
    assert site.registry.school(DEMO_SCHOOL_ID) == after

    # From the page it came back with, my change saves: I have seen theirs.
    again = ict.post(f"{IDP}/saml", base_url=HTTPS, data=_saml(site, page, "name_id"))
    assert again.status_code == 303
    now = site.registry.school(DEMO_SCHOOL_ID)
    assert now is not None and now.subject_attribute == "name_id"


def test_the_version_seen_is_checked_again_where_the_change_is_written(site: PortalSite) -> None:
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    seen = provider_version(school)
    xml = site.registry.school_metadata()[school.idp_entity_id]
    site.registry.update_school_idp(replace(school, subject_attribute="username"), xml)
    changed = site.registry.school(DEMO_SCHOOL_ID)
    with pytest.raises(ProviderChanged):
        site.registry.update_school_idp(school, xml, seen=seen)
    assert site.registry.school(DEMO_SCHOOL_ID) == changed
