"""The discovery page without a search is made once per worker, registry generation, service,
language, mount point and remembered school, and each login's own id (and the remembered
school's prepared link) put in (docs/performance.md, "The first two requests of a login"). What
each login gets must be what rendering it afresh gives, byte for byte, and never carry another
login's id."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID, prepare_demo
from broker.login.login_model import MY_DATA, LoginRecord, LoginRequest
from broker.web.browser import SCHOOL_COOKIE
from broker.web.discovery import discovery_page
from broker.web.wiring import broker

PORT = 8700  # only in URLs: nothing listens


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    settings, apps = prepare_demo(tmp_path_factory.mktemp("discovery-cache"), PORT)
    yield apps[settings.base_url]


def _service_id(app: Flask) -> str:
    with app.app_context():
        return next(s.id for s in broker().view.services() if s.oidc is None)


def _page(
    app: Flask,
    service_id: str,
    *,
    headers: dict[str, str],
    query_string: str = "",
    mount: str = "",
    query: str = "",
    language: str | None = None,
    fresh: bool = False,
    prepared: str | None = None,
) -> tuple[str, str, bytes, dict[str, str]]:
    """(login id, page text, body, headers) of one login's discovery page; `fresh`: rendered
    as if templates could change on disk, which is never kept. `prepared`: the remembered
    school's link, `{login}` standing for the login id (as RelayState or state carry it)."""
    login_id = secrets.token_urlsafe(18)
    record = LoginRecord(login_id, LoginRequest(service_id), 1.0)
    link = prepared.format(login=login_id) if prepared else None
    app.jinja_env.auto_reload = fresh
    try:
        with app.test_request_context(
            f"/saml/idp/sso?SAMLRequest=x{query_string}",
            headers=headers,
            base_url=f"http://127.0.0.1:{PORT}{mount}",
        ):
            response = discovery_page(record, query, language=language, prepared=link)
    finally:
        app.jinja_env.auto_reload = False
    body = response.get_data()
    return login_id, body.decode(), body, dict(response.headers)


def _as_fresh(app: Flask, service_id: str, **kwargs: Any) -> tuple[str, str]:
    """One login's page, checked against rendering it afresh for another login (headers,
    and the body with the other login's id in its places); (login id, page text)."""
    login_id, text, body, headers = _page(app, service_id, **kwargs)
    fresh_id, _text, fresh, fresh_headers = _page(app, service_id, fresh=True, **kwargs)
    assert body == fresh.replace(fresh_id.encode(), login_id.encode())
    assert headers == fresh_headers
    assert fresh_id not in text
    return login_id, text


CASES = [
    {"Accept-Language": "nl-NL,nl;q=0.9"},
    {"Accept-Language": "en-GB,en;q=0.9"},
    {"Accept-Language": "en", "Cookie": f"{SCHOOL_COOKIE}={DEMO_SCHOOL_ID}"},
    {"Cookie": f"{SCHOOL_COOKIE}={DEMO_OIDC_SCHOOL_ID}"},
    {"Cookie": f"{SCHOOL_COOKIE}=no-such-school"},
]


@pytest.mark.parametrize("mount", ["", "/kb"])
@pytest.mark.parametrize("headers", CASES)
def test_each_login_gets_the_page_a_fresh_render_gives(
    app: Flask, headers: dict[str, str], mount: str
) -> None:
    service_id = _service_id(app)
    for _ in range(3):  # the first fills the worker's copy, the others come from it
        login_id, text = _as_fresh(app, service_id, headers=headers, mount=mount)
        # The login's id in each of its places: the search and school forms (and the remembered
        # school's), "Back to <platform>" and both language links.
        remembered = "Continue with" in text or "Verder met" in text
        assert text.count(login_id) == (6 if remembered else 5)


def test_the_my_data_sign_in_language_asked_for_and_a_search(app: Flask) -> None:
    for service_id, query, language, query_string in [
        (MY_DATA, "", None, ""),
        (MY_DATA, "", None, "&lang=en"),
        (_service_id(app), "", "en", ""),
        (_service_id(app), "Demo", None, ""),
        (_service_id(app), '"><b>Demo', None, ""),
    ]:
        for _ in range(2):
            _as_fresh(
                app,
                service_id,
                headers={},
                query_string=query_string,
                query=query,
                language=language,
            )


def test_a_registry_change_reaches_the_next_page(app: Flask) -> None:
    service_id = _service_id(app)
    _login, before = _as_fresh(app, service_id, headers={})
    assert DEMO_OIDC_SCHOOL_ID in before
    with app.app_context():
        removal = broker().registry.remove_school(DEMO_OIDC_SCHOOL_ID, apply=True)
    assert removal is not None
    _login, after = _as_fresh(app, service_id, headers={})
    assert DEMO_OIDC_SCHOOL_ID not in after and DEMO_SCHOOL_ID in after


# What escaping changes in an attribute (& < > " '), and a login id inside, as in a real link.
PREPARED = "https://idp.school.example/sso?SAMLRequest=a%2Bb&RelayState={login}&x=<\"'>"


def test_the_prepared_link_is_put_in_like_the_login_id(app: Flask) -> None:
    service_id = _service_id(app)
    school = DEMO_SCHOOL_ID  # the link is opaque to the page: a SAML or an OIDC school's alike
    headers = {"Accept-Language": "en", "Cookie": f"{SCHOOL_COOKIE}={school}"}
    pages = []
    for _ in range(3):
        login_id, text = _as_fresh(app, service_id, headers=headers, prepared=PREPARED)
        href = PREPARED.format(login=login_id)
        escaped = href.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        escaped = escaped.replace('"', "&#34;").replace("'", "&#39;")
        assert text.count(f'href="{escaped}"') == 1
        pages.append(text.replace(login_id, "LOGIN"))
    assert pages[0] == pages[1] == pages[2]
    # The same login without a link is the page with the POST button, kept apart.
    _login, plain = _as_fresh(app, service_id, headers=headers)
    assert "data-prepared-for" not in plain and f'name="school" value="{school}"' in plain
    # Without a remembered school a link has nowhere to go: the page is the plain one.
    _login, none = _as_fresh(app, service_id, headers={"Accept-Language": "en"}, prepared=PREPARED)
    assert "data-prepared-for" not in none and "idp.school.example" not in none
