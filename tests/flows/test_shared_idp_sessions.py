"""SSO sessions opened before a school's IdP became a board's, end to end against the live demo.

While the demo school (99XX00) is alone on its IdP, its logins need not name it: a student signs
in there with an answer that names another school's BRIN, or none. Then the board's second
school (99XX01) is registered on the same IdP. From then on that session may not answer a new
request: the login goes to the school again, and that login is checked. A session whose login
named 99XX00 (the demo IdP names it for its students) keeps answering.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import School
from tests.flows.test_shared_school_idp import BOARD_SCHOOL, _choose, school_answer
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, running_demo


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[LiveDemo]:
    with running_demo(tmp_path) as live:
        yield live


def _signed_in_with(demo: LiveDemo, attributes: dict[str, list[str]]) -> Browser:
    """A browser with an SSO session at the demo school, opened by an answer of its IdP that
    carries `attributes` (delivered to the publisher)."""
    browser = Browser()
    discovery = browser.get(f"{demo.publishers['leesplank'].base_url}/login")
    location = _choose(demo, browser, discovery, DEMO_SCHOOL_ID)
    page = browser.post(demo.acs_url, school_answer(demo, location, attributes))
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
    browser.submit(page, demo.publishers["leesplank"].acs_url)
    return browser


def _next_login(demo: LiveDemo, browser: Browser) -> Page:
    """A new login at another service in the same browser, stopped where it leaves the broker
    for the school (if it does)."""
    return browser.get(
        f"{demo.publishers['rekenroute'].base_url}/login",
        stop=lambda url: url.startswith(demo.school_url),
    )


def test_a_session_opened_before_the_idp_was_shared_answers_only_if_it_named_the_school(
    demo: LiveDemo,
) -> None:
    named_other = _signed_in_with(demo, {"nlEduPersonHomeOrganizationId": [BOARD_SCHOOL]})
    named_none = _signed_in_with(demo, {"givenName": ["Sanne"]})
    named_own = _signed_in_with(demo, {"nlEduPersonHomeOrganizationId": [DEMO_SCHOOL_ID]})
    # Unshared: the session answers whatever its login named.
    for browser in (named_other, named_none):
        page = _next_login(demo, browser)
        assert demo.answers_publisher(page), page.url

    metadata = demo.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    demo.registry.add_school(
        School(BOARD_SCHOOL, "Demo Lyceum Zuid", demo.school_entity_id), metadata
    )

    for browser in (named_other, named_none):
        page = _next_login(demo, browser)
        # To the school again (a fresh, checked login), not an answer from the session.
        assert not demo.answers_publisher(page)
        assert page.location is not None and page.location.startswith(f"{demo.school_url}/sso")
    answered = _next_login(demo, named_own)
    assert demo.answers_publisher(answered), answered.url
