""" "Try again" on the "too many attempts" page of a school choice reaches the school (headless
Chromium, the demo on two sites).

The page's "Try again" posts the same school choice to /discovery once more, and the broker
answers with a redirect to the school's sign-in page. Chromium holds such a redirect to the
page's CSP form-action, so only a real browser shows that the page lets the student through
(form_pages.form_page names the school's origin there).

The discovery POST is refused as the rate limiter refuses it (its RateLimited, answered by the
app's own handler) while the test says so: a real limit would refuse the retry as well until
its window ends, a minute on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from broker.web.rate_limits import RateLimited
from tests.browser.conftest import Demo, demo_on_free_ports
from tests.browser.test_demo_login import (
    choose_school_by_search,
    expect_received,
    pick_person,
    start_login,
)
from tests.browser.test_unsigned_refusal import csp_violations_of, try_again_reaches_the_school


@dataclass
class Limit:
    """While `spent`, the school choice is refused with 429 (Retry-After: a second)."""

    spent: bool = False

    def around(self, view: Callable[..., Any]) -> Callable[..., Any]:
        def limited(*args: Any, **kwargs: Any) -> Any:
            if self.spent:
                raise RateLimited(1)
            return view(*args, **kwargs)

        return limited


LIMIT = Limit()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    def limit_the_choice(app: Flask) -> None:
        app.view_functions["discovery.chosen"] = LIMIT.around(
            app.view_functions["discovery.chosen"]
        )

    with demo_on_free_ports(tmp_path_factory, limit_the_choice) as running:
        yield running


def test_try_again_on_too_many_attempts_takes_the_student_to_the_school(
    demo: Demo, page: Page
) -> None:
    csp_violations = csp_violations_of(page)
    start_login(page, demo.leesplank)
    LIMIT.spent = True
    try:
        with page.expect_response(demo.broker + "/discovery") as refused:
            choose_school_by_search(page, demo)
        assert refused.value.status == 429
        expect(page.get_by_role("heading", level=1)).to_have_text("Te veel pogingen")
    finally:
        LIMIT.spent = False

    # The wait is over: "Try again" posts the choice again, and its redirect to the school's
    # sign-in page passes the page's form-action.
    try_again_reaches_the_school(page, demo, csp_violations)

    # The same login goes on: the school signs the student in, and Leesplank gets it.
    pick_person(page, demo)
    received = expect_received(page, demo.leesplank)
    assert received["name_id"]["value"]
    assert csp_violations == []
