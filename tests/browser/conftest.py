"""Browser tests: the whole demo (broker, school IdP, publishers) in headless Chromium.

The broker listens on 127.0.0.1 and the demo peers on localhost, so the school IdP's auto-POST
to the broker ACS is cross-site, as in production (pitfalls.md, cookies). Plain HTTP clients do
not apply SameSite rules; only a real browser shows that the login state survives that POST.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from werkzeug.serving import BaseWSGIServer

from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo, serve
from broker.core.model import ClientAuthMethod, Declaration, Protocol, Service
from broker.oidc.registration import new_client

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Every wait in these tests is for a local server; a hang should fail fast, not after 30 s.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
_DEMO_APPS = 7  # broker, school IdP, three publishers, OIDC school, OIDC publisher
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder drives Chromium: marked `browser`, and skipped on a machine
    without Debian's Chromium. On CI a missing Chromium stops the run instead: the browser
    tests must run there, and a skip would pass unseen."""
    ours = [item for item in items if _HERE in item.path.resolve().parents]
    for item in ours:
        item.add_marker(pytest.mark.browser)
    if not ours or CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"{CHROMIUM} is missing on CI; the browser tests must run there")
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not installed (Debian package 'chromium')")
    for item in ours:
        item.add_marker(skip)


def expect_discovery(page: Page, broker: str) -> None:
    """The broker's discovery page, told by its content: the school search sends the login to
    `/discovery`. Not by its URL: a login that arrived by GET (the demo publishers' Redirect
    binding, OIDC authorize) gets the page at the SSO or authorize address itself."""
    expect(page).to_have_url(re.compile("^" + re.escape(broker) + "/"))
    expect(page.locator("form.search[action='/discovery'] input[name='login']")).to_have_count(1)
    expect(page.locator("#school-search")).to_be_visible()


@dataclass(frozen=True)
class Demo:
    broker: str
    school: str
    leesplank: str
    rekenroute: str
    toetsplein: str
    oidc_school: str
    oidc_publisher: str


def _free_port_run(count: int) -> int:
    """A first port such that `count` consecutive ports on 127.0.0.1 are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no run of {count} free ports found")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with demo_on_free_ports(tmp_path_factory) as running:
        yield running


@contextmanager
def demo_on_free_ports(
    tmp_path_factory: pytest.TempPathFactory, setup: Callable[[Flask], None] | None = None
) -> Iterator[Demo]:
    """The demo on free ports; `setup` gets the broker's app first (to register more)."""
    servers: list[BaseWSGIServer] = []
    for attempt in range(3):
        port = _free_port_run(_DEMO_APPS)
        # The instance config names the broker's URL (and so its port): a fresh one per attempt.
        settings, apps = prepare_demo(tmp_path_factory.mktemp(f"demo{attempt}"), port)
        if setup is not None:
            setup(apps[settings.base_url])
        try:
            servers = serve(apps)
        except OSError:  # another process took one of the ports in between
            continue
        break
    else:
        raise RuntimeError("could not start the demo on free ports")
    urls = list(apps)
    assert urls[0] == settings.base_url == f"http://127.0.0.1:{port}"
    demo = Demo(*(url.rstrip("/") for url in urls))
    assert demo.school == f"http://localhost:{port + 1}"
    try:
        yield demo
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def register_oidc_client(
    app: Flask, client_id: str, name: str, redirect_uri: str, method: ClientAuthMethod
) -> str | None:
    """An OIDC platform in the demo's chain `leermiddelen`, to which the demo school releases
    `given_name`; registered in the broker's app before it serves (`demo_on_free_ports`'s
    `setup`). Returns the client secret (None for a public client)."""
    registration, secret = new_client((redirect_uri,), method)
    registry = app.extensions["ketenbroker"].registry
    registry.add_service(
        Service(
            client_id,
            name,
            client_id,
            "leermiddelen",
            declarations=(Declaration("given_name", "To greet the student."),),
            protocol=Protocol.OIDC,
            oidc=registration,
        ),
        None,
    )
    registry.set_policy(DEMO_SCHOOL_ID, client_id, frozenset({"given_name"}), "test")
    return secret


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, closed afterwards (tests/interop uses it too)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Opens fresh contexts (a Dutch-speaking browser unless told otherwise; `options`: more of
    Playwright's context options, a phone's viewport say); closes them after."""
    contexts: list[BrowserContext] = []

    def open_context(locale: str = "nl-NL", **options: Any) -> BrowserContext:
        context = browser.new_context(locale=locale, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


_screenshots_written: list[Path] = []


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    """Saves a full-page screenshot under test-artifacts/screenshots/ (gitignored)."""

    def save(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        _screenshots_written.append(path)
        return path

    return save


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _screenshots_written:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(
            f"{len(_screenshots_written)} screenshot(s) written to {SCREENSHOTS}"
        )
