"""Live interoperability tests: the broker against the SAML products publishers and schools
run (Debian's packages), driven in headless Chromium.

Every test here is marked `browser`. Where Chromium or a product is not installed the tests are
skipped, except on CI (`CI` set), where that stops the run: scripts/services.sh installs them
there, and a skip would pass unseen.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM
from tests.support import shibboleth_sp

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _HERE in item.path.resolve().parents]
    for item in ours:
        item.add_marker(pytest.mark.browser)
    absent = [] if CHROMIUM.exists() else [str(CHROMIUM)]
    shibboleth = [item for item in ours if "shibboleth" in item.path.name]
    if shibboleth:
        absent += shibboleth_sp.missing()
    if not ours or not absent:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(
            f"{', '.join(absent)} missing on CI; scripts/services.sh installs them"
        )
    skip = pytest.mark.skip(
        reason=f"{', '.join(absent)} not installed (Debian: {shibboleth_sp.DEBIAN_PACKAGES} chromium)"
    )
    for item in ours:
        item.add_marker(skip)
