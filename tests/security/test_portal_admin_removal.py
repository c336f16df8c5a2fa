"""Removing one administrator in the operator portal (docs/portals.md, "Removing an
administrator"): the Administrators page links each other account to a confirmation page that
changes nothing; its button (with the CSRF token) removes the account, whose open session is sent
to the sign-in page on its next request and whose password and code no longer sign in. Refused,
with nothing changed: one's own account, a POST without the CSRF token, and every school or
publisher administrator (403). Against the demo's broker app with the Flask test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.accounts import totp
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import Admin
from tests.support.portal import HTTPS, PASSWORD, PortalSite, csrf_token, post_sign_in

ADMINS = "/portal/operator/admins"


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-admin-removal"))
    yield built
    built.registry.close()


def _remove_url(admin: Admin) -> str:
    return f"{ADMINS}/{admin.id}/remove"


def _page(client: FlaskClient, url: str) -> tuple[int, str]:
    response = client.get(url, base_url=HTTPS)
    return response.status_code, response.get_data(as_text=True)


def test_an_operator_removes_a_school_administrator(site: PortalSite) -> None:
    school_admin = site.accounts["school"]
    school = site.sign_in("school")
    services = f"/portal/school/{DEMO_SCHOOL_ID}/services"
    assert school.get(services, base_url=HTTPS).status_code == 200
    operator = site.sign_in("operator")

    status, listing = _page(operator, ADMINS)
    assert status == 200 and f'href="{_remove_url(school_admin.admin)}"' in listing
    assert _remove_url(site.accounts["operator"].admin) not in listing
    assert "Uw eigen account (alleen een andere operator kan het verwijderen)" in listing
    # Roles by the invitation form's names, not their codes.
    assert ">Beheerder van een school</td>" in listing and ">school</td>" not in listing

    status, confirm = _page(operator, _remove_url(school_admin.admin))
    assert status == 200
    assert school_admin.email in confirm and DEMO_SCHOOL_ID in confirm and ">school<" in confirm
    assert "Inloggen werkt voor deze persoon direct niet meer" in confirm
    assert "„verwijderde beheerder”" in confirm and f'href="{ADMINS}"' in confirm
    status, english = _page(operator, _remove_url(school_admin.admin) + "?lang=en")
    assert "Their sign-in stops working at once" in english
    assert '"removed administrator"' in english.replace("&#34;", '"')
    _page(operator, ADMINS + "?lang=nl")  # the language is remembered: Dutch again
    # Looking changed nothing.
    assert site.registry.accounts.admin(school_admin.admin.id) == school_admin.admin

    removed = operator.post(
        _remove_url(school_admin.admin), base_url=HTTPS, data={"csrf_token": csrf_token(confirm)}
    )
    assert removed.status_code == 303 and removed.headers["Location"].endswith(ADMINS)
    status, after = _page(operator, ADMINS)
    assert f"Het account van {school_admin.email} is verwijderd" in after
    assert site.registry.accounts.admin(school_admin.admin.id) is None

    # The open session is sent to the sign-in page at once; password and code sign in no more.
    gone = school.get(services, base_url=HTTPS)
    assert gone.status_code == 303 and gone.headers["Location"].endswith("/portal/sign-in")
    code = totp.code_at(school_admin.secret, totp.current_step() + 2)
    again = post_sign_in(site.client(), school_admin.email, PASSWORD, code)
    assert again.status_code == 401

    # A second click: the account is gone; said so, nothing else changes.
    twice = operator.post(
        _remove_url(school_admin.admin), base_url=HTTPS, data={"csrf_token": csrf_token(confirm)}
    )
    assert twice.status_code == 404
    assert "Dit beheerdersaccount bestaat niet (meer)." in twice.get_data(as_text=True)
    assert len(site.registry.accounts.admins()) == 2


def test_an_operator_cannot_remove_their_own_account(site: PortalSite) -> None:
    me = site.accounts["operator"].admin
    operator = site.sign_in("operator")
    status, page = _page(operator, _remove_url(me))
    assert status == 400
    assert "U kunt uw eigen account hier niet verwijderen" in page
    assert "ketenbroker admin remove" in page and "Dit account verwijderen" not in page
    token = csrf_token(_page(operator, ADMINS)[1])
    refused = operator.post(_remove_url(me), base_url=HTTPS, data={"csrf_token": token})
    assert refused.status_code == 400
    assert site.registry.accounts.admin(me.id) == me
    assert operator.get(ADMINS, base_url=HTTPS).status_code == 200


def test_a_removal_without_the_csrf_token_changes_nothing(site: PortalSite) -> None:
    target = site.accounts["publisher"].admin
    operator = site.sign_in("operator")
    for data in ({}, {"csrf_token": "forged"}):
        refused = operator.post(_remove_url(target), base_url=HTTPS, data=data)
        assert refused.status_code == 400
    assert site.registry.accounts.admin(target.id) == target
    assert site.sign_in("publisher").get(ADMINS, base_url=HTTPS).status_code == 403


@pytest.mark.parametrize("role", ["school", "publisher"])
def test_school_and_publisher_administrators_cannot_remove_anyone(
    site: PortalSite, role: str
) -> None:
    client = site.sign_in(role)
    token = csrf_token(client.get("/portal/sign-in", base_url=HTTPS).get_data(as_text=True))
    before = site.registry.accounts.admins()
    for account in site.accounts.values():
        url = _remove_url(account.admin)
        assert client.get(url, base_url=HTTPS).status_code == 403
        assert client.post(url, base_url=HTTPS, data={"csrf_token": token}).status_code == 403
    assert site.registry.accounts.admins() == before
