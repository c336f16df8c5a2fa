"""A removed school's or publisher organisation's administrators lose the portal at once: their
account goes with it (broker/registry/removal.py), so a session opened before the removal is sent
to the sign-in page on its next request, for every school or publisher URL, and the account cannot
sign in again. Against the demo's broker app with the Flask test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.accounts import totp
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from tests.security.test_portal_rights import PUBLISHER_URLS, SCHOOL_URLS
from tests.support.portal import HTTPS, OTHER_PUBLISHER, PUBLISHER_ID, PortalSite, csrf_token


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-offboarding"))
    yield built
    built.registry.close()


def _signed_out_everywhere(client: FlaskClient, urls: list[tuple[str, str]]) -> None:
    token = csrf_token(client.get("/portal/sign-in", base_url=HTTPS).get_data(as_text=True))
    for method, url in urls:
        if method == "GET":
            response = client.get(url, base_url=HTTPS)
        else:
            response = client.post(url, base_url=HTTPS, data={"csrf_token": token})
        assert response.status_code == 303, url
        assert response.headers["Location"].endswith("/portal/sign-in"), url


def test_a_removed_schools_administrator_is_signed_out_everywhere(site: PortalSite) -> None:
    school_admin = site.sign_in("school")
    operator = site.sign_in("operator")
    services = f"/portal/school/{DEMO_SCHOOL_ID}/services"
    assert school_admin.get(services, base_url=HTTPS).status_code == 200

    site.registry.remove_school(DEMO_SCHOOL_ID, apply=True)

    _signed_out_everywhere(school_admin, SCHOOL_URLS)
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


def test_a_removed_publishers_administrator_is_signed_out_everywhere(site: PortalSite) -> None:
    publisher_admin = site.sign_in("publisher")
    secret = site.accounts["publisher"].secret
    services = f"/portal/publisher/{PUBLISHER_ID}/services"
    assert publisher_admin.get(services, base_url=HTTPS).status_code == 200

    site.registry.remove_publisher(PUBLISHER_ID, apply=True)

    _signed_out_everywhere(publisher_admin, PUBLISHER_URLS)
    assert site.registry.accounts.credentials(site.accounts["publisher"].email) is None
    tried = site.sign_in("publisher", code=totp.code_at(secret, totp.current_step() + 2))
    assert tried.get(services, base_url=HTTPS).status_code == 303
    # The other publisher and the school administrator keep the portal.
    assert site.registry.accounts.publisher(OTHER_PUBLISHER) is not None
    school = site.sign_in("school")
    assert (
        school.get(f"/portal/school/{DEMO_SCHOOL_ID}/services", base_url=HTTPS).status_code == 200
    )
