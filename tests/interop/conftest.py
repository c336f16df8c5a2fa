"""Live interoperability tests: the broker against the SAML and OpenID Connect products
publishers and schools run (Debian's packages), driven in headless Chromium.

Every test here is marked `browser`. Where Chromium or a product is not installed the tests are
skipped, except on CI (`CI` set), where that stops the run: scripts/services.sh installs them
there, and a skip would pass unseen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import CHROMIUM, TIMEOUT_MS, headless_chromium
from tests.support import mod_auth_openidc, shibboleth_sp, simplesamlphp_idp

_HERE = Path(__file__).resolve().parent
# Each product's test file (by a word of its name): what it lacks here, its Debian packages.
PRODUCTS = {
    "shibboleth": (shibboleth_sp.missing, shibboleth_sp.DEBIAN_PACKAGES),
    "simplesamlphp": (simplesamlphp_idp.missing, simplesamlphp_idp.DEBIAN_PACKAGES),
    "mod_auth_openidc": (mod_auth_openidc.missing, mod_auth_openidc.DEBIAN_PACKAGES),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _HERE in item.path.resolve().parents]
    chromium = [] if CHROMIUM.exists() else [str(CHROMIUM)]
    for item in ours:
        item.add_marker(pytest.mark.browser)
        absent, packages = list(chromium), "chromium"
        for word, (missing, debian) in PRODUCTS.items():
            if word in item.path.name:
                absent += missing()
                packages = f"{debian} {packages}"
        if not absent:
            continue
        if os.environ.get("CI"):
            raise pytest.UsageError(
                f"{', '.join(absent)} missing on CI; scripts/services.sh installs them"
            )
        reason = f"{', '.join(absent)} not installed (Debian: {packages})"
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser: the products' test certificates are not ones Chromium knows."""
    context = browser.new_context(locale="nl-NL", ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
