"""Staff TOTP secrets are sealed in the registry (core/sealed_secrets.py), and signing in still
works: with a sealed secret, with one older code left in clear (until the registry holds sealed
secrets only: then it is refused with a page of its own), and through an invitation. A
secret that does not open stops the sign-in after the password with a page that says so (not
a 500, not "wrong code"), and a log line that names the account by id only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, insert, select, update

from broker.accounts import totp
from broker.accounts.tokens import new_token, token_hash
from broker.core.admins import AdminRole
from broker.core.sealed_secrets import PREFIX
from broker.registry.admin_tables import AdminRow, InvitationRow
from broker.registry.migration import migration_connection
from broker.registry.sealed_only import SealedOnlyRow
from tests.support.invitations import store_old_invitation
from tests.support.portal import (
    HTTPS,
    PASSWORD,
    Account,
    PortalSite,
    accept_invitation,
    invite,
    post_sign_in,
    shown_seed,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-sealed"), port=8697)
    yield built
    built.registry.close()


def _stored(site: PortalSite, email: str) -> str:
    with migration_connection(site.settings.registry_url) as connection:
        value = connection.scalar(select(AdminRow.totp_secret).where(AdminRow.email == email))
    assert value is not None
    return value


def _store(site: PortalSite, email: str, value: str) -> None:
    with migration_connection(site.settings.registry_url) as connection:
        connection.execute(
            update(AdminRow).where(AdminRow.email == email).values(totp_secret=value)
        )


def _changed(sealed: str) -> str:
    return sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")


def _code(secret: str) -> str:
    # The next step: each code signs in once, and a test may sign in twice within one step.
    return totp.code_at(secret, totp.current_step() + 1)


def test_a_sealed_secret_signs_in_and_the_registry_holds_no_clear_one(site: PortalSite) -> None:
    account = site.accounts["school"]
    stored = _stored(site, account.email)
    assert stored.startswith(PREFIX) and account.secret not in stored
    site.sign_in("school")


def _refused_after_the_password(
    site: PortalSite, account: Account, caplog: pytest.LogCaptureFixture, said: str, why: str
) -> str:
    """A sign-in with the right password refused with a 503 page (returned), no session, and
    logged as `totp_secret_<why>` by id only; a wrong password gets the one answer every wrong
    sign-in gets, without `said`."""
    wrong = post_sign_in(site.client(), account.email, "wrong password!!", _code(account.secret))
    assert wrong.status_code == 401 and said not in wrong.get_data(as_text=True)
    with caplog.at_level(logging.INFO):
        client = site.client()
        response = post_sign_in(client, account.email, PASSWORD, _code(account.secret))
    page = response.get_data(as_text=True)
    assert response.status_code == 503, page[:500]
    assert "Traceback" not in page
    assert client.get("/portal/operator/services", base_url=HTTPS).status_code == 303
    logged, admin_id = caplog.text, account.admin.id
    assert f"portal sign-in refused admin={admin_id} reason=totp_secret_{why}" in logged
    assert f"admin totp secret unreadable admin={admin_id}" in logged
    assert account.email not in logged and account.secret not in logged
    return page


def _set_sealed_only(site: PortalSite, marked: bool) -> None:
    """The registry's mark (registry/sealed_only.py): set, as on a new registry or after
    `registry seal-secrets`; unset, as on one upgraded with values in clear."""
    with migration_connection(site.settings.registry_url) as connection:
        connection.execute(delete(SealedOnlyRow))
        if marked:
            connection.execute(insert(SealedOnlyRow).values(id=1, since=datetime.now(UTC)))


def test_a_secret_older_code_left_in_clear_signs_in_until_the_registry_is_marked(
    site: PortalSite, caplog: pytest.LogCaptureFixture
) -> None:
    account = site.add_account("legacy@broker.example", AdminRole.OPERATOR, None)
    _store(site, account.email, account.secret)  # as before revision 0020
    _set_sealed_only(site, False)  # upgraded with values in clear, not sealed yet
    try:
        response = post_sign_in(site.client(), account.email, PASSWORD, _code(account.secret))
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
    finally:
        _set_sealed_only(site, True)
    # Marked (the site's registry is new: it holds sealed secrets only), a secret in clear is
    # someone else's doing: refused after the password, with a page of its own.
    page = _refused_after_the_password(site, account, caplog, "niet geaccepteerd", "in_clear")
    assert "Een opgeslagen geheim wordt niet geaccepteerd" in page
    assert "voor uw account" in page
    assert "code=sealed_secret_in_clear" in caplog.text


def test_a_secret_that_does_not_open_stops_the_sign_in_after_the_password(
    site: PortalSite, caplog: pytest.LogCaptureFixture
) -> None:
    account = site.add_account("changed@broker.example", AdminRole.OPERATOR, None)
    _store(site, account.email, _changed(_stored(site, account.email)))
    page = _refused_after_the_password(site, account, caplog, "kan een geheim", "unreadable")
    assert "Een opgeslagen geheim kan niet worden geopend" in page
    assert "meld dit bij de operator van de federatie" in page


def test_an_invitation_keeps_no_secret_and_the_account_holds_the_browsers_sealed(
    site: PortalSite, caplog: pytest.LogCaptureFixture
) -> None:
    operator = site.sign_in("operator")
    _, path = invite(operator, "invited@lyceum.example", "operator", "")
    hashed = token_hash(path.rsplit("/", 1)[1])
    url = site.settings.registry_url

    def kept() -> str | None:
        with migration_connection(url) as connection:
            return connection.scalar(
                select(InvitationRow.totp_secret).where(InvitationRow.token_hash == hashed)
            )

    assert kept() == ""  # each browser opening the link gets a seed of its own
    form, accepted = accept_invitation(site.client(), path)
    secret = shown_seed(form)  # shown to this browser, to be typed into the app
    assert accepted.status_code == 303, accepted.get_data(as_text=True)[:500]
    assert kept() == ""
    stored = _stored(site, "invited@lyceum.example")
    assert stored.startswith(PREFIX) and secret not in stored

    # An open invitation an older version sent, whose stored seed does not open: a page that
    # says so, not a 500 (COMPAT(invitation-stored-seed)).
    hashed = token_hash(token := new_token())
    seal = site.settings.secret_seal()
    store_old_invitation(
        url, seal, hashed, "second@lyceum.example", AdminRole.OPERATOR, None, totp.new_secret()
    )
    with migration_connection(url) as connection:
        where = InvitationRow.token_hash == hashed
        value = connection.scalar(select(InvitationRow.totp_secret).where(where))
        assert value is not None
        connection.execute(update(InvitationRow).where(where).values(totp_secret=_changed(value)))
    with caplog.at_level(logging.INFO):
        refused = site.client().get(f"/portal/invitation/{token}", base_url=HTTPS)
    assert refused.status_code == 503
    assert "Een opgeslagen geheim kan niet worden geopend" in refused.get_data(as_text=True)
    assert f"invitation-totp secret of invitation {hashed[:8]}" in caplog.text
    assert "second@lyceum.example" not in caplog.text
