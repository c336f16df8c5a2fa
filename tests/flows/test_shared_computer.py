"""A shared school laptop: what one student leaves behind must not serve the next one.

At 08:30 a class signs in on the school's laptops, one student after another on the same
machine. A student who leaves closes the browser (what the broker's own logout page advises
when a platform did not confirm) or presses "log out everywhere"; the next student must then
meet their school's sign-in, never the previous student's SSO session or data page. A student
who does neither can still close their data page ("Close my data"), and the next student's data
page ends the previous one's; a notice the previous student's session answers says "Not you?
Then log out first." with the button.
"""

from __future__ import annotations

from broker.login.sealed import store_key
from broker.web.browser import SSO_COOKIE
from broker.web.my_data import VIEW
from tests.flows.test_receipts_and_notice import OTHER, UID, my_data, notice_form
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


def test_closing_the_data_page_of_a_fresh_school_login_ends_it_for_the_history(
    demo: LiveDemo,
) -> None:
    laptop = Browser()
    page = my_data(demo, laptop, UID)  # no SSO session: no logout button, yet a way to close
    assert SSO_COOKIE not in laptop.cookies(demo.broker_url)
    closed = laptop.submit(page, f"{demo.broker_url}/my-data/close")
    assert closed.status == 200 and closed.url == f"{demo.broker_url}/my-data/closed"
    assert "Your data is closed." in closed.text
    assert "data-logout-everywhere" not in closed.text  # no session to end
    # The next student at the laptop opens the previous one's address from the history.
    again = laptop.get(page.url)
    assert again.status == 400 and "This page has expired" in again.text
    assert "Signed in through" not in again.text
    # And the view is gone from the store too, not only from this browser.
    view_id = page.url.rsplit("/", 1)[1]
    assert demo.broker.flow.store.get(store_key(VIEW, view_id)) is None


def test_closing_a_data_page_of_the_sso_session_offers_to_log_out_too(demo: LiveDemo) -> None:
    laptop = Browser()
    demo.login(laptop, "leesplank", UID)
    page = my_data(demo, laptop, UID)  # answered by the SSO session
    closed = laptop.submit(page, f"{demo.broker_url}/my-data/close")
    assert "Your data is closed." in closed.text
    assert "data-logout-everywhere" in closed.text  # the session stands: end it too
    assert laptop.get(page.url).status == 400


def test_the_next_students_data_page_ends_the_previous_ones(demo: LiveDemo) -> None:
    laptop = Browser()
    first = my_data(demo, laptop, UID)  # a fresh school login; left open, not closed
    second = my_data(demo, laptop, OTHER)  # the next student, the same browser
    assert "Signed in through" in laptop.get(second.url).text
    # The previous student's address from the history opens nothing any more.
    again = laptop.get(first.url)
    assert again.status == 400 and "This page has expired" in again.text


def test_a_notice_the_sso_session_answers_offers_to_log_out_first(demo: LiveDemo) -> None:
    # Student A signs in at one platform (the school's sign-in: no "not you?" there) and
    # leaves the browser open; student B opens another platform of the chain.
    laptop = Browser(read_notices=False)
    first = demo.login(laptop, "leesplank", UID, deliver=False)
    assert notice_form(first.final) is not None
    assert "Not you?" not in first.final.text
    laptop.submit(first.final, f"{demo.broker_url}/notice/")
    second = demo.login(laptop, "rekenroute", UID, deliver=False)
    assert not second.went_to(demo.school_url)  # answered from A's SSO session
    assert notice_form(second.final) is not None, second.final.text[:500]
    assert "Not you? Then log out first." in second.final.text
    # Nothing of A's on it but what the notice always shows: no name, no other value.
    for value in ("Fatima", "El Amrani", UID):
        assert value not in second.final.text
    # B logs out first: A's session ends, and A's notice can no longer be continued.
    started = laptop.submit(second.final, f"{demo.broker_url}/logout")
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    finish_logout(laptop, started)
    assert SSO_COOKIE not in laptop.cookies(demo.broker_url)
    form = notice_form(second.final)
    assert form is not None
    refused = laptop.post(form.pop("action"), form)
    assert refused.status == 400 and not demo.answers_publisher(refused)
