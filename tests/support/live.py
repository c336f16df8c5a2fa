"""The whole demo (broker, school IdP, publishers) running on free loopback ports, and the
steps of a student's login through it.

Everything a test compares against is computed here independently of the broker: the school's
persistent NameID from its documented rule, and the chain pseudonym from the key file with the
derivation function (whose test vectors are checked elsewhere).
"""

from __future__ import annotations

import gc
import logging
import random
import socket
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer

from broker.certificates import write_pair
from broker.cli.demo import DEMO_PUBLISHERS, DEMO_SCHOOL_ID, prepare_demo, serve
from broker.cli.demo_oidc_publisher import demo_logout_registration
from broker.cli.instance import init_instance
from broker.config import Settings, parse_pseudonym_keys
from broker.core.key_schedule import KeySource
from broker.core.model import ClientAuthMethod, Declaration, NamingProfile, Protocol, Service
from broker.core.pseudonym import derive_chain_pseudonym
from broker.demo.publisher_rp import PublisherRpSettings, create_publisher_rp_app
from broker.demo.publisher_sp import (
    PublisherSpSettings,
    create_publisher_sp_app,
    publisher_sp_metadata,
)
from broker.demo.school_idp import DEMO_USERS, DemoUser
from broker.oidc.registration import new_client
from broker.registry import SqlRegistry, migrate
from broker.web.wiring import Broker
from tests.support.client import Browser, Page

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
PAIRWISE_ID = "urn:oasis:names:tc:SAML:attribute:pairwise-id"
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
UNSPECIFIED_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
SSO_COOKIE = "__Host-kb_sso"
SCHOOL_NAMESPACE = f"school:{DEMO_SCHOOL_ID}"


def shows_discovery(page: Page, broker_url: str) -> bool:
    """The broker's discovery page, told by its content: forms that send the login to
    `{broker_url}/discovery` (the school buttons, or the search before any school is listed).
    Not by its URL: a login that arrived by GET gets the page at its own address."""
    return page.status == 200 and any(
        form.action == f"{broker_url}/discovery" and "login" in form.fields for form in page.forms
    )


def bindable(port: int) -> bool:
    """Free on 127.0.0.1 and nobody answering on ::1 (where `localhost` may resolve first)."""
    try:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    try:
        with closing(socket.socket(socket.AF_INET6, socket.SOCK_STREAM)) as probe:
            probe.settimeout(0.2)
            return probe.connect_ex(("::1", port)) != 0
    except OSError:
        return True  # no IPv6 loopback here


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(200):
        base = random.randint(20000, 60000 - count)
        if all(bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def serve_app(base_url: str, app: Flask) -> BaseWSGIServer:
    return serve({base_url: app})[0]


@contextmanager
def served(base_url: str, app: Flask) -> Iterator[str]:
    """`app` served at `base_url` while the block runs."""
    server = serve_app(base_url, app)
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()


def publisher_settings(
    base_url: str,
    keys: Path,
    service_id: str,
    idp_metadata: str,
    slo: str = "answer",
    encryption_methods: tuple[str, ...] | None = None,
) -> PublisherSpSettings:
    """A further demo publisher SP at `base_url` (its key pair written under `keys`), trusting
    the broker's IdP metadata; its cookie works cross-site, as the broker is on another site.
    `slo`: how it takes a logout (broker/demo/publisher_slo.py). `encryption_methods`: with a
    second key pair, published for encryption with these EncryptionMethods (None: no key)."""
    encryption: dict[str, Any] = {}
    if encryption_methods is not None:
        encryption = {
            "encryption_key_file": keys / f"{service_id}-encryption.key",
            "encryption_cert_file": keys / f"{service_id}-encryption.crt",
            "encryption_methods": encryption_methods,
        }
        write_pair(encryption["encryption_key_file"], encryption["encryption_cert_file"], "enc")
    settings = PublisherSpSettings(
        base_url=base_url,
        entity_id=f"{base_url}/metadata",
        name=f"{service_id} (test publisher)",
        key_file=keys / f"{service_id}.key",
        cert_file=keys / f"{service_id}.crt",
        idp_metadata=(idp_metadata,),
        cross_site_cookie=True,
        slo=slo,
        **encryption,
    )
    write_pair(settings.key_file, settings.cert_file, service_id)
    return settings


@dataclass(frozen=True)
class Publisher:
    id: str
    base_url: str
    chain: str | None

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"

    @property
    def acs_url(self) -> str:
        return f"{self.base_url}/acs"

    @property
    def answer_url(self) -> str:
        """Where the broker's auto-post page sends the answer."""
        return self.acs_url


@dataclass(frozen=True)
class OidcPublisher(Publisher):
    secret: str | None = None

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def answer_url(self) -> str:
        return self.redirect_uri


@dataclass(frozen=True)
class Login:
    """A finished login: the last page and every URL the browser requested on the way."""

    final: Page
    visited: list[str]

    def went_to(self, prefix: str) -> bool:
        return any(url.startswith(prefix) for url in self.visited)


def _instance_on(
    directory: Path,
    port: int,
    registry_url: str | None,
    store_url: str | None,
    accept_encrypted_assertions: bool = False,
) -> None:
    config = init_instance(directory, f"http://127.0.0.1:{port}", "demo.ketenbroker.example", "T")
    text = config.read_text(encoding="utf-8")
    if registry_url:
        text = text.replace('url = "sqlite:///registry.sqlite3"', f'url = "{registry_url}"')
    if store_url:
        text = text.replace('url = "memory://"', f'url = "{store_url}"')
    if accept_encrypted_assertions:
        text = text.replace("[saml]\n", "[saml]\naccept_encrypted_assertions = true\n", 1)
    config.write_text(text, encoding="utf-8")
    if registry_url:
        migrate(registry_url)


class LiveDemo:
    """`ketenbroker demo` in `directory` on seven consecutive free ports (plus extra publishers):
    the broker, the SAML school, three publishers, the OIDC school, the OIDC publisher
    (broker/cli/demo.py)."""

    def __init__(
        self,
        directory: Path,
        *,
        users: tuple[DemoUser, ...] = DEMO_USERS,
        registry_url: str | None = None,
        store_url: str | None = None,
        signing_keys: Callable[[Settings], KeySource] | None = None,
        accept_encrypted_assertions: bool = False,
    ) -> None:
        """`registry_url` / `store_url`: run on PostgreSQL / Redis instead of the embedded
        SQLite and memory store; `signing_keys`: the broker's signing key set (on a test's clock);
        `accept_encrypted_assertions`: that `[saml]` setting on."""
        self.directory = directory
        self.port = free_ports(7)
        if registry_url or store_url or accept_encrypted_assertions:
            _instance_on(directory, self.port, registry_url, store_url, accept_encrypted_assertions)
        self.settings: Settings
        self.settings, apps = prepare_demo(directory, self.port, users, signing_keys)
        self.servers = serve(apps)
        self.apps = apps  # by base URL: tests look into a demo peer's state (school_op.py)
        self.broker_url = self.settings.base_url
        self.broker: Broker = apps[self.broker_url].extensions["ketenbroker"]
        self.school_url = f"http://localhost:{self.port + 1}"
        self.school_entity_id = f"{self.school_url}/metadata"
        self.publishers = {
            p.id: Publisher(p.id, f"http://localhost:{self.port + 2 + i}", p.chain)
            for i, p in enumerate(DEMO_PUBLISHERS)
        }
        keys = parse_pseudonym_keys(
            (directory / "keys" / "pseudonym-keys.toml").read_text(encoding="utf-8")
        )
        self.pseudonym_key = keys.current

    # -- what the peers should see -------------------------------------------------------------
    @property
    def registry(self) -> SqlRegistry:
        return self.broker.registry

    @property
    def idp_entity_id(self) -> str:
        return f"{self.broker_url}/saml/idp/metadata"

    @property
    def sp_entity_id(self) -> str:
        return f"{self.broker_url}/saml/sp/metadata"

    @property
    def acs_url(self) -> str:
        return f"{self.broker_url}/saml/sp/acs"

    def school_subject(self, uid: str) -> str:
        """The persistent NameID the demo school issues: a UUIDv5 of its entity id and the uid."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.school_entity_id}#user={uid}"))

    def expected_pseudonym(self, uid: str, chain: str) -> str:
        return derive_chain_pseudonym(
            self.pseudonym_key, chain, SCHOOL_NAMESPACE, self.school_subject(uid)
        )

    # -- extra publishers ------------------------------------------------------------------
    def add_publisher(
        self,
        service_id: str,
        chain: str | None,
        declarations: tuple[Declaration, ...],
        *,
        naming: NamingProfile = NamingProfile.OID,
        released: frozenset[str] = frozenset(),
        slo: str = "answer",
        encryption_methods: tuple[str, ...] | None = None,
        edit_metadata: Callable[[str], str] | None = None,
    ) -> Publisher:
        """A further pysaml2 publisher SP on its own port, registered in the running broker.
        `slo`: how it takes a logout (broker/demo/publisher_slo.py); `encryption_methods`: it
        publishes an encryption key, with these EncryptionMethods (None: no key);
        `edit_metadata`: a change to its metadata as registered (put in the registry directly,
        as a federation's copy would be, past the registration checks)."""
        base_url = f"http://localhost:{free_ports(1)}"
        settings = publisher_settings(
            base_url,
            self.directory / "peers",
            service_id,
            self.broker.saml_entities.idp_metadata(),
            slo,
            encryption_methods,
        )
        metadata = publisher_sp_metadata(settings)
        self.registry.add_service(
            Service(
                service_id,
                settings.name,
                settings.entity_id,
                chain,
                naming=naming,
                declarations=declarations,
            ),
            edit_metadata(metadata) if edit_metadata else metadata,
        )
        if released:
            self.registry.set_policy(DEMO_SCHOOL_ID, service_id, released, "test")
        self.servers.append(serve_app(base_url, create_publisher_sp_app(settings)))
        publisher = Publisher(service_id, base_url, chain)
        self.publishers[service_id] = publisher
        return publisher

    def add_oidc_publisher(
        self,
        service_id: str,
        chain: str | None,
        declarations: tuple[Declaration, ...] = (),
        *,
        released: frozenset[str] = frozenset(),
        auth_method: ClientAuthMethod = ClientAuthMethod.SECRET_BASIC,
        scope: str = "openid profile email school",
        provider_cache_seconds: int = 0,
        refresh_keys_on_unknown_kid: bool = True,
        logout: bool = False,
        response_mode: str = "query",
        **registration: Any,
    ) -> OidcPublisher:
        """A further OIDC publisher (the demo's authlib relying party) on its own port; by
        default it fetches the broker's discovery document and JWKS for every login, with
        `provider_cache_seconds` it keeps them (broker/demo/publisher_rp.py); with `logout`
        registered for end_session and back-channel logout like the demo's Woordwijs."""
        base_url = f"http://localhost:{free_ports(1)}"
        if logout:
            registration.update(demo_logout_registration(base_url))
        client, secret = new_client((f"{base_url}/callback",), auth_method, **registration)
        service = Service(
            service_id,
            f"{service_id} (test OIDC publisher)",
            service_id,
            chain,
            declarations=declarations,
            protocol=Protocol.OIDC,
            oidc=client,
        )
        self.registry.add_service(service, None)
        if released:
            self.registry.set_policy(DEMO_SCHOOL_ID, service_id, released, "test")
        settings = PublisherRpSettings(
            base_url,
            service.name,
            self.broker_url,
            service_id,
            secret or "",
            scope,
            provider_cache_seconds,
            refresh_keys_on_unknown_kid,
            response_mode,
        )
        self.servers.append(serve_app(base_url, create_publisher_rp_app(settings)))
        publisher = OidcPublisher(service_id, base_url, chain, secret)
        self.publishers[service_id] = publisher
        return publisher

    def close(self) -> None:
        # In parallel: each shutdown waits for its server's poll interval (half a second).
        stopping = [threading.Thread(target=server.shutdown) for server in self.servers]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        for server in self.servers:
            server.server_close()
        self.registry.close()

    # -- a student's login -----------------------------------------------------------------
    def login(
        self, browser: Browser, publisher: str, uid: str, query: str = "", *, deliver: bool = True
    ) -> Login:
        """Log in at `publisher` as demo user `uid`: discovery (if shown), the school's pick
        page (if shown), and the broker's answer carried to the publisher when `deliver`."""
        start = len(browser.history)
        page = browser.get(f"{self.publishers[publisher].base_url}/login{query}")
        if self.shows_discovery(page):
            page = self.choose_school(browser, page)
        if page.url.startswith(f"{self.school_url}/sso"):
            page = self.pick(browser, page, uid)
        if deliver and page.status == 200 and self.answers_publisher(page):
            page = browser.submit(page, self.publishers[publisher].answer_url)
        return Login(page, browser.history[start:])

    def shows_discovery(self, page: Page) -> bool:
        return shows_discovery(page, self.broker_url)

    def choose_school(self, browser: Browser, discovery: Page) -> Page:
        assert discovery.status == 200, discovery.text
        form = next(
            f
            for f in discovery.forms
            if f.method == "post" and ("school", DEMO_SCHOOL_ID) in f.buttons
        )
        return browser.post(form.action, {**form.fields, "school": DEMO_SCHOOL_ID})

    def pick(self, browser: Browser, picker: Page, uid: str) -> Page:
        """Pick `uid` at the school and carry the school's response to the broker's ACS."""
        assert picker.status == 200, picker.text
        assert ("uid", uid) in picker.form(f"{self.school_url}/sso/pick").buttons
        school_answer = browser.submit(picker, f"{self.school_url}/sso/pick", {"uid": uid})
        assert school_answer.status == 200, school_answer.text
        return browser.submit(school_answer, self.acs_url)

    def school_response(self, browser: Browser, publisher: str, uid: str) -> dict[str, str]:
        """Start a login (school named in the request) and return the school's signed answer
        (SAMLResponse and RelayState) without delivering it to the broker."""
        picker = browser.get(
            f"{self.publishers[publisher].base_url}/login?school={self.school_entity_id}"
        )
        assert picker.url.startswith(f"{self.school_url}/sso"), picker.url
        answer = browser.submit(picker, f"{self.school_url}/sso/pick", {"uid": uid})
        return answer.form(self.acs_url).fields

    def answers_publisher(self, page: Page) -> bool:
        """The page carries a SAMLResponse to one of the publishers' ACS URLs, or an OIDC
        answer (response_mode=form_post) to one's redirect URI."""
        targets = {p.answer_url for p in self.publishers.values()}
        answers = ("SAMLResponse", "code", "error")
        return any(f.action in targets and set(answers) & set(f.fields) for f in page.forms)

    def received(self, browser: Browser, publisher: str) -> dict[str, Any]:
        page = browser.get(f"{self.publishers[publisher].base_url}/received.json")
        assert page.status == 200, page.text
        value: dict[str, Any] = page.response.json()
        return value


@pytest.fixture
def collect_pysaml2_temp_files() -> Iterator[None]:
    """For a module that imports it and names it in `usefixtures`: after each test, collect the
    temporary files pysaml2 leaves to the garbage collector (sigver.make_temp), whose
    ResourceWarnings would otherwise surface in a later test, where `filterwarnings = error`
    turns them into failures."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@contextmanager
def running_demo(
    directory: Path, *, accept_encrypted_assertions: bool = False
) -> Iterator[LiveDemo]:
    """The demo, started; shut down (servers and registry connections) afterwards."""
    # One access-log line per request would drown a failing test's output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("broker.dev_server").setLevel(logging.WARNING)
    live = LiveDemo(directory, accept_encrypted_assertions=accept_encrypted_assertions)
    try:
        yield live
    finally:
        live.close()


def attributes_by_name(received: dict[str, Any]) -> dict[str, dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for attribute in received["attributes"]:
        assert attribute["name"] not in by_name, f"{attribute['name']} sent twice"
        by_name[attribute["name"]] = attribute
    return by_name
