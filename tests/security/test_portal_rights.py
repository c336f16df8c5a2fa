"""The portals' rights: every portal URL against every role that must not reach it, CSRF, and
sign-in refusals. Against the demo's broker app (no servers) with the Flask test client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.support.portal import (
    HTTPS,
    OTHER_PUBLISHER,
    OTHER_SCHOOL,
    PASSWORD,
    PUBLISHER_ID,
    PortalSite,
    csrf_token,
    invite,
    post_sign_in,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal"))
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def clients(site: PortalSite) -> dict[str, FlaskClient]:
    signed_in = {role: site.sign_in(role) for role in ("operator", "school", "publisher")}
    signed_in["anonymous"] = site.client()
    return signed_in


OPERATOR_URLS = [
    ("GET", "/portal/operator/attention"),
    ("GET", "/portal/operator/services"),
    ("POST", "/portal/operator/services/leesplank/approve"),
    ("POST", "/portal/operator/services/leesplank/chain"),
    ("GET", "/portal/operator/chains"),
    ("POST", "/portal/operator/chains"),
    ("GET", "/portal/operator/schools"),
    ("POST", "/portal/operator/schools"),
    ("GET", f"/portal/operator/schools/{DEMO_SCHOOL_ID}"),
    ("POST", f"/portal/operator/schools/{DEMO_SCHOOL_ID}"),
    ("GET", "/portal/operator/admins"),
    ("POST", "/portal/operator/admins/invite"),
    ("POST", "/portal/operator/admins/publishers"),
    ("POST", "/portal/operator/admins/invitations/" + "0" * 64 + "/withdraw"),
]
SCHOOL_URLS = [
    ("GET", f"/portal/school/{DEMO_SCHOOL_ID}/services"),
    ("GET", f"/portal/school/{DEMO_SCHOOL_ID}/services/leesplank"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/services/leesplank"),
    ("GET", f"/portal/school/{DEMO_SCHOOL_ID}/identity-provider"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/identity-provider/saml"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/identity-provider/oidc"),
    ("GET", f"/portal/school/{DEMO_SCHOOL_ID}/receipts"),
    ("GET", f"/portal/school/{DEMO_SCHOOL_ID}/receipts.csv"),
    ("GET", f"/portal/school/{DEMO_SCHOOL_ID}/receipts.json"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/receipts"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/receipts.csv"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/receipts.json"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/receipts/student"),
    ("GET", f"/portal/school/{DEMO_SCHOOL_ID}/overview"),
    ("POST", f"/portal/school/{DEMO_SCHOOL_ID}/privacy-contact"),
]
PUBLISHER_URLS = [
    ("GET", f"/portal/publisher/{PUBLISHER_ID}/services"),
    ("GET", f"/portal/publisher/{PUBLISHER_ID}/services/new"),
    ("POST", f"/portal/publisher/{PUBLISHER_ID}/services/new"),
    ("GET", f"/portal/publisher/{PUBLISHER_ID}/services/new-oidc"),
    ("POST", f"/portal/publisher/{PUBLISHER_ID}/services/new-oidc"),
]
# A client of nobody's (the demo's OIDC publisher): no publisher administrator may touch it.
FOREIGN_CLIENT = [
    ("POST", f"/portal/publisher/{PUBLISHER_ID}/services/woordwijs/oidc/secret"),
    ("GET", f"/portal/publisher/{PUBLISHER_ID}/services/woordwijs/oidc"),
    ("POST", f"/portal/publisher/{PUBLISHER_ID}/services/woordwijs/oidc"),
]
# Who must not reach each URL (403 when signed in, sign-in page when not).
MATRIX = (
    [(m, u, r) for m, u in OPERATOR_URLS for r in ("school", "publisher", "anonymous")]
    + [(m, u, r) for m, u in SCHOOL_URLS for r in ("operator", "publisher", "anonymous")]
    + [(m, u, r) for m, u in PUBLISHER_URLS for r in ("operator", "school", "anonymous")]
    + [(m, u, r) for m, u in FOREIGN_CLIENT for r in ("operator", "school", "publisher")]
    # Another tenant of the same role.
    + [
        ("GET", f"/portal/school/{OTHER_SCHOOL}/services", "school"),
        ("GET", f"/portal/school/{OTHER_SCHOOL}/services/leesplank", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/services/leesplank", "school"),
        ("GET", f"/portal/school/{OTHER_SCHOOL}/identity-provider", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/identity-provider/saml", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/identity-provider/oidc", "school"),
        ("GET", f"/portal/school/{OTHER_SCHOOL}/receipts", "school"),
        ("GET", f"/portal/school/{OTHER_SCHOOL}/receipts.csv", "school"),
        ("GET", f"/portal/school/{OTHER_SCHOOL}/receipts.json", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/receipts", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/receipts.csv", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/receipts.json", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/receipts/student", "school"),
        ("GET", f"/portal/school/{OTHER_SCHOOL}/overview", "school"),
        ("POST", f"/portal/school/{OTHER_SCHOOL}/privacy-contact", "school"),
        ("GET", f"/portal/publisher/{OTHER_PUBLISHER}/services", "publisher"),
        ("GET", f"/portal/publisher/{OTHER_PUBLISHER}/services/new", "publisher"),
        ("POST", f"/portal/publisher/{OTHER_PUBLISHER}/services/new", "publisher"),
        ("GET", f"/portal/publisher/{OTHER_PUBLISHER}/services/new-oidc", "publisher"),
        ("POST", f"/portal/publisher/{OTHER_PUBLISHER}/services/new-oidc", "publisher"),
        # The publisher's own URL, but a service of nobody / of another publisher.
        ("GET", f"/portal/publisher/{PUBLISHER_ID}/services/leesplank", "publisher"),
        ("POST", f"/portal/publisher/{PUBLISHER_ID}/services/leesplank", "publisher"),
    ]
)


def _token(client: FlaskClient) -> str:
    """A valid CSRF token of this client's session, so a refusal is the rights check's."""
    page = client.get("/portal/sign-in", base_url=HTTPS)
    return csrf_token(page.get_data(as_text=True))


@pytest.mark.parametrize(("method", "url", "role"), MATRIX)
def test_no_role_reaches_another_roles_pages(
    site: PortalSite,
    clients: dict[str, FlaskClient],
    method: str,
    url: str,
    role: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = clients[role]
    before = site.registry.all_services()
    with caplog.at_level(logging.WARNING, logger="broker.portal"):
        if method == "GET":
            response = client.get(url, base_url=HTTPS)
        else:
            response = client.post(url, base_url=HTTPS, data={"csrf_token": _token(client)})
    if role == "anonymous":
        assert response.status_code == 303
        assert response.headers["Location"].endswith("/portal/sign-in")
        return
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Geen toegang" in page  # Dutch unless asked otherwise
    assert site.registry.all_services() == before
    refusal = [r.getMessage() for r in caplog.records if "status=403" in r.getMessage()]
    assert refusal, "a refusal is logged"
    account = site.accounts[role]
    assert f"admin={account.admin.id}" in refusal[0]
    assert f"role={account.admin.role.value}" in refusal[0]
    assert account.email not in refusal[0]


def test_forbidden_page_speaks_english_on_request(clients: dict[str, FlaskClient]) -> None:
    response = clients["school"].get("/portal/operator/services?lang=en", base_url=HTTPS)
    assert response.status_code == 403
    assert "No access" in response.get_data(as_text=True)


# The receipts' downloads are POSTs; a GET there is refused by its own role too (405, with a
# page: tests/security/test_school_receipts_portal.py), after the rights check above.
OWN_PAGES = [
    u
    for m, u in OPERATOR_URLS + SCHOOL_URLS + PUBLISHER_URLS
    if m == "GET" and not u.endswith((".csv", ".json"))
]


@pytest.mark.parametrize("url", OWN_PAGES)
def test_each_role_reaches_its_own_pages(clients: dict[str, FlaskClient], url: str) -> None:
    role = "operator" if "/operator/" in url else "school" if "/school/" in url else "publisher"
    assert clients[role].get(url, base_url=HTTPS).status_code == 200


def test_post_without_csrf_token_is_refused_and_changes_nothing(
    site: PortalSite, clients: dict[str, FlaskClient]
) -> None:
    before = site.registry.chains()
    response = clients["operator"].post(
        "/portal/operator/chains", base_url=HTTPS, data={"chain_id": "sneaky", "name": "Sneaky"}
    )
    assert response.status_code == 400
    assert "Formulier niet geaccepteerd" in response.get_data(as_text=True)
    assert site.registry.chains() == before


def test_post_with_another_sessions_csrf_token_is_refused(
    site: PortalSite, clients: dict[str, FlaskClient]
) -> None:
    foreign = _token(site.client())
    response = clients["operator"].post(
        "/portal/operator/chains",
        base_url=HTTPS,
        data={"csrf_token": foreign, "chain_id": "sneaky", "name": "Sneaky"},
    )
    assert response.status_code == 400
    assert site.registry.chain("sneaky") is None


def _sign_in_attempt(site: PortalSite, email: str, password: str, code: str) -> tuple[int, str]:
    client = site.client()
    response = post_sign_in(client, email, password, code)
    signed_in = client.get("/portal/operator/services", base_url=HTTPS).status_code == 200
    assert not signed_in
    return response.status_code, response.get_data(as_text=True)


def test_wrong_code_wrong_password_and_unknown_address_get_one_answer(
    site: PortalSite, caplog: pytest.LogCaptureFixture
) -> None:
    from broker.accounts import totp

    account = site.accounts["operator"]
    good_code = totp.code_at(account.secret, totp.current_step())
    wrong_code = str((int(good_code) + 1) % 1_000_000).zfill(6)
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        answers = [
            _sign_in_attempt(site, account.email, PASSWORD, wrong_code),
            _sign_in_attempt(site, account.email, "wrong password!!", good_code),
            _sign_in_attempt(site, "nobody@broker.example", PASSWORD, good_code),
        ]
    assert {status for status, _ in answers} == {401}
    message = "het wachtwoord of de code klopt niet"
    assert all(message in page for _, page in answers)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "sign-in refused" in logged
    assert account.email not in logged and "nobody@" not in logged


def test_sign_out_ends_the_session(site: PortalSite) -> None:
    from broker.core.admins import AdminRole

    site.accounts["leaving"] = site.add_account("leaving@broker.example", AdminRole.OPERATOR, None)
    client = site.sign_in("leaving")
    token = csrf_token(client.get("/portal/operator/services", base_url=HTTPS).get_data(True))
    response = client.post("/portal/sign-out", base_url=HTTPS, data={"csrf_token": token})
    assert response.status_code == 303
    assert client.get("/portal/operator/services", base_url=HTTPS).status_code == 303


def test_session_cookie_is_host_prefixed_secure_httponly_lax(site: PortalSite) -> None:
    client = site.client()
    response = client.get("/portal/sign-in", base_url=HTTPS)
    cookie = next(
        value for value in response.headers.getlist("Set-Cookie") if "__Host-kb_portal=" in value
    )
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie


def test_sign_in_is_throttled_per_account_before_any_password_is_checked(
    site: PortalSite, caplog: pytest.LogCaptureFixture
) -> None:
    from broker.accounts import totp
    from broker.core.admins import AdminRole
    from broker.web.portal.guard import ACCOUNT_FAILURES

    site.accounts["guessed"] = site.add_account("guessed@broker.example", AdminRole.OPERATOR, None)
    account = site.accounts["guessed"]
    for _ in range(ACCOUNT_FAILURES):
        status, _ = _sign_in_attempt(site, account.email, PASSWORD, "000000")
        assert status == 401
    # Now even the right password and code are refused, until the window has passed.
    good = totp.code_at(account.secret, totp.current_step())
    with caplog.at_level(logging.WARNING, logger="broker.portal"):
        status, page = _sign_in_attempt(site, account.email, PASSWORD, good)
    assert status == 429
    assert 'id="sign-in-throttled"' in page
    assert "reason=throttled" in caplog.text and account.email not in caplog.text


def _copied(site: PortalSite, client: FlaskClient) -> FlaskClient:
    """Another browser with a copy of `client`'s portal cookie, which works for now."""
    from broker.web.portal import SESSION_COOKIE

    cookie = client.get_cookie(SESSION_COOKIE, domain=urlsplit(HTTPS).hostname or "")
    assert cookie is not None
    thief = site.client()
    thief.set_cookie(SESSION_COOKIE, cookie.value, domain=cookie.domain, secure=True)
    assert thief.get("/portal/operator/services", base_url=HTTPS).status_code == 200
    return thief


def test_a_copied_session_cookie_dies_with_sign_out(site: PortalSite) -> None:
    from broker.core.admins import AdminRole

    site.accounts["copied"] = site.add_account("copied@broker.example", AdminRole.OPERATOR, None)
    client = site.sign_in("copied")
    thief = _copied(site, client)
    token = csrf_token(client.get("/portal/operator/services", base_url=HTTPS).get_data(True))
    assert (
        client.post("/portal/sign-out", base_url=HTTPS, data={"csrf_token": token}).status_code
        == 303
    )
    assert thief.get("/portal/operator/services", base_url=HTTPS).status_code == 303


def test_signing_in_again_in_one_browser_ends_the_session_it_had(site: PortalSite) -> None:
    """A second administrator signing in at a shared computer without the first one signing
    out: the first one's session ends on the server, so a copy of its cookie dies too."""
    from broker.core.admins import AdminRole

    site.accounts["first"] = site.add_account("first@broker.example", AdminRole.OPERATOR, None)
    site.accounts["second"] = site.add_account("second@broker.example", AdminRole.OPERATOR, None)
    client = site.sign_in("first")
    thief = _copied(site, client)
    site.sign_in("second", client=client)
    assert client.get("/portal/operator/services", base_url=HTTPS).status_code == 200
    assert thief.get("/portal/operator/services", base_url=HTTPS).status_code == 303


def test_portal_pages_are_never_cached(clients: dict[str, FlaskClient]) -> None:
    for role, url in (
        ("anonymous", "/portal/sign-in"),
        ("operator", "/portal/operator/admins"),
        ("school", f"/portal/school/{DEMO_SCHOOL_ID}/services"),
    ):
        response = clients[role].get(url, base_url=HTTPS)
        assert response.headers["Cache-Control"] == "no-store", url


def test_an_operator_can_withdraw_an_invitation(
    site: PortalSite, clients: dict[str, FlaskClient]
) -> None:
    import re

    operator = clients["operator"]
    invited, path = invite(operator, "wrong.address@school.example", "school", DEMO_SCHOOL_ID)
    assert site.client().get(path, base_url=HTTPS).status_code == 200
    withdraw = re.search(
        r'action="(/portal/operator/admins/invitations/[0-9a-f]{64}/withdraw)"', invited
    )
    assert withdraw is not None
    response = operator.post(
        withdraw.group(1), base_url=HTTPS, data={"csrf_token": csrf_token(invited)}
    )
    assert response.status_code == 303
    assert site.client().get(path, base_url=HTTPS).status_code >= 400


def _answered_late(site: PortalSite, client: FlaskClient, sent_with: str, path: str) -> None:
    """A request of the page before (its favicon, a script) sent with the portal cookie
    `sent_with`, whose answer reaches `client`'s browser only now: a cookie it sets replaces
    the one the browser holds, as a browser's cookie jar does."""
    from broker.web.portal import SESSION_COOKIE

    host = urlsplit(HTTPS).hostname or ""
    other = site.client()
    other.set_cookie(SESSION_COOKIE, sent_with, domain=host, secure=True)
    answer = other.get(path, base_url=HTTPS)
    answer.close()  # a static file's answer holds the file open until closed
    assert answer.status_code in (200, 204), path
    if any(v.startswith(f"{SESSION_COOKIE}=") for v in answer.headers.getlist("Set-Cookie")):
        late = other.get_cookie(SESSION_COOKIE, domain=host)
        assert late is not None
        client.set_cookie(SESSION_COOKIE, late.value, domain=host, secure=True)


def _portal_cookie(client: FlaskClient) -> str:
    from broker.web.portal import SESSION_COOKIE

    cookie = client.get_cookie(SESSION_COOKIE, domain=urlsplit(HTTPS).hostname or "")
    assert cookie is not None
    return cookie.value


@pytest.mark.parametrize("path", ["/favicon.ico", "/static/style.css"])
def test_a_late_answer_of_the_page_before_a_form_keeps_what_the_form_flashed(
    site: PortalSite, clients: dict[str, FlaskClient], path: str
) -> None:
    """A browser asks for the page's favicon and scripts while the administrator already sends
    its form. One answered between the form's redirect and the page it leads to must not put
    back the session from before the POST: the "saved" message would be gone (the flaky
    browser test of a school's provider switch, under load)."""
    import re

    operator = clients["operator"]
    chain_id = "late-" + path.rsplit("/", 1)[1].split(".", maxsplit=1)[0]
    page = operator.get("/portal/operator/chains", base_url=HTTPS).get_data(as_text=True)
    before = _portal_cookie(operator)
    sent = operator.post(
        "/portal/operator/chains",
        base_url=HTTPS,
        data={"csrf_token": csrf_token(page), "chain_id": chain_id, "name": "Late answers"},
    )
    assert sent.status_code == 303
    _answered_late(site, operator, before, path)
    shown = operator.get(sent.headers["Location"], base_url=HTTPS).get_data(as_text=True)
    assert re.search(rf'role="status"><p>[^<]*{chain_id}', shown), shown[:2000]
