"""The same logout request twice (login/logout_marks.py), end to end against the demo.

Without JavaScript a double click on "log out everywhere" or on the end_session confirmation
sends the form twice. The first request ends the SSO session and starts the run that tells the
platforms; the browser shows the answer to the second, which finds no session. That second
request goes on to the first run, whether it still carried the SSO cookie (sent before the
first answer arrived) or not (sent while the run's first page was loading, after the first
answer had cleared the cookie): one run, every platform and the school told once. A request
that is not the same (another browser, another platform) is not taken there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY

from broker.web.browser import BROWSER_COOKIE, SSO_COOKIE
from broker.web.metrics import CountingStore
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, OidcPublisher
from tests.support.logout import (
    answer_initiator,
    carry_saml_posts,
    finish_logout,
    peer_logouts,
    run_id_of,
)

LEESPLANK = "Leesplank (demo publisher)"
REKENROUTE = "Rekenroute (demo distributor)"
# How the second request was sent: before the first answer reached the browser (it carries
# the SSO cookie still), or after it (the cookie is gone, the run's first page was loading).
SECOND_PRESS = ["before-the-answer", "while-the-run-loads"]


@pytest.fixture(scope="module")
def dubbel(demo: LiveDemo) -> OidcPublisher:
    """An OIDC platform registered for end_session and back-channel logout."""
    return demo.add_oidc_publisher("dubbel", "leermiddelen", scope="openid", logout=True)


def logouts_started(initiator: str, protocol: str, outcome: str = "started") -> float:
    labels = {"initiator": initiator, "protocol": protocol, "outcome": outcome}
    return REGISTRY.get_sample_value("ketenbroker_logouts_total", labels) or 0.0


class Heard:
    """How many logout requests each demo peer has received so far, for this browser's
    names (the other tests of the session log out too)."""

    def __init__(self, demo: LiveDemo, browser: Browser, uid: str) -> None:
        self.demo, self.browser = demo, browser
        self.names = {
            "leesplank": demo.received(browser, "leesplank")["name_id"]["value"],
            "rekenroute": demo.received(browser, "rekenroute")["name_id"]["value"],
            "school": demo.school_subject(uid),
        }
        self.before = self.now()

    def now(self) -> dict[str, int]:
        urls = {
            "leesplank": self.demo.publishers["leesplank"].base_url,
            "rekenroute": self.demo.publishers["rekenroute"].base_url,
            "school": self.demo.school_url,
        }
        return {
            peer: sum(
                1
                for e in peer_logouts(self.browser, url)
                if e["kind"] == "request" and e["name_id"] == self.names[peer]
            )
            for peer, url in urls.items()
        }

    def since(self) -> dict[str, int]:
        now = self.now()
        return {peer: now[peer] - self.before[peer] for peer in now}


def replay_checks(demo: LiveDemo, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The issuers the broker asks the replay cache about from now on, in order."""
    asked: list[str] = []
    first_use = demo.broker.replay.first_use

    def counted(issuer: str, *args: Any) -> None:
        asked.append(issuer)
        first_use(issuer, *args)

    monkeypatch.setattr(demo.broker.replay, "first_use", counted)
    return asked


def assert_leesplanks_one_run(browser: Browser, heard: Heard, location: str | None) -> None:
    """The run Leesplank's LogoutRequest started, at `location`: the other platform and the
    school told once, and the one answer back to Leesplank, which takes it."""
    assert location is not None
    outcome = finish_logout(browser, browser.get(location))
    assert outcome.services == {REKENROUTE: "confirmed"}
    assert heard.since() == {"leesplank": 0, "rekenroute": 1, "school": 1}
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in back.text, back.text


def logged_in_twice(demo: LiveDemo, uid: str) -> Browser:
    browser = Browser()
    for publisher in ("leesplank", "rekenroute"):
        assert demo.login(browser, publisher, uid).final.status == 200
    return browser


def press_twice(
    demo: LiveDemo, browser: Browser, url: str, fields: dict[str, str], second: str
) -> tuple[Page, Page]:
    """POST the form twice (the answers not followed); the second press as `second` says."""
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    first = browser.post(url, fields, follow=False)
    assert first.status == 303 and first.location is not None, first.text
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    if second == "before-the-answer":
        browser.jar[urlsplit(demo.broker_url).hostname or ""][SSO_COOKIE] = token
    else:
        # The run's first page was asked for (it tells the back-channel platforms), and left
        # for the second press before it arrived.
        browser.get(first.location, follow=False)
    return first, browser.post(url, fields, follow=False)


@pytest.mark.parametrize("second", SECOND_PRESS)
def test_log_out_everywhere_pressed_twice_lands_on_the_one_run(demo: LiveDemo, second: str) -> None:
    browser = logged_in_twice(demo, "sanne.jansen")
    heard = Heard(demo, browser, "sanne.jansen")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    form = my_data.form(f"{demo.broker_url}/my-data/close")
    started = logouts_started("student", "none")

    first, again = press_twice(demo, browser, form.action, dict(form.fields), second)

    # The second answer is the way to the first run, and the browser forgets the SSO cookie.
    assert again.status == 303, again.text
    assert again.location == first.location
    assert again.response.headers["Cache-Control"] == "no-store"
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    assert logouts_started("student", "none") == started + 1
    # That run tells both platforms and the school, each once.
    assert again.location is not None
    outcome = finish_logout(browser, browser.get(again.location))
    assert outcome.services == {LEESPLANK: "confirmed", REKENROUTE: "confirmed"}
    assert outcome.school == "confirmed"
    assert heard.since() == {"leesplank": 1, "rekenroute": 1, "school": 1}
    # A third press, after it all: the same run's final page, nobody told again.
    third = browser.post(form.action, dict(form.fields))
    assert run_id_of(third) == run_id_of(outcome.page) and third.url.endswith("/done")
    assert heard.since() == {"leesplank": 1, "rekenroute": 1, "school": 1}


@pytest.mark.parametrize("second", SECOND_PRESS)
def test_the_end_session_confirmation_sent_twice_lands_on_the_one_run(
    demo: LiveDemo, dubbel: OidcPublisher, second: str
) -> None:
    browser = logged_in_twice(demo, "daan.devries")
    demo.login(browser, "dubbel", "daan.devries")
    heard = Heard(demo, browser, "daan.devries")
    back_channel = f"{dubbel.base_url}/backchannel.json"
    calls = len(browser.get(back_channel).response.json()["calls"])
    target = f"{dubbel.base_url}/logged-out"
    asked = f"{demo.broker_url}/oidc/end_session?client_id=dubbel&post_logout_redirect_uri="
    page = browser.get(f"{asked}{target}&state=s-1")
    form = page.form(f"{demo.broker_url}/oidc/end_session")
    started = logouts_started("service", "oidc")

    first, again = press_twice(
        demo, browser, form.action, {**form.fields, "confirm": "yes"}, second
    )

    assert again.status == 303, again.text
    assert again.location == first.location
    assert logouts_started("service", "oidc") == started + 1
    assert again.location is not None
    outcome = finish_logout(browser, browser.get(again.location))
    # Without a hint the platform that asked is told of this session too (back channel): once.
    assert outcome.services == {
        LEESPLANK: "confirmed",
        REKENROUTE: "confirmed",
        "dubbel (test OIDC publisher)": "confirmed",
    }
    assert heard.since() == {"leesplank": 1, "rekenroute": 1, "school": 1}
    assert len(browser.get(back_channel).response.json()["calls"]) == calls + 1
    assert f'href="{target}?state=s-1"' in outcome.page.text


@pytest.mark.parametrize("second", SECOND_PRESS)
def test_a_platforms_logout_request_sent_twice_lands_on_the_one_run(
    demo: LiveDemo, second: str
) -> None:
    """The platform's LogoutRequest form sent twice: the copy is no replay to refuse here, but
    the request that started this browser's run."""
    browser = logged_in_twice(demo, "marieke.bakker")
    heard = Heard(demo, browser, "marieke.bakker")
    to_broker = browser.get(f"{demo.publishers['leesplank'].base_url}/logout?binding=post")
    form = to_broker.form(f"{demo.broker_url}/saml/idp/slo")

    first, again = press_twice(demo, browser, form.action, dict(form.fields), second)

    assert again.status == 303, again.text
    assert again.location == first.location
    assert_leesplanks_one_run(browser, heard, again.location)


def test_the_copy_goes_on_to_its_run_by_the_mark_without_asking_the_replay_cache(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is recognised by this browser's mark before the replay check: that check is
    asked only by the request that started the run, and its refusal is never taken as "the
    same request again"."""
    browser = logged_in_twice(demo, "sanne.jansen")
    to_broker = browser.get(f"{demo.publishers['leesplank'].base_url}/logout?binding=post")
    form = to_broker.form(f"{demo.broker_url}/saml/idp/slo")
    asked = replay_checks(demo, monkeypatch)
    first, again = press_twice(demo, browser, form.action, dict(form.fields), "before-the-answer")
    assert again.status == 303 and again.location == first.location
    assert [issuer.split(":")[0] for issuer in asked] == ["saml-logout"]


def at_the_same_moment(
    demo: LiveDemo,
    monkeypatch: pytest.MonkeyPatch,
    browser: Browser,
    requests: list[tuple[str, dict[str, str]]],
) -> list[Page]:
    """POST `requests` (url, fields) from this browser on connections of their own at once,
    each held right after its read of the session until every other has read too (so that
    all find the session standing); the answers, not followed, in the order given."""
    both_read = threading.Barrier(len(requests), timeout=10)
    compose = demo.broker.logout.compose
    held = iter(range(len(requests)))

    def after_both_reads(*args: Any) -> Any:
        # Each request's first run only: a loser that asked something else makes another.
        if next(held, None) is not None:
            both_read.wait()
        return compose(*args)

    monkeypatch.setattr(demo.broker.logout, "compose", after_both_reads)
    answers: dict[int, Page] = {}

    def post(index: int, url: str, fields: dict[str, str]) -> None:
        # The same browser: its cookies, on a connection of its own.
        sender = Browser()
        sender.jar = {host: dict(cookies) for host, cookies in browser.jar.items()}
        answers[index] = sender.post(url, fields, follow=False)

    threads = [
        threading.Thread(target=post, args=(index, url, fields))
        for index, (url, fields) in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    monkeypatch.setattr(demo.broker.logout, "compose", compose)
    browser.jar[urlsplit(demo.broker_url).hostname or ""].pop(SSO_COOKIE, None)
    return [answers[index] for index in range(len(requests))]


def test_two_presses_arriving_at_the_same_moment_make_one_run(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests read the standing session before either ends it: the one that files its
    run first claims the session, the other waits for that run's mark and is sent on to it.
    One run, every platform and the school told once, one logout counted."""
    browser = logged_in_twice(demo, "sanne.jansen")
    heard = Heard(demo, browser, "sanne.jansen")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    form = my_data.form(f"{demo.broker_url}/my-data/close")
    started = logouts_started("student", "none")

    one, two = at_the_same_moment(
        demo, monkeypatch, browser, [(form.action, dict(form.fields))] * 2
    )

    assert one.status == two.status == 303, one.text
    assert one.location == two.location
    assert logouts_started("student", "none") == started + 1
    assert one.location is not None
    outcome = finish_logout(browser, browser.get(one.location))
    assert outcome.services == {LEESPLANK: "confirmed", REKENROUTE: "confirmed"}
    assert outcome.school == "confirmed"
    assert heard.since() == {"leesplank": 1, "rekenroute": 1, "school": 1}


def test_a_platforms_logout_request_posted_twice_at_the_same_moment_makes_one_run(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform's auto-post submitted twice, both copies finding the session standing:
    the copy that claims the session takes the request (the replay check, asked once), the
    other is sent on to its run instead of being refused as a replay. The platform gets its
    LogoutResponse."""
    browser = logged_in_twice(demo, "marieke.bakker")
    heard = Heard(demo, browser, "marieke.bakker")
    to_broker = browser.get(f"{demo.publishers['leesplank'].base_url}/logout?binding=post")
    form = to_broker.form(f"{demo.broker_url}/saml/idp/slo")
    started = logouts_started("service", "saml")
    asked = replay_checks(demo, monkeypatch)
    one, two = at_the_same_moment(
        demo, monkeypatch, browser, [(form.action, dict(form.fields))] * 2
    )
    monkeypatch.undo()

    assert one.status == two.status == 303, (one.text, two.text)
    assert one.location == two.location
    assert [issuer.split(":")[0] for issuer in asked] == ["saml-logout"]
    assert logouts_started("service", "saml") == started + 1
    assert_leesplanks_one_run(browser, heard, one.location)
    # A third copy, once it is all over: the same run, not a replay.
    third = browser.post(form.action, dict(form.fields), follow=False)
    assert third.status == 303 and third.location == one.location


def test_two_different_requests_at_the_same_moment_count_one_logout_started(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The button and a platform's LogoutRequest at once: the one that loses the claim asked
    something else and gets a run of its own with the session gone, counted apart
    (`started_second`), so the one logout counts once as started."""
    browser = logged_in_twice(demo, "daan.devries")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    button = my_data.form(f"{demo.broker_url}/my-data/close")
    to_broker = browser.get(f"{demo.publishers['leesplank'].base_url}/logout?binding=post")
    platform = to_broker.form(f"{demo.broker_url}/saml/idp/slo")
    kinds = [("student", "none"), ("service", "saml")]

    def counts(outcome: str) -> float:
        return sum(logouts_started(kind, protocol, outcome) for kind, protocol in kinds)

    started, second = counts("started"), counts("started_second")

    answers = at_the_same_moment(
        demo,
        monkeypatch,
        browser,
        [(button.action, dict(button.fields)), (platform.action, dict(platform.fields))],
    )

    assert [a.status for a in answers] == [303, 303], [a.text for a in answers]
    assert answers[0].location != answers[1].location
    assert counts("started") == started + 1
    assert counts("started_second") == second + 1


def test_the_copy_in_another_browser_is_still_refused(demo: LiveDemo) -> None:
    """The mark opens only with the browser's own secret: the LogoutRequest replayed from
    elsewhere is a replay, as before."""
    browser = logged_in_twice(demo, "sanne.jansen")
    to_broker = browser.get(f"{demo.publishers['leesplank'].base_url}/logout?binding=post")
    form = to_broker.form(f"{demo.broker_url}/saml/idp/slo")
    assert browser.post(form.action, dict(form.fields), follow=False).status == 303
    other = Browser()
    other.jar["127.0.0.1"] = {
        k: v for k, v in browser.cookies(demo.broker_url).items() if k != BROWSER_COOKIE
    }
    assert other.post(form.action, dict(form.fields), follow=False).status == 400


def test_another_request_without_a_session_is_not_taken_to_the_run(
    demo: LiveDemo, dubbel: OidcPublisher
) -> None:
    """After the button's run, a platform's end_session in the same browser is its own
    request: answered at once, with its own state, not shown the student's run."""
    browser = logged_in_twice(demo, "daan.devries")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    first = browser.submit(my_data, f"{demo.broker_url}/my-data/close", follow=False)
    target = f"{dubbel.base_url}/logged-out"
    asked = f"{demo.broker_url}/oidc/end_session?client_id=dubbel&post_logout_redirect_uri="
    page = browser.get(f"{asked}{target}&state=s-2")
    assert page.status == 200 and page.url.endswith("/done"), page.url
    assert first.location is not None and not page.url.startswith(first.location)
    assert f'href="{target}?state=s-2"' in page.text
    assert "data-logout-service" not in page.text


# -- round trips ---------------------------------------------------------------------------------
@pytest.fixture
def store_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call the broker makes on its store (one round trip each; a batch is one)."""
    calls: list[str] = []
    for name in ("put", "get", "take", "add_if_absent", "delete", "batch"):
        original = getattr(CountingStore, name)

        def counted(self: CountingStore, *args: Any, _name: str = name, _o: Any = original) -> Any:
            if _name == "batch":
                calls.append("batch[" + ",".join(op.operation for op in args[0]) + "]")
            else:
                calls.append(_name)
            return _o(self, *args)

        monkeypatch.setattr(CountingStore, name, counted)
    yield calls


def test_the_button_costs_three_round_trips_and_a_second_press_one_read_more(
    demo: LiveDemo, store_calls: list[str]
) -> None:
    browser = logged_in_twice(demo, "sanne.jansen")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    form = my_data.form(f"{demo.broker_url}/my-data/close")
    store_calls.clear()
    first, again = press_twice(demo, browser, form.action, dict(form.fields), "before-the-answer")
    assert again.location == first.location
    # The press: the session and its services read together; the claim on the session (two
    # requests at once make one run); then one batch files the run and the mark and ends both
    # (the writes first: whoever finds the session gone finds them). The button is the data
    # page's "Close and log out": its view's record goes after the logout began (one delete).
    # The second press (the view closed already): the same read, and the mark.
    assert store_calls == [
        "batch[get,get]",
        "add_if_absent",
        "batch[put,put,delete,delete]",
        "delete",
        "batch[get,get]",
        "get",
    ], store_calls


def test_a_run_that_cannot_be_made_still_ends_the_session(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is filed in the batch that ends the session; when it cannot be made (the
    registry failing), the session ends all the same: a logout never leaves it standing."""
    browser = logged_in_twice(demo, "marieke.bakker")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")

    def failing(*args: object) -> None:
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr(demo.broker.logout, "compose", failing)
    refused = browser.submit(my_data, f"{demo.broker_url}/my-data/close", follow=False)
    assert refused.status == 500
    monkeypatch.undo()
    login = demo.login(browser, "leesplank", "marieke.bakker")
    assert login.went_to(f"{demo.school_url}/sso")


def test_the_copy_after_a_new_login_is_refused_and_ends_nothing(demo: LiveDemo) -> None:
    """The platform's old LogoutRequest sent again once the student has logged in anew: a
    replay, refused as before; the first run's page would tell them they are logged out."""
    browser = logged_in_twice(demo, "daan.devries")
    to_broker = browser.get(f"{demo.publishers['leesplank'].base_url}/logout?binding=post")
    form = to_broker.form(f"{demo.broker_url}/saml/idp/slo")
    finish_logout(browser, browser.post(form.action, dict(form.fields)))
    assert demo.login(browser, "rekenroute", "daan.devries").went_to(f"{demo.school_url}/sso")
    assert browser.post(form.action, dict(form.fields), follow=False).status == 400
    assert not demo.login(browser, "rekenroute", "daan.devries").went_to(f"{demo.school_url}/sso")
