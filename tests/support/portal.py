"""A broker app with the demo federation registered (no servers), and signed-in portal clients.

`PortalSite` builds the demo's broker app in a temporary folder (the demo school, chains and
publishers in its registry) and creates one administrator per role; `client(role)` returns a
Flask test client that signed in through the real sign-in form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from broker.accounts import totp
from broker.accounts.passwords import hash_password
from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo
from broker.core.admins import Admin, AdminRole, Publisher
from broker.registry import SqlRegistry
from broker.web.wiring import Broker

PASSWORD = "correct horse battery staple"
HTTPS = "https://127.0.0.1"
OTHER_SCHOOL = "11YY11"
PUBLISHER_ID = "uitgeverij-noord"
OTHER_PUBLISHER = "uitgeverij-zuid"


def assert_one_stale_page_line(
    caplog: pytest.LogCaptureFixture, reason: str, *, school: str = "-", service: str = "-"
) -> None:
    """The request's refusal lines: exactly the one of a stale page (web/portal/rights.py
    `stale_page_refused`), with its reason code and the route's ids only."""
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == "broker.portal" and record.getMessage().startswith("portal refused")
    ]
    assert lines == [
        f"portal refused stale page reason={reason} school={school} service={service}"
    ], lines


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


def hidden_value(html: str, name: str) -> str | None:
    """The value of the page's (first) hidden field `name`, None when it has none."""
    found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html
    )
    return found.group(1) if found else None


def page_fields(html: str) -> dict[str, str]:
    """What a portal form sends back besides what is typed: the CSRF token and, on a school's
    identity provider page, the settings' version it showed (a save without it is refused)."""
    seen = hidden_value(html, "provider_seen")
    return {"csrf_token": csrf_token(html), **({"provider_seen": seen} if seen else {})}


def choice_fields(html: str) -> dict[str, str]:
    """A school's service page's choice form, as a browser sends it back: its CSRF token and
    the declaration and policy versions the page showed (a save without them is refused)."""
    fields = {"csrf_token": csrf_token(html)}
    for name in ("declarations_seen", "policy_seen"):
        seen = hidden_value(html, name)
        assert seen is not None, f"the choice form names the {name} version it shows"
        fields[name] = seen
    return fields


class _PageReader(HTMLParser):
    """Every address a page names (href, src, action, formaction) and each form's hidden
    fields, attribute values unescaped as a browser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: list[str] = []
        self.forms: dict[str, dict[str, str]] = {}
        self.actions: dict[str, str] = {}
        self._form: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {name: value or "" for name, value in attrs}
        self.addresses += [named[a] for a in ("href", "src", "action", "formaction") if a in named]
        if tag == "form":
            self._form = named.get("id", "")
            self.forms[self._form] = {}
            self.actions[self._form] = named.get("action", "")
        elif tag == "input" and named.get("type") == "hidden" and self._form is not None:
            self.forms[self._form][named.get("name", "")] = named.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def _read(html: str) -> _PageReader:
    reader = _PageReader()
    reader.feed(html)
    reader.close()
    return reader


def page_addresses(html: str) -> list[str]:
    """Every address the page names: links, sources, form actions and buttons' formactions."""
    return _read(html).addresses


def form_fields(html: str, form_id: str) -> tuple[str, dict[str, str]]:
    """The form with this id as a browser sends it without a change: (its action, its hidden
    fields, the CSRF token among them)."""
    reader = _read(html)
    assert form_id in reader.forms, f"no form #{form_id} on the page"
    return reader.actions[form_id], reader.forms[form_id]


def plain_http_copy(original: str, known: str, paths: tuple[str, ...], host: str) -> str:
    """`original` metadata with its endpoints at `paths` (every binding) moved to the plain-http
    public `host`, as a copy from before intake checked them holds them: the endpoints' own
    base is that of the one at path `known` (`/sso`, `/acs`)."""
    found = re.search(rf'Location="(http://[^/"]+){re.escape(known)}"', original)
    assert found is not None
    base, changed = found.group(1), original
    for path in paths:
        changed = changed.replace(f'"{base}{path}"', f'"{host}{path}"')
    assert changed != original
    return changed


def post_sign_in(client: FlaskClient, email: str, password: str, code: str) -> TestResponse:
    """The sign-in form, filled in and sent as a browser would (with its CSRF token)."""
    page = client.get("/portal/sign-in", base_url=HTTPS)
    return client.post(
        "/portal/sign-in",
        base_url=HTTPS,
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": email,
            "password": password,
            "code": code,
        },
    )


def invite(operator: FlaskClient, email: str, role: str, tenant: str) -> tuple[str, str]:
    """The operator's invitation form sent: (the page that answers it, the invitation's path)."""
    page = operator.get("/portal/operator/admins", base_url=HTTPS).get_data(as_text=True)
    invited = operator.post(
        "/portal/operator/admins/invite",
        base_url=HTTPS,
        data={"csrf_token": csrf_token(page), "email": email, "role": role, "tenant_id": tenant},
    ).get_data(as_text=True)
    link = re.search(r'id="invite-link"[^>]*>([^<]+)<', invited)
    assert link is not None, invited[:500]
    return invited, "/" + link.group(1).strip().split("/", 3)[3]


def shown_seed(page: str) -> str:
    """The TOTP seed an invitation's page shows this browser (the key to type in)."""
    found = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', page)
    assert found is not None, "no TOTP seed on the page"
    return found.group(1)


def accept_invitation(
    client: FlaskClient, path: str, secret: str | None = None
) -> tuple[str, TestResponse]:
    """The invitation's page opened and its form sent as the invitee would, with a code of
    `secret`, by default of the seed the page shows this browser: (the page with the form,
    the answer to it)."""
    form = client.get(path, base_url=HTTPS).get_data(as_text=True)
    secret = secret or shown_seed(form)
    return form, post_invitation(client, path, form, totp.code_at(secret, totp.current_step() + 1))


def post_invitation(
    client: FlaskClient,
    path: str,
    form: str,
    code: str,
    password: str = PASSWORD,
    again: str | None = None,
) -> TestResponse:
    """The invitation's form on the page `form`, sent with `password` (typed `again` the
    second time: the same by default) and `code`."""
    return client.post(
        path,
        base_url=HTTPS,
        data={
            "csrf_token": csrf_token(form),
            "password": password,
            "password_again": password if again is None else again,
            "code": code,
        },
    )


@dataclass
class Account:
    admin: Admin
    email: str
    secret: str


class PortalSite:
    def __init__(self, directory: Path, port: int = 8690) -> None:
        self.directory = directory
        self.settings, apps = prepare_demo(directory, port)
        self.app: Flask = apps[self.settings.base_url]
        self.app.config["TESTING"] = True
        self.broker: Broker = self.app.extensions["ketenbroker"]
        accounts = self.registry.accounts
        for publisher in (PUBLISHER_ID, OTHER_PUBLISHER):
            accounts.add_publisher(Publisher(publisher, publisher.title()))
        self.accounts = {
            "operator": self.add_account("ops@broker.example", AdminRole.OPERATOR, None),
            "school": self.add_account("ict@lyceum.example", AdminRole.SCHOOL, DEMO_SCHOOL_ID),
            "publisher": self.add_account("dev@noord.example", AdminRole.PUBLISHER, PUBLISHER_ID),
        }

    @property
    def registry(self) -> SqlRegistry:
        return self.broker.registry

    def add_account(self, email: str, role: AdminRole, tenant: str | None) -> Account:
        secret = totp.new_secret()
        admin = self.registry.accounts.add_admin(
            email, hash_password(PASSWORD), secret, role, tenant
        )
        return Account(admin, email, secret)

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def sign_in(
        self, role: str, *, code: str | None = None, client: FlaskClient | None = None
    ) -> FlaskClient:
        """Sign in once per account and test: a code is accepted once only (the next step of
        the window is used, so a step the clock just left does not matter). `client`: a
        browser that may be signed in already (a shared computer); else a new one."""
        account = self.accounts[role]
        client = client or self.client()
        step = totp.current_step() + 1
        response = post_sign_in(
            client, account.email, PASSWORD, code or totp.code_at(account.secret, step)
        )
        if code is None:
            assert response.status_code == 303, response.get_data(as_text=True)
        return client


@contextmanager
def portal_site(directory: Path, port: int) -> Iterator[PortalSite]:
    """A PortalSite for one test, its registry closed after."""
    built = PortalSite(directory, port=port)
    try:
        yield built
    finally:
        built.registry.close()
