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


def logouts_started(initiator: str, protocol: str) -> float:
    labels = {"initiator": initiator, "protocol": protocol, "outcome": "started"}
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
    form = my_data.form(f"{demo.broker_url}/logout")
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
    assert again.location is not None
    outcome = finish_logout(browser, browser.get(again.location))
    assert outcome.services == {REKENROUTE: "confirmed"}
    assert heard.since() == {"leesplank": 0, "rekenroute": 1, "school": 1}
    # The one answer goes back to the platform, which takes it.
    back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
    assert 'data-logout-status="success"' in back.text, back.text


def test_the_copy_goes_on_to_its_run_by_the_mark_without_asking_the_replay_cache(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is recognised by this browser's mark before the replay check: that check is
    asked only by the request that started the run, and its refusal is never taken as "the
    same request again"."""
    browser = logged_in_twice(demo, "sanne.jansen")
    to_broker = browser.get(f"{demo.publishers['leesplank'].base_url}/logout?binding=post")
    form = to_broker.form(f"{demo.broker_url}/saml/idp/slo")
    asked: list[str] = []
    first_use = demo.broker.replay.first_use

    def counted(issuer: str, *args: Any) -> None:
        asked.append(issuer)
        first_use(issuer, *args)

    monkeypatch.setattr(demo.broker.replay, "first_use", counted)
    first, again = press_twice(demo, browser, form.action, dict(form.fields), "before-the-answer")
    assert again.status == 303 and again.location == first.location
    assert [issuer.split(":")[0] for issuer in asked] == ["saml-logout"]


def test_two_presses_arriving_at_the_same_moment_make_one_run(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests read the standing session before either ends it (each is held right after
    its read until the other has read too): the one that files its run first claims the
    session, the other waits for that run's mark and is sent on to it. One run, every platform
    and the school told once, one logout counted."""
    browser = logged_in_twice(demo, "sanne.jansen")
    heard = Heard(demo, browser, "sanne.jansen")
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    form = my_data.form(f"{demo.broker_url}/logout")
    started = logouts_started("student", "none")
    both_read = threading.Barrier(2, timeout=10)
    compose = demo.broker.logout.compose

    def after_both_reads(*args: Any) -> Any:
        both_read.wait()
        return compose(*args)

    monkeypatch.setattr(demo.broker.logout, "compose", after_both_reads)
    # The same browser's two requests: its cookies, sent on two connections at once.
    twin = Browser()
    twin.jar = {host: dict(cookies) for host, cookies in browser.jar.items()}
    answers: dict[str, Page] = {}

    def press(name: str, sender: Browser) -> None:
        answers[name] = sender.post(form.action, dict(form.fields), follow=False)

    presses = [
        threading.Thread(target=press, args=(name, sender))
        for name, sender in (("one", browser), ("two", twin))
    ]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join(timeout=30)
    monkeypatch.undo()

    assert answers["one"].status == answers["two"].status == 303, answers["one"].text
    assert answers["one"].location == answers["two"].location
    assert logouts_started("student", "none") == started + 1
    location = answers["one"].location
    assert location is not None
    outcome = finish_logout(browser, browser.get(location))
    assert outcome.services == {LEESPLANK: "confirmed", REKENROUTE: "confirmed"}
    assert outcome.school == "confirmed"
    assert heard.since() == {"leesplank": 1, "rekenroute": 1, "school": 1}


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
    first = browser.submit(my_data, f"{demo.broker_url}/logout", follow=False)
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
    form = my_data.form(f"{demo.broker_url}/logout")
    store_calls.clear()
    first, again = press_twice(demo, browser, form.action, dict(form.fields), "before-the-answer")
    assert again.location == first.location
    # The press: the session and its services read together; the claim on the session (two
    # requests at once make one run); then one batch files the run and the mark and ends both
    # (the writes first: whoever finds the session gone finds them).
    # The second press: the same read, and the mark.
    assert store_calls == [
        "batch[get,get]",
        "add_if_absent",
        "batch[put,put,delete,delete]",
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
    refused = browser.submit(my_data, f"{demo.broker_url}/logout", follow=False)
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
