"""The discovery page of a federation with more schools than a page can list
(broker/core/school_search.py): it asks for part of the name, shows at most SHOWN_AT_MOST
matches, and its Content-Security-Policy names only the shown schools' sign-in origins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import OidcUpstream, School
from broker.core.school_search import LIST_ALL_UP_TO, SHOWN_AT_MOST
from broker.web.browser import SCHOOL_COOKIE
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, running_demo

EXTRA = LIST_ALL_UP_TO + 100


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    """The demo plus EXTRA OpenID Connect schools, each on a sign-in host of its own."""
    directory: Path = tmp_path_factory.mktemp("crowded")
    with running_demo(directory) as live:
        for n in range(EXTRA):
            issuer = f"https://login.school{n}.example"
            live.registry.add_school(
                School(
                    f"X{n:05d}",
                    f"Openbare Basisschool De Linde {n}",
                    issuer,
                    subject_attribute="sub",
                    oidc=OidcUpstream(issuer, f"client-{n}", "secret"),
                ),
                "",
            )
        yield live


def discovery(live: LiveDemo, browser: Browser) -> Page:
    page = browser.get(f"{live.publishers['leesplank'].base_url}/login")
    assert live.shows_discovery(page), page.url
    return page


def school_buttons(page: Page) -> list[str]:
    return [value for form in page.forms for name, value in form.buttons if name == "school"]


def search(live: LiveDemo, browser: Browser, page: Page, query: str) -> Page:
    login = next(form.fields["login"] for form in page.forms if "login" in form.fields)
    return browser.get(f"{live.broker_url}/discovery?{urlencode({'login': login, 'q': query})}")


def form_action(page: Page) -> str:
    policy = page.response.headers["Content-Security-Policy"]
    return next(d for d in policy.split(";") if d.strip().startswith("form-action"))


def test_without_a_search_no_school_is_listed_and_the_policy_stays_short(
    crowded: LiveDemo,
) -> None:
    page = discovery(crowded, Browser())
    assert page.status == 200
    assert school_buttons(page) == []
    assert 'name="q"' in page.text
    assert "school0.example" not in form_action(page)
    assert len(page.text) < 20_000


def test_a_broad_search_shows_at_most_the_limit_and_says_how_many_matched(
    crowded: LiveDemo,
) -> None:
    browser = Browser()
    page = search(crowded, browser, discovery(crowded, browser), "linde")
    buttons = school_buttons(page)
    assert len(buttons) == SHOWN_AT_MOST
    assert f"{SHOWN_AT_MOST} of {EXTRA} schools shown" in page.text
    assert "data-partial" in page.text
    # Only the shown schools' sign-in origins: one per shown school, not one per school.
    assert form_action(page).count("https://login.school") == SHOWN_AT_MOST


def test_a_student_finds_the_school_by_part_of_its_name_and_logs_in(crowded: LiveDemo) -> None:
    browser = Browser()
    page = search(crowded, browser, discovery(crowded, browser), "demo lyc")
    assert school_buttons(page) == [DEMO_SCHOOL_ID]
    answer = crowded.pick(browser, crowded.choose_school(browser, page), "sanne.jansen")
    assert crowded.answers_publisher(answer)


def test_the_remembered_school_is_offered_without_a_search(crowded: LiveDemo) -> None:
    browser = Browser()
    page = search(crowded, browser, discovery(crowded, browser), "demo lyceum")
    crowded.pick(browser, crowded.choose_school(browser, page), "sanne.jansen")
    returning = browser_with_school(browser)
    again = discovery(crowded, returning)
    # In the response to the service's request: a link straight to the school, whose request
    # came with the page (test_remembered_link.py); the list is empty until a search.
    assert school_buttons(again) == []
    assert f'href="{crowded.school_url}/sso?SAMLRequest=' in again.text
    # Shown again (a search that finds nothing), it is the POST button, as before.
    shown = search(crowded, returning, again, "zzzz")
    assert school_buttons(shown) == [DEMO_SCHOOL_ID]


def browser_with_school(used: Browser) -> Browser:
    """A fresh browser (no SSO session) that kept only the remembered-school cookie."""
    fresh = Browser()
    for host, cookies in used.jar.items():
        kept = {k: v for k, v in cookies.items() if k == SCHOOL_COOKIE}
        if kept:
            fresh.jar[host] = kept
    return fresh
