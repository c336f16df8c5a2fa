"""Every page a student or an administrator sees passes axe-core's WCAG 2.1 A and AA rules.

Dutch schools are public bodies: the pages their students and staff use must meet WCAG 2.1 AA
(EN 301 549). axe-core (pinned in tests/browser/axe/, installed by `scripts/install.sh --test`)
is run on the pages test_phone_width.py opens, with the same data and in the same order (its
walks, given another check): the student's pages from real logins through the demo (discovery
without and with a remembered school, the notice, the answer to the platform waiting for its
"continue" button, my data, the logout pages, the error pages) and the portal's pages of a
school's, a publisher's and the operator's administrator (sign-in, each page, the forms'
refusals, an invitation accepted, the portal's error pages), in English and in Dutch, each at a
phone's 320 px and at a desktop's 1280 px (the same page, its window resized: the phone's
browser as in test_phone_width.py, whose viewport meta follows the window).
`test_refusals_pass_axe` adds the pages a login can end on that those walks do not reach: a
search that finds nothing or only near matches, the school choice refused (429, 503) and the
school's own "no", each with "Try again", and the page "Close my data" lands on.

axe is given the page by `page.evaluate` of axe.min.js's text, which the DevTools protocol runs
outside the page's Content-Security-Policy. Not `page.add_script_tag`: it adds an inline
<script>, which the broker's CSP (no 'unsafe-inline') refuses. Not a context with `bypass_csp`:
that would audit another page than the one served, one where inline styles the CSP blocks would
count (a contrast measured on a colour no browser shows). The audit reads the page as it is.

A run fails on any violation, with every one found (page and width, rule id, impact, what the
rule asks and the elements' selectors). There is no allow-list: a rule that proves a false
positive gets one here, with the reason per rule.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from broker.core.errors import StoreUnavailable
from broker.core.model import School
from broker.saml.entities import ACS_PATH
from broker.web.rate_limits import RateLimited
from tests.browser.test_demo_login import SCHOOL_BUTTON
from tests.browser.test_phone_width import (
    DESKTOP,
    LOGIN_BUTTON,
    PHONE,
    NewContext,
    Screen,
    _wide_registry,
    operator_pages,
    publisher_pages,
    school_pages,
    student_pages,
)
from tests.browser.test_unsigned_refusal import SchoolSaysNo, unsigned_school
from tests.support.live import LiveDemo, running_demo

NOT_SET_UP_ID = "98NK00"

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
AXE_VERSION = json.loads((AXE_DIR / "package.json").read_text())["dependencies"]["axe-core"]
# WCAG 2.0 and 2.1, levels A and AA: what EN 301 549 asks of a web page.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = {f"{PHONE['width']} px": PHONE, "desktop": DESKTOP}

# Only the violations, each with its elements' selectors (a frame's path joined by " >> ").
AUDIT = """async (tags) => {
  const results = await axe.run(document, {
    runOnly: {type: 'tag', values: tags},
    resultTypes: ['violations'],
  });
  return results.violations.map((rule) => ({
    id: rule.id,
    impact: rule.impact,
    help: rule.help,
    targets: rule.nodes.map((node) => node.target.flat().join(' >> ')),
  }));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe.min.js at the pinned version. Missing, the audit is skipped on a developer's machine
    and fails on CI, where `scripts/install.sh --test` must have installed it."""
    if not AXE_JS.exists():
        missing = f"{AXE_JS} is missing: run scripts/install.sh --test (needs npm)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    installed = json.loads((AXE_JS.parent / "package.json").read_text())["version"]
    assert installed == AXE_VERSION, (
        f"axe-core {installed} installed, {AXE_VERSION} pinned: run scripts/install.sh --test"
    )
    return AXE_JS.read_text(encoding="utf-8")


@dataclass
class Audit(Screen):
    """The phone walks' check replaced by axe's, at each of WIDTHS; the violations are kept
    under the page's name (`overflowing`, as the phone's misfits) for one report at the end."""

    axe: str = field(default="", repr=False)

    def check(self, page: Page, name: str) -> None:
        page.wait_for_load_state()
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(self.axe)
        for width, viewport in WIDTHS.items():
            page.set_viewport_size(viewport)
            violations: list[dict[str, Any]] = page.evaluate(AUDIT, WCAG_21_AA)
            if violations:
                said = [
                    f"  {v['id']} ({v['impact']}): {v['help']}\n"
                    + "".join(f"    {target}\n" for target in v["targets"])
                    for v in violations
                ]
                self.overflowing[f"{self.language} {name} at {width} ({page.url})"] = "\n" + (
                    "".join(said).rstrip()
                )
        page.set_viewport_size(PHONE)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("axe-demo")) as demo:
        _wide_registry(demo, tmp_path_factory.mktemp("axe-keys"))
        yield demo


@pytest.fixture(params=["en", "nl"])
def audit(
    live: LiveDemo, new_context: NewContext, axe_source: str, request: pytest.FixtureRequest
) -> Iterator[Audit]:
    """Audits pages in each language; at the end, fails with every violation on every page."""
    audited = Audit(live, new_context, {}, request.param, True, axe=axe_source)
    yield audited
    assert not audited.overflowing, "axe-core found WCAG 2.1 AA violations:\n" + "\n".join(
        f"{page}:{violations}" for page, violations in audited.overflowing.items()
    )


def test_student_pages_pass_axe(audit: Audit) -> None:
    student_pages(audit)


def test_school_pages_pass_axe(audit: Audit) -> None:
    school_pages(audit)


def test_publisher_pages_pass_axe(audit: Audit) -> None:
    publisher_pages(audit)


def test_operator_pages_pass_axe(audit: Audit) -> None:
    operator_pages(audit)


def test_refusals_pass_axe(audit: Audit, tmp_path: Path) -> None:
    """The pages a login can end on that the phone walks do not reach: a search that finds
    nothing and one that finds only near matches, the school choice refused as too many attempts
    (429) and as briefly unavailable (503), the school's own "no", each with "Try again"; a
    school that is not set up, with "Back to <platform>"; and the page "Close my data" lands
    on."""
    live = audit.live
    page = audit.context().new_page()
    page.goto(live.publishers["leesplank"].base_url + "/")
    page.get_by_role("button", name=LOGIN_BUTTON).click()
    for typed, name, shown in (
        ("no such school anywhere", "discovery, nothing found", "#no-schools"),
        ("lycem", "discovery, near matches", "#close-matches"),
    ):
        page.locator("#school-search").fill(typed)
        expect(page.locator(shown)).to_be_visible()
        audit.check(page, name)
    page.locator("#school-search").fill("lyc")
    discovery = page.url
    for refusal, status in ((RateLimited(1), 429), (StoreUnavailable(), 503)):
        with _school_choice_refused(live, refusal):
            with page.expect_response(live.broker_url + "/discovery") as refused:
                page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
        assert refused.value.status == status
        # "Try again" (the first: both language copies show until the style sheet applies)
        expect(page.locator("main form.retry button:visible").first).to_be_visible()
        audit.check(page, f"school choice refused ({status})")
        page.go_back()
        expect(page).to_have_url(discovery)

    school = SchoolSaysNo(
        unsigned_school(live.broker_url, live.school_url, page, tmp_path),
        live.broker_url + ACS_PATH,
    )
    page.route(live.school_url + "/sso/pick", school.handle)
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=SCHOOL_BUTTON, exact=True).click()
    with page.expect_response(live.broker_url + ACS_PATH) as acs:
        page.get_by_role("button", name=re.compile("Sanne Jansen")).click()
    assert acs.value.status == 502
    # Until its style sheet applies, the page shows both language copies (two "Try again"
    # buttons, a strict-mode violation: a race seen on main too): the first, once loaded.
    page.wait_for_url(live.broker_url + ACS_PATH)
    page.wait_for_load_state("load")
    expect(page.locator("main form.retry button:visible").first).to_be_visible()
    audit.check(page, "the school said no")

    # A school that is not set up (no metadata): "Choose your school again", and "Back to".
    if live.registry.school(NOT_SET_UP_ID) is None:
        live.registry.add_school(
            School(NOT_SET_UP_ID, "Nietklaar College", "https://idp.nietklaar.example/md"), ""
        )
    page.goto(live.publishers["leesplank"].base_url + "/")
    page.get_by_role("button", name=LOGIN_BUTTON).click()
    page.locator("#school-search").fill("Nietklaar")
    with page.expect_response(live.broker_url + "/discovery") as failed:
        page.get_by_role("button", name=re.compile("Nietklaar College")).click()
    assert failed.value.status == 502
    page.wait_for_url(live.broker_url + "/discovery")
    page.wait_for_load_state("load")  # its language copies, as above
    expect(page.locator("main form.return button:visible").first).to_be_visible()
    audit.check(page, "a school not set up")

    page.goto(live.broker_url + "/my-data/closed")
    audit.check(page, "my data, closed")


@contextmanager
def _school_choice_refused(live: LiveDemo, refusal: Exception) -> Iterator[None]:
    """While inside, the school choice (POST /discovery) is refused with `refusal`, as the rate
    limiter or an unreachable store refuse it (test_try_again.py's way)."""
    views = live.apps[live.broker_url].view_functions
    chosen = views["discovery.chosen"]

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise refusal

    views["discovery.chosen"] = refused
    try:
        yield
    finally:
        views["discovery.chosen"] = chosen
