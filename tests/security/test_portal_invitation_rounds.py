"""Making and accepting an invitation, round by round.

The operator's "Create invitation" answer shows the link once and is never stored; sent again
(a reload re-sends its form) it makes no second link for the address, but says one is open,
and a new one is made only to replace it (one open invitation per address). The invitee's form
says every field's problem in one round, a wrong code with a refused password, in the portal's
own words: the password's length as its hint says it, not WTForms' stock text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from broker.accounts import totp
from broker.cli.demo import DEMO_SCHOOL_ID
from tests.support.portal import (
    HTTPS,
    PASSWORD,
    PortalSite,
    csrf_token,
    form_fields,
    invite,
    post_invitation,
    shown_seed,
)

ADMINS = "/portal/operator/admins"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("invitation-rounds"), port=8851)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    return site.sign_in("operator")


def _field_error(page: str, field: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page, re.S)
    return unescape(found.group(1)) if found else None


def _link(page: str) -> str | None:
    found = re.search(r'id="invite-link"[^>]*>([^<]+)<', page)
    return "/" + found.group(1).strip().split("/", 3)[3] if found else None


def _open_for(site: PortalSite, email: str) -> list[str]:
    return [i.token_hash for i in site.registry.accounts.open_invitations() if i.email == email]


def _send(operator: FlaskClient, data: dict[str, str], lang: str = "nl") -> TestResponse:
    return operator.post(f"{ADMINS}/invite?lang={lang}", base_url=HTTPS, data=data)


def test_a_reload_of_the_answer_makes_no_second_link(
    site: PortalSite, operator: FlaskClient
) -> None:
    email = "herladen@lyceum.example"
    page = operator.get(ADMINS, base_url=HTTPS).get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "email": email, "role": "school"}
    form["tenant_id"] = DEMO_SCHOOL_ID
    first = _send(operator, form)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"  # the link is in it
    link = _link(first.get_data(as_text=True))
    assert link is not None
    [made] = _open_for(site, email)

    # The same form again, as a reload sends it: no new link, the open one is named.
    again = _send(operator, form)
    said = again.get_data(as_text=True)
    assert again.status_code == 400 and _link(said) is None
    error = _field_error(said, "email")
    assert error is not None and "staat al een uitnodiging open tot" in error
    assert _open_for(site, email) == [made]
    assert said.count(f"{email} —") == 1  # listed once among the open invitations
    assert site.client().get(link, base_url=HTTPS).status_code == 200

    # Asked for on that page: a new one replaces it, and only the new link works.
    action, hidden = form_fields(said, "invite-form")
    assert hidden["replaces"] == made and 'id="replace-invitation"' in said
    data = {**form, **hidden}
    replaced = operator.post(action, base_url=HTTPS, data=data)
    assert replaced.status_code == 200
    new_link = _link(replaced.get_data(as_text=True))
    assert new_link is not None and new_link != link
    assert len(_open_for(site, email)) == 1 and _open_for(site, email) != [made]
    assert site.client().get(link, base_url=HTTPS).status_code == 400
    # That answer reloaded names the one it replaced, no longer open: refused, nothing closed.
    reloaded = operator.post(action, base_url=HTTPS, data=data)
    assert reloaded.status_code == 400 and _link(reloaded.get_data(as_text=True)) is None
    assert site.client().get(new_link, base_url=HTTPS).status_code == 200


def test_another_address_is_invited_as_before(site: PortalSite, operator: FlaskClient) -> None:
    invite(operator, "een@lyceum.example", "school", DEMO_SCHOOL_ID)
    invite(operator, "twee@lyceum.example", "school", DEMO_SCHOOL_ID)
    assert len(_open_for(site, "een@lyceum.example")) == 1


def _accept(
    client: FlaskClient, path: str, password: str, again: str, code: str, lang: str = "nl"
) -> tuple[int, str]:
    page = client.get(f"{path}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
    answer = post_invitation(client, f"{path}?lang={lang}", page, code, password, again)
    return answer.status_code, answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("lang", "hint", "short", "long"),
    [
        (
            "nl",
            "Minstens 12 tekens.",
            "Gebruik minstens 12 tekens.",
            "Gebruik hoogstens 256 tekens.",
        ),
        (
            "en",
            "At least 12 characters.",
            "Use at least 12 characters.",
            "Use at most 256 characters.",
        ),
    ],
)
def test_the_password_length_is_said_as_its_hint_says_it(
    site: PortalSite, operator: FlaskClient, lang: str, hint: str, short: str, long: str
) -> None:
    _, path = invite(operator, f"lengte-{lang}@lyceum.example", "school", DEMO_SCHOOL_ID)
    invitee = site.client()
    for password, said in (("kort", short), ("x" * 257, long)):
        status, page = _accept(invitee, path, password, password, "000000", lang)
        assert status == 400
        assert f'id="password-hint">{hint}<' in page
        assert _field_error(page, "password") == said
        assert "karakters" not in page and "Field " not in page


def test_every_fields_problem_is_said_in_one_round(site: PortalSite, operator: FlaskClient) -> None:
    email = "een-ronde@lyceum.example"
    _, path = invite(operator, email, "school", DEMO_SCHOOL_ID)
    invitee = site.client()
    seed = shown_seed(invitee.get(path, base_url=HTTPS).get_data(as_text=True))
    right = totp.code_at(seed, totp.current_step() + 1)
    wrong = "000000" if right != "000000" else "111111"

    # A short password and a wrong code: both said now.
    status, page = _accept(invitee, path, "kort", "kort", wrong)
    assert status == 400
    assert _field_error(page, "password") == "Gebruik minstens 12 tekens."
    assert (_field_error(page, "code") or "").startswith("Deze code klopt niet.")

    # A right code with a refused password: only the password is said, and the code, not
    # used up, confirms once the password is mended.
    status, page = _accept(invitee, path, "kort", "kort", right)
    assert status == 400 and _field_error(page, "code") is None
    status, page = _accept(invitee, path, PASSWORD, "anders", right)
    assert status == 400 and _field_error(page, "password_again") is not None
    assert _field_error(page, "code") is None
    status, _ = _accept(invitee, path, PASSWORD, PASSWORD, right)
    assert status == 303
    assert site.registry.accounts.credentials(email) is not None


def test_empty_fields_are_said_in_the_portals_words(
    site: PortalSite, operator: FlaskClient
) -> None:
    _, path = invite(operator, "leeg@lyceum.example", "school", DEMO_SCHOOL_ID)
    status, page = _accept(site.client(), path, "", "", "")
    assert status == 400
    assert _field_error(page, "password") == "Kies een wachtwoord."
    assert _field_error(page, "password_again") == "Typ het wachtwoord nog een keer."
    assert _field_error(page, "code") == "Vul de 6 cijfers uit uw app in."
    assert "Dit veld is vereist" not in page
