"""A removed school's administrators lose the portal at once: their account goes with the school
(broker/registry/removal.py), so a session opened before the removal is sent to the sign-in page
on its next request, for every school URL, and the account cannot sign in again. Against the
demo's broker app with the Flask test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.accounts import totp
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from tests.security.test_portal_rights import SCHOOL_URLS
from tests.support.portal import HTTPS, PortalSite, csrf_token


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-offboarding"))
    yield built
    built.registry.close()


def test_a_removed_schools_administrator_is_signed_out_everywhere(site: PortalSite) -> None:
    school_admin = site.sign_in("school")
    operator = site.sign_in("operator")
    services = f"/portal/school/{DEMO_SCHOOL_ID}/services"
    assert school_admin.get(services, base_url=HTTPS).status_code == 200

    site.registry.remove_school(DEMO_SCHOOL_ID, apply=True)

    token = csrf_token(school_admin.get("/portal/sign-in", base_url=HTTPS).get_data(as_text=True))
    for method, url in SCHOOL_URLS:
        if method == "GET":
            response = school_admin.get(url, base_url=HTTPS)
        else:
            response = school_admin.post(url, base_url=HTTPS, data={"csrf_token": token})
        assert response.status_code == 303, url
        assert response.headers["Location"].endswith("/portal/sign-in"), url
    assert site.registry.accounts.credentials(site.accounts["school"].email) is None
    # The operator keeps the portal; the address is free to be invited for another school.
    assert operator.get("/portal/operator/schools", base_url=HTTPS).status_code == 200
    again = site.add_account("ict@lyceum.example", AdminRole.OPERATOR, None)
    assert again.admin.id > site.accounts["school"].admin.id


def test_the_removed_account_cannot_sign_in(site: PortalSite) -> None:
    secret = site.accounts["school"].secret
    site.registry.remove_school(DEMO_SCHOOL_ID, apply=True)
    tried = site.sign_in("school", code=totp.code_at(secret, totp.current_step() + 1))
    response = tried.get(f"/portal/school/{DEMO_SCHOOL_ID}/services", base_url=HTTPS)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/portal/sign-in")
