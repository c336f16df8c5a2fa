"""A shared school laptop: what one student leaves behind must not serve the next one.

At 08:30 a class signs in on the school's laptops, one student after another on the same
machine. A student who leaves closes the browser (what the broker's own logout page advises
when a platform did not confirm) or presses "log out everywhere"; the next student must then
meet their school's sign-in, never the previous student's SSO session or data page. A student
who does neither can still close their data page ("Close my data"), and the next student's data
page ends the previous one's. A data page an SSO session opened closes and logs out in one
button ("Close and log out"); a notice the previous student's session answers says "Not you?
Then log out first." with the button.
"""

from __future__ import annotations

import pytest

from broker.login.sealed import store_key
from broker.web.browser import SSO_COOKIE
from broker.web.my_data import VIEW
from tests.flows.test_receipts_and_notice import OTHER, UID, my_data, notice_form
from tests.support.client import Browser, Page
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
    assert "You signed in through" in page.text
    started = laptop.post(f"{demo.broker_url}/logout", _logout_fields(page))
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    finish_logout(laptop, started)
    # The next student at the laptop finds the previous one's data page in the history.
    again = laptop.get(page.url)
    assert again.status == 400, again.text[:300]
    assert "This page has expired" in again.text
    assert "You signed in through" not in again.text


def test_close_and_log_out_leaves_nothing_to_open_without_the_school(demo: LiveDemo) -> None:
    """The data page an SSO session opened: its main button closes the data and logs out
    everywhere, so the closed page's "Sign in" (the next student at the laptop) meets the
    school's sign-in, not this student's data at once; the page's claims hold."""
    laptop = Browser()
    demo.login(laptop, "leesplank", UID)
    page = my_data(demo, laptop, UID)  # answered by the SSO session
    assert ">Close and log out</button>" in page.text
    assert "data-logout-everywhere" not in page.text  # one main action, not two buttons
    started = laptop.submit(page, f"{demo.broker_url}/my-data/close")
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    done = finish_logout(laptop, started).page
    assert "<h1>You are logged out</h1>" in done.text and "Ketenbroker." not in done.text
    assert SSO_COOKIE not in laptop.cookies(demo.broker_url)
    # The closed page's main button, "Sign in with your school account": the school asks.
    closed = laptop.get(f"{demo.broker_url}/my-data/closed")
    assert "Your data page is closed. Nobody can open it again" in closed.text
    assert _goes_to_school(demo, laptop, f"{demo.broker_url}/my-data/sign-in")
    # The back button: calm words, no data, nothing cached.
    again = laptop.get(page.url)
    assert "This data is closed. Want to see it again? Sign in again." in again.text
    assert "You signed in through" not in again.text and "Error code" not in again.text
    assert again.response.headers["Cache-Control"] == "no-store"
    view_id = page.url.rsplit("/", 1)[1]
    assert demo.broker.flow.store.get(store_key(VIEW, view_id)) is None


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
    assert ">Close my data</button>" in page.text and "Close and log out" not in page.text
    closed = laptop.submit(page, f"{demo.broker_url}/my-data/close")
    assert closed.status == 200 and closed.url == f"{demo.broker_url}/my-data/closed"
    assert "Your data page is closed." in closed.text
    assert "data-logout-everywhere" not in closed.text  # no session to end
    # The next student at the laptop opens the previous one's address from the history: told
    # calmly that it is closed (no error code), with nothing of the data.
    again = laptop.get(page.url)
    assert again.status == 200 and "This data is closed." in again.text
    assert "You signed in through" not in again.text and "Error code" not in again.text
    assert again.response.headers["Cache-Control"] == "no-store"
    # And the view is gone from the store too, not only from this browser.
    view_id = page.url.rsplit("/", 1)[1]
    assert demo.broker.flow.store.get(store_key(VIEW, view_id)) is None


def test_closed_while_still_signed_in_says_so_and_offers_log_out_first(demo: LiveDemo) -> None:
    """Closed without logging out (a page from before "Close and log out", or a session opened
    since): the closed page says that Sign in shows the data at once, and log out is its main
    button."""
    laptop = Browser()
    demo.login(laptop, "leesplank", UID)
    page = my_data(demo, laptop, UID)  # answered by the SSO session
    view_id = page.url.rsplit("/", 1)[1]
    closed = laptop.post(f"{demo.broker_url}/my-data/close", {"view": view_id})
    assert closed.url == f"{demo.broker_url}/my-data/closed"
    assert "Your data page is closed, but you are still signed in" in closed.text
    assert "Nobody can open it again" not in closed.text
    assert 'class="button button--primary" type="submit">Log out everywhere' in closed.text
    assert 'class="button" href="/my-data/sign-in"' in closed.text  # no longer the main one
    assert "This data is closed." in laptop.get(page.url).text
    started = laptop.submit(closed, f"{demo.broker_url}/logout")
    finish_logout(laptop, started)
    assert _goes_to_school(demo, laptop, f"{demo.broker_url}/my-data/sign-in")


@pytest.mark.parametrize("tabs", [1, 2], ids=["its tab", "an older tab"])
def test_a_forged_logout_token_on_close_and_log_out_changes_nothing(
    demo: LiveDemo, tabs: int
) -> None:
    """Pressed in the page's one tab or in an older one (a newer tab replaced its view): a
    token not made for this browser is refused, and nothing logs out or closes."""
    laptop = Browser()
    demo.login(laptop, "leesplank", UID)
    pages = [my_data(demo, laptop, UID) for _ in range(tabs)]
    fields = {**pages[0].form(f"{demo.broker_url}/my-data/close").fields, "csrf_token": "forged"}
    refused = laptop.post(f"{demo.broker_url}/my-data/close", fields)
    assert refused.status == 400
    assert SSO_COOKIE in laptop.cookies(demo.broker_url)
    assert "You signed in through" in laptop.get(pages[-1].url).text  # still open


def test_close_and_log_out_in_an_older_tab_logs_out_and_closes_the_newer_view(
    demo: LiveDemo,
) -> None:
    """Two tabs of the data page (the student opened it twice): "Close and log out" in the
    first, whose view the second replaced, still logs out everywhere and closes the view the
    second tab shows; the next student's "Sign in" meets the school, not this student's data."""
    laptop = Browser()
    demo.login(laptop, "leesplank", UID)
    old_tab = my_data(demo, laptop, UID)
    new_tab = my_data(demo, laptop, UID)  # the same student, another tab
    assert old_tab.url != new_tab.url
    started = laptop.submit(old_tab, f"{demo.broker_url}/my-data/close")
    assert started.url.startswith(f"{demo.broker_url}/logout/"), (started.status, started.url)
    assert "This page has expired" not in started.text
    assert SSO_COOKIE not in laptop.cookies(demo.broker_url)
    finish_logout(laptop, started)
    again = laptop.get(new_tab.url)
    assert "This data is closed." in again.text and "You signed in through" not in again.text
    # The view this browser's cookie named is gone from the store (the older one opens nowhere).
    view_id = new_tab.url.rsplit("/", 1)[1]
    assert demo.broker.flow.store.get(store_key(VIEW, view_id)) is None
    assert _goes_to_school(demo, laptop, f"{demo.broker_url}/my-data/sign-in")


def test_a_plain_close_in_an_older_tab_is_expired_and_closes_nothing(demo: LiveDemo) -> None:
    laptop = Browser()
    old_tab = my_data(demo, laptop, UID)  # a fresh school login: "Close my data" only
    new_tab = my_data(demo, laptop, UID)
    refused = laptop.submit(old_tab, f"{demo.broker_url}/my-data/close")
    assert refused.status == 400 and "This page has expired" in refused.text
    assert "You signed in through" in laptop.get(new_tab.url).text  # still open


def test_the_next_students_data_page_ends_the_previous_ones(demo: LiveDemo) -> None:
    laptop = Browser()
    first = my_data(demo, laptop, UID)  # a fresh school login; left open, not closed
    second = my_data(demo, laptop, OTHER)  # the next student, the same browser
    assert "data-close-my-data" in laptop.get(second.url).text  # the view, with or without data
    # The previous student's address from the history opens nothing any more.
    again = laptop.get(first.url)
    assert again.status == 400 and "This page has expired" in again.text


def _logout_fields(page: Page) -> dict[str, str]:
    """The logout token the data page's "Close and log out" carries, as "log out everywhere"
    elsewhere (the notice's "Not you?") would send it."""
    form = page.form(f"{page.url.split('/my-data/')[0]}/my-data/close")
    return {"csrf_token": form.fields["csrf_token"]}


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
