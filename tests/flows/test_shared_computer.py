"""A shared school laptop: what one student leaves behind must not serve the next one.

At 08:30 a class signs in on the school's laptops, one student after another on the same
machine. A student who leaves closes the browser (what the broker's own logout page advises
when a platform did not confirm) or presses "log out everywhere"; the next student must then
meet their school's sign-in, never the previous student's SSO session or data page.
"""

from __future__ import annotations

from broker.web.browser import SSO_COOKIE
from tests.flows.test_receipts_and_notice import UID, my_data
from tests.support.client import Browser
from tests.support.live import LiveDemo
from tests.support.logout import finish_logout


def _goes_to_school(demo: LiveDemo, browser: Browser, url: str) -> bool:
    """The broker asks who the student is (its school choice, or the school's sign-in), instead
    of answering from a session it still holds."""
    page = browser.get(url, stop=lambda address: address.startswith(demo.school_url))
    return demo.shows_discovery(page) or (page.location or page.url).startswith(demo.school_url)


def test_closing_the_browser_ends_the_students_sso_session(demo: LiveDemo) -> None:
    laptop = Browser()
    login = demo.login(laptop, "leesplank", UID)
    assert demo.answers_publisher(login.final) or login.final.status == 200
    assert SSO_COOKIE in laptop.cookies(demo.broker_url)
    laptop.restart()  # the student closes the browser; the next one opens it
    # Neither a platform nor the data page answers as the previous student.
    assert _goes_to_school(demo, laptop, f"{demo.publishers['rekenroute'].base_url}/login")
    assert _goes_to_school(demo, laptop, f"{demo.broker_url}/my-data/sign-in")


def test_a_data_page_opened_from_the_sso_session_ends_with_log_out_everywhere(
    demo: LiveDemo,
) -> None:
    laptop = Browser()
    demo.login(laptop, "leesplank", UID)
    page = my_data(demo, laptop, UID)  # answered by the SSO session
    assert "Signed in through" in page.text
    started = laptop.submit(page, f"{demo.broker_url}/logout")
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    finish_logout(laptop, started)
    # The next student at the laptop finds the previous one's data page in the history.
    again = laptop.get(page.url)
    assert again.status == 400, again.text[:300]
    assert "This page has expired" in again.text
    assert "Signed in through" not in again.text


def test_a_data_page_of_a_fresh_school_login_ends_when_the_browser_closes(
    demo: LiveDemo,
) -> None:
    laptop = Browser()
    page = my_data(demo, laptop, UID)  # no SSO session: the school's sign-in answers it
    assert SSO_COOKIE not in laptop.cookies(demo.broker_url)
    laptop.restart()
    again = laptop.get(page.url)
    assert again.status == 400 and "This page has expired" in again.text
