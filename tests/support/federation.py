"""The demo federation in production shape, for the failure drills: broker processes under
gunicorn on a Redis of the test's own and a fresh PostgreSQL registry, the demo's schools and
publishers in this process, and forwarders in front of the parts a drill breaks.

Ports, from P: P the first broker (its public URL), P+1 the SAML school, P+2..P+4 the SAML
publishers, P+5 a forwarder to the OIDC school (served on a port of its own behind it), P+6 the
OIDC publisher. Further brokers listen on free ports; a `Browser` reaches them through its
`route`, which sends requests for the public URL to the broker the test chose.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from werkzeug.serving import BaseWSGIServer

from broker.cli.demo import (
    DEMO_OIDC_SCHOOL_ID,
    DEMO_SCHOOL_ID,
    OIDC_SCHOOL_PORT_OFFSET,
    prepare_demo,
    serve,
)
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, OIDC_PUBLISHER_PORT_OFFSET
from broker.cli.instance import CONFIG_NAME, init_instance
from broker.config import Settings, parse_pseudonym_keys
from broker.core.pseudonym import derive_chain_pseudonym
from broker.demo.school_op import school_op_subject
from broker.registry import SqlRegistry
from tests.support.client import Browser, Page
from tests.support.live import free_ports
from tests.support.postgres import PostgresServer
from tests.support.processes import (
    GunicornBroker,
    RedisServer,
    TcpForwarder,
    gunicorn_broker,
    tcp_forwarder,
)

SAML_PUBLISHER = "leesplank"
OIDC_PUBLISHER = OIDC_PUBLISHER_ID
CHAIN = "leermiddelen"
SCHOOLS = (DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID)


@dataclass
class Federation:
    directory: Path
    port: int
    settings: Settings
    redis: RedisServer
    registry_url: str
    school_op: TcpForwarder
    brokers: list[GunicornBroker] = field(default_factory=list)
    servers: list[BaseWSGIServer] = field(default_factory=list)
    # Between the brokers and PostgreSQL when the drill asked for it (`registry_link`).
    registry_link: TcpForwarder | None = None
    # Between the brokers and Redis when the drill asked for it (`store_link`).
    store_link: TcpForwarder | None = None

    # -- addresses -----------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.directory / CONFIG_NAME

    @property
    def broker_url(self) -> str:
        return self.settings.base_url

    @property
    def school_url(self) -> str:
        return f"http://localhost:{self.port + 1}"

    @property
    def school_op_url(self) -> str:
        return f"http://localhost:{self.port + OIDC_SCHOOL_PORT_OFFSET}"

    @property
    def acs_url(self) -> str:
        return f"{self.broker_url}/saml/sp/acs"

    def publisher_url(self, publisher: str) -> str:
        if publisher == OIDC_PUBLISHER:
            return f"http://localhost:{self.port + OIDC_PUBLISHER_PORT_OFFSET}"
        assert publisher == SAML_PUBLISHER
        return f"http://localhost:{self.port + 2}"

    def link(self, part: str) -> TcpForwarder:
        """The forwarder in front of `part`: "school" (the OIDC school), "store" or "registry"
        (the latter two only when the federation was made with them)."""
        found = {
            "school": self.school_op,
            "store": self.store_link,
            "registry": self.registry_link,
        }[part]
        assert found is not None, f"this federation has no forwarder in front of the {part}"
        return found

    def registry(self) -> SqlRegistry:
        """A registry connection of the test's own (close it)."""
        return SqlRegistry(self.registry_url, seal=self.settings.secret_seal())

    # -- routing -------------------------------------------------------------------------------
    def browser(self, language: str = "en", *, via: int = 0) -> Browser:
        browser = Browser(language)
        self.route(browser, via)
        return browser

    def route(self, browser: Browser, via: int) -> None:
        """From now on `browser` reaches the broker's public URL at broker process `via`."""
        public, target = self.broker_url, self.brokers[via].url

        def to_broker(url: str) -> str:
            return target + url[len(public) :] if url.startswith(public) else url

        browser.route = to_broker

    # -- what the publishers should receive -----------------------------------------------------
    def expected_pseudonym(self, school: str, uid: str) -> str:
        keys = parse_pseudonym_keys(
            (self.directory / "keys" / "pseudonym-keys.toml").read_text(encoding="utf-8")
        )
        if school == DEMO_SCHOOL_ID:
            subject = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.school_url}/metadata#user={uid}"))
        else:
            subject = school_op_subject(self.school_op_url, uid)
        return derive_chain_pseudonym(keys.current, CHAIN, f"school:{school}", subject)

    def received_subject(self, browser: Browser, publisher: str) -> str:
        page = browser.get(f"{self.publisher_url(publisher)}/received.json")
        assert page.status == 200, page.text[:300]
        data = page.response.json()
        return str(data["sub"] if publisher == OIDC_PUBLISHER else data["name_id"]["value"])

    # -- a student's login ---------------------------------------------------------------------
    def start(self, browser: Browser, publisher: str, school: str) -> Page:
        """From the publisher's login button to the school's sign-in page."""
        if publisher == OIDC_PUBLISHER:
            hint = school
        elif school == DEMO_SCHOOL_ID:
            hint = f"{self.school_url}/metadata"
        else:
            hint = self.school_op_url
        return browser.get(f"{self.publisher_url(publisher)}/login?school={quote(hint)}")

    def school_base(self, school: str) -> str:
        return self.school_url if school == DEMO_SCHOOL_ID else self.school_op_url

    def answer_path(self, school: str) -> tuple[str, str]:
        """Method and path of the request that brings the school's answer to the broker."""
        if school == DEMO_SCHOOL_ID:
            return "POST", "/saml/sp/acs"
        return "GET", f"/oidc/rp/callback/{school}"

    def at_school(self, page: Page, school: str) -> bool:
        return page.status == 200 and page.url.startswith(self.school_base(school))

    def sign_in_at_school(self, browser: Browser, page: Page, school: str, uid: str) -> Page:
        """The student signs in at the school; the answer goes back to the broker."""
        assert self.at_school(page, school), (page.url, page.status, page.text[:300])
        if school == DEMO_SCHOOL_ID:
            answer = browser.submit(page, f"{self.school_url}/sso/pick", {"uid": uid})
            assert answer.status == 200, answer.text[:300]
            return browser.submit(answer, self.acs_url)
        form = next(f for f in page.forms if ("uid", uid) in f.buttons)
        return browser.post(form.action, {"uid": uid})

    def school_answered(self, browser: Browser, publisher: str, school: str, uid: str) -> Page:
        """Start a login and sign in at the school, but stop before the school's answer reaches
        the broker: the page with the SAML form to the ACS, or the redirect to the callback."""
        page = self.start(browser, publisher, school)
        assert self.at_school(page, school), (page.url, page.status, page.text[:300])
        if school == DEMO_SCHOOL_ID:
            answer = browser.submit(page, f"{self.school_url}/sso/pick", {"uid": uid})
            assert answer.status == 200, answer.text[:300]
            return answer
        form = next(f for f in page.forms if ("uid", uid) in f.buttons)
        answer = browser.post(
            form.action, {"uid": uid}, stop=lambda url: url.startswith(self.broker_url)
        )
        assert answer.location and "/oidc/rp/callback/" in answer.location, answer.status
        return answer

    def deliver(self, browser: Browser, page: Page, publisher: str) -> Page:
        """Carry the broker's SAML answer to the publisher (OIDC answers are redirects)."""
        if publisher == SAML_PUBLISHER and page.status == 200 and "SAMLResponse" in page.text:
            return browser.submit(page, f"{self.publisher_url(publisher)}/acs")
        return page

    def login(self, browser: Browser, publisher: str, school: str, uid: str) -> Page:
        page = self.start(browser, publisher, school)
        page = self.sign_in_at_school(browser, page, school, uid)
        return self.deliver(browser, page, publisher)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@contextmanager
def federation(
    directory: Path,
    redis: RedisServer,
    postgres: PostgresServer,
    database: str,
    *,
    brokers: int = 2,
    broker_workers: int = 2,
    broker_threads: int = 1,
    registry_link: bool = False,
    store_link: bool = False,
    school_timeout_seconds: int = 2,
    clock_skew_seconds: int = 180,
) -> Iterator[Federation]:
    """The federation, running; every process and server stopped afterwards.

    `broker_workers`, `broker_threads`: gunicorn's workers per broker process and threads per
    worker (more than one: gthread workers). `registry_link`, `store_link`: the brokers reach
    PostgreSQL, Redis through a forwarder the test controls.
    """
    with ExitStack() as stack:
        port = free_ports(7)
        init_instance(
            directory, f"http://127.0.0.1:{port}", "demo.ketenbroker.example", "Ketenbroker demo"
        )
        link = stack.enter_context(tcp_forwarder(postgres.port)) if registry_link else None
        registry_url = postgres.url(database, port=link.port if link else None)
        store = stack.enter_context(tcp_forwarder(redis.port)) if store_link else None
        store_url = f"redis://127.0.0.1:{store.port}/0" if store else redis.url
        config = directory / CONFIG_NAME
        text = config.read_text(encoding="utf-8")
        for old, new in (
            ('url = "sqlite:///registry.sqlite3"', f'url = "{registry_url}"'),
            ('url = "memory://"', f'url = "{store_url}"'),
            ("http_timeout_seconds = 5", f"http_timeout_seconds = {school_timeout_seconds}"),
            ("clock_skew_seconds = 180", f"clock_skew_seconds = {clock_skew_seconds}"),
        ):
            assert old in text, old
            text = text.replace(old, new)
        config.write_text(text, encoding="utf-8")
        settings, apps = prepare_demo(directory, port)
        # The in-process broker only registered the demo; gunicorn serves the broker.
        apps.pop(settings.base_url).extensions["ketenbroker"].registry.close()
        school_op_app = apps.pop(f"http://localhost:{port + OIDC_SCHOOL_PORT_OFFSET}")
        behind = free_ports(1)
        school_op = stack.enter_context(tcp_forwarder(behind, port + OIDC_SCHOOL_PORT_OFFSET))
        fed = Federation(
            directory,
            port,
            settings,
            redis,
            registry_url,
            school_op,
            registry_link=link,
            store_link=store,
        )
        stack.callback(fed.close)
        fed.servers.extend(serve({**apps, f"http://localhost:{behind}": school_op_app}))
        for index in range(brokers):
            fed.brokers.append(
                stack.enter_context(
                    gunicorn_broker(
                        fed.config,
                        port if index == 0 else None,
                        workers=broker_workers,
                        threads=broker_threads,
                        log=directory / f"gunicorn-{index}.log",
                    )
                )
            )
        yield fed
