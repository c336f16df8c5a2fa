"""The TOTP seed of an invitation is each browser's own (web/portal/invitation_seed.py): two
browsers opening one link see different seeds, neither is stored with the invitation, the
account holds the seed of the browser that confirmed a code, and the other browser's seed
signs nobody in. An invitation an older version sent, with the seed it showed stored, still
accepts (COMPAT(invitation-stored-seed))."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from broker.accounts import totp
from broker.accounts.tokens import new_token, token_hash
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from broker.core.sealed_secrets import PREFIX
from broker.registry.admin_tables import InvitationRow
from broker.registry.migration import migration_connection
from broker.web.portal import SESSION_COOKIE
from broker.web.portal.invitation_seed import KEPT, SESSION_SEED
from tests.support.invitations import store_old_invitation
from tests.support.portal import (
    HTTPS,
    PASSWORD,
    PortalSite,
    invite,
    post_invitation,
    post_sign_in,
    shown_seed,
)

WRONG_CODE = "Deze code klopt niet."
KEY_OF_THIS_PAGE = "in deze browser werkt alleen de sleutel van deze pagina"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("invitation-seed"), port=8795)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    return site.sign_in("operator")


def _opened(client: FlaskClient, path: str) -> tuple[str, str]:
    """(the page, the seed it shows this browser)."""
    page = client.get(path, base_url=HTTPS)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    return text, shown_seed(text)


def _session(site: PortalSite, client: FlaskClient) -> dict[str, object]:
    cookie = client.get_cookie(SESSION_COOKIE, domain="127.0.0.1")
    assert cookie is not None
    serializer = site.app.session_interface.get_signing_serializer(site.app)  # type: ignore[attr-defined]
    found: dict[str, object] = serializer.loads(cookie.value)
    return found


def _stored_seed(site: PortalSite, path: str) -> str | None:
    hashed = token_hash(path.rsplit("/", 1)[1])
    with migration_connection(site.settings.registry_url) as connection:
        return connection.scalar(
            select(InvitationRow.totp_secret).where(InvitationRow.token_hash == hashed)
        )


def test_two_browsers_opening_the_link_see_seeds_of_their_own_stored_nowhere(
    site: PortalSite, operator: FlaskClient
) -> None:
    _, path = invite(operator, "twee@lyceum.example", "school", DEMO_SCHOOL_ID)
    invitee, forwarded_to = site.client(), site.client()
    first_page, seed = _opened(invitee, path)
    _, other_seed = _opened(forwarded_to, path)
    assert seed != other_seed
    assert other_seed not in first_page
    assert _opened(invitee, path)[1] == seed  # this browser's again on a reload
    assert _stored_seed(site, path) == ""
    # Kept sealed in the browser's session cookie: its holder cannot read it there.
    cookie = invitee.get_cookie(SESSION_COOKIE, domain="127.0.0.1")
    assert cookie is not None and seed not in cookie.value
    session = _session(site, invitee)
    kept = session[SESSION_SEED]
    assert isinstance(kept, list)
    [[_, sealed]] = kept  # one invitation's seed, by its token hash
    assert sealed.startswith(PREFIX) and seed not in json.dumps(session)
    # Another invitation opened in the same browser: a seed of its own, not this one's.
    _, second_path = invite(operator, "drie@lyceum.example", "school", DEMO_SCHOOL_ID)
    assert _opened(invitee, second_path)[1] not in (seed, other_seed)


def test_the_account_holds_the_accepting_browsers_seed_and_the_other_one_fails(
    site: PortalSite, operator: FlaskClient
) -> None:
    email = "vier@lyceum.example"
    _, path = invite(operator, email, "school", DEMO_SCHOOL_ID)
    invitee, forwarded_to = site.client(), site.client()
    page, seed = _opened(invitee, path)
    other_page, other_seed = _opened(forwarded_to, path)
    step = totp.current_step()
    accounts = site.registry.accounts

    # The other browser's seed does not confirm in the invitee's browser: nothing created.
    refused = post_invitation(invitee, path, page, totp.code_at(other_seed, step))
    assert refused.status_code == 400 and WRONG_CODE in refused.get_data(as_text=True)
    # The refusal says which key the code must come from: this page's, in this browser.
    assert KEY_OF_THIS_PAGE in refused.get_data(as_text=True)
    assert accounts.credentials(email) is None
    # Nor the invitee's seed in the other browser (it shows, and checks, its own).
    refused = post_invitation(forwarded_to, path, other_page, totp.code_at(seed, step))
    assert refused.status_code == 400 and accounts.credentials(email) is None
    assert [i.email for i in accounts.open_invitations()].count(email) == 1

    accepted = post_invitation(invitee, path, page, totp.code_at(seed, step))
    assert accepted.status_code == 303, accepted.get_data(as_text=True)[:500]
    found = accounts.credentials(email)
    assert found is not None and found.totp_secret == seed
    assert _stored_seed(site, path) == ""
    # Signing in: the other browser's seed fails, the accepting browser's works.
    wrong = post_sign_in(site.client(), email, PASSWORD, totp.code_at(other_seed, step + 1))
    assert wrong.status_code == 401
    right = post_sign_in(site.client(), email, PASSWORD, totp.code_at(seed, step + 1))
    assert right.status_code == 303


@pytest.mark.parametrize("confirmed_with", ["stored", "browser"])
def test_an_invitation_an_older_version_sent_still_accepts(
    site: PortalSite, confirmed_with: str
) -> None:
    """Its stored seed (the invitee may have scanned it before the upgrade) or the browser's
    own, whichever the code is of; the stored one is never shown again."""
    token, stored = new_token(), totp.new_secret()
    email = f"oud-{confirmed_with}@lyceum.example"
    seal = site.settings.secret_seal()
    store_old_invitation(
        site.settings.registry_url,
        seal,
        token_hash(token),
        email,
        AdminRole.SCHOOL,
        DEMO_SCHOOL_ID,
        stored,
    )
    path = f"/portal/invitation/{token}"
    client = site.client()
    page, seed = _opened(client, path)
    assert stored not in page and seed != stored
    chosen = stored if confirmed_with == "stored" else seed
    accepted = post_invitation(client, path, page, totp.code_at(chosen, totp.current_step()))
    assert accepted.status_code == 303, accepted.get_data(as_text=True)[:500]
    found = site.registry.accounts.credentials(email)
    assert found is not None and found.totp_secret == chosen
    assert _stored_seed(site, path) == ""  # used: the stored seed is forgotten


def test_invitations_open_in_tabs_of_one_browser_keep_their_own_seeds(
    site: PortalSite, operator: FlaskClient
) -> None:
    """One browser, two invitation tabs (an operator inviting themselves twice, say): each
    page keeps the seed it showed, so the first tab's key still confirms after the second tab
    opened; the session keeps at most `KEPT` seeds, the most recent."""
    paths = [
        invite(operator, f"tab{n}@lyceum.example", "school", DEMO_SCHOOL_ID)[1]
        for n in range(KEPT + 1)
    ]
    # Bounded: more invitations than it keeps, and the oldest kept one makes way.
    crowded = site.client()
    seeds = [_opened(crowded, path)[1] for path in paths]
    kept = _session(site, crowded)[SESSION_SEED]
    assert isinstance(kept, list) and len(kept) == KEPT
    assert [_opened(crowded, path)[1] for path in paths[-KEPT:]] == seeds[-KEPT:]
    assert _opened(crowded, paths[0])[1] != seeds[0]

    browser = site.client()
    first_page, first_seed = _opened(browser, paths[0])
    _, second_seed = _opened(browser, paths[1])
    assert _opened(browser, paths[0])[1] == first_seed  # a reload of the first tab
    assert _opened(browser, paths[1])[1] == second_seed
    accepted = post_invitation(
        browser, paths[0], first_page, totp.code_at(first_seed, totp.current_step())
    )
    assert accepted.status_code == 303, accepted.get_data(as_text=True)[:500]
    found = site.registry.accounts.credentials("tab0@lyceum.example")
    assert found is not None and found.totp_secret == first_seed


@pytest.mark.parametrize(
    ("lang", "advice"),
    [
        ("en", "type this key into the app on your phone"),
        ("nl", "typ deze sleutel dan in de app op uw telefoon"),
    ],
)
def test_the_page_says_to_type_the_key_and_finish_in_this_browser(
    site: PortalSite, operator: FlaskClient, lang: str, advice: str
) -> None:
    """Opening the link on the phone gives the phone a key of its own: the page no longer
    advises it, but typing this page's key and finishing here."""
    _, path = invite(operator, f"advies-{lang}@lyceum.example", "school", DEMO_SCHOOL_ID)
    page = site.client().get(f"{path}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
    shown = page[page.index('id="type-the-key"') :]
    shown = shown[: shown.index("</p>")].lower()
    assert advice in shown
    assert "open the link on the phone" not in page and "open de link op de telefoon" not in page
