"""Every time in a school's Response, held to the broker's clock at its exact bound, against the
live demo: accepted at the bound, refused one second past it with the student's clock page (502,
in the student's language, with an error code) and the operator's log line naming the school, the
time and how many seconds it is off; the login stays open, and the school's correct answer still
completes it.

The bounds (docs/saml-profile.md, "Response: the checks"), with the login lifetime `ttl` and the
clock skew `skew` of the configuration:

- the Response's and the Assertion's `IssueInstant`: from `ttl + skew` behind now to `skew` ahead.
  The record that holds the login's request lives `ttl` at most, so an answer issued longer ago
  was issued before the request it answers (pysaml2, and the broker before it, took a day);
- a `NotBefore` (Conditions, and the bearer confirmation's, which SAML profiles 4.1.4.2 says
  must not be there and which is held as a time bound all the same): at most `skew` ahead;
- a `NotOnOrAfter` (Conditions, bearer confirmation): later than `skew` behind.

The broker's clock is pinned to a whole second (`SamlBack.clock`), so each bound is exact; every
message is the demo school's answer with that one time changed, signed afterwards with the
school's own key.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from lxml import etree

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.login.replay import EPOCH_KEY, EPOCH_TTL_SECONDS
from tests.security.test_saml_attacks import accepted_for, answer
from tests.security.test_saml_refusals import (
    OUT_OF_TIME,
    PendingLogin,
    assert_refused,
    deliver,
    start_login,
)
from tests.support.client import Browser
from tests.support.forge import NS, SchoolForger, saml_time
from tests.support.hostile import Signer, assertion_of, encode, signed
from tests.support.live import LiveDemo, running_demo
from tests.support.saml_workers import demo_school_forger, demo_school_signer

PAGE = {
    "en": (
        "Your school's answer is too old, or its clock is wrong",
        "Your school's sign-in service sent an answer that is too old, or its clock is wrong.",
    ),
    "nl": (
        "Het antwoord van je school is te oud, of de klok van je school loopt verkeerd",
        "De inlogdienst van je school stuurde een antwoord dat te oud is, of de klok van die "
        "inlogdienst loopt verkeerd.",
    ),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("answer-times-demo")) as live:
        # A store that has run for a day, as a deployment's has: an assertion issued a login's
        # lifetime ago is then not refused for being older than the store (replay.py's epoch
        # rule, which the fresh demo store would apply first).
        since = time.time() - 86400
        live.broker.replay.store.put(EPOCH_KEY, f"{since:.3f}".encode(), EPOCH_TTL_SECONDS)
        yield live


@dataclass(frozen=True)
class School:
    """The demo school's side: its answers (`forger`) and its signing key (`signer`)."""

    forger: SchoolForger
    signer: Signer


@pytest.fixture(scope="module")
def school(demo: LiveDemo) -> School:
    return School(demo_school_forger(demo), demo_school_signer(demo))


@pytest.fixture
def now(demo: LiveDemo, monkeypatch: pytest.MonkeyPatch) -> float:
    """The broker's clock for a school's answer, pinned to the current whole second."""
    pinned = float(int(time.time()))
    monkeypatch.setattr(demo.broker.saml_back, "clock", lambda: pinned)
    return pinned


def _at(moment: float) -> str:
    return saml_time(datetime.fromtimestamp(moment, UTC))


def _one(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path, NS)
    assert found is not None, path
    return found


def _response(doc: etree._Element) -> etree._Element:
    return doc


def _assertion(doc: etree._Element) -> etree._Element:
    return assertion_of(doc)


def _bearer_data(doc: etree._Element) -> etree._Element:
    path = "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData"
    return _one(assertion_of(doc), path)


def _conditions(doc: etree._Element) -> etree._Element:
    return _one(assertion_of(doc), "saml:Conditions")


@dataclass(frozen=True)
class Bound:
    """One time of the answer: where it is (`element`, `attribute`), how the log line names it,
    its bound as an offset from now (`bound(ttl, skew)`), and which way lies past it (-1: an
    earliest instant, +1: a latest one)."""

    element: Callable[[etree._Element], etree._Element]
    attribute: str
    named: str
    bound: Callable[[int, int], int]
    past: int
    language: str = "en"
    # Set with it, so that only the time under test is out of bounds (an earlier start for an
    # end moved into the past: a window that closes before it opens is refused for that).
    also: tuple[tuple[str, int], ...] = ()


BOUNDS = {
    "Response IssueInstant, oldest": Bound(
        _response, "IssueInstant", "the Response's IssueInstant", lambda t, s: -t - s, -1
    ),
    "Response IssueInstant, newest": Bound(
        _response, "IssueInstant", "the Response's IssueInstant", lambda t, s: s, +1, "nl"
    ),
    "Assertion IssueInstant, oldest": Bound(
        _assertion, "IssueInstant", "the Assertion's IssueInstant", lambda t, s: -t - s, -1, "nl"
    ),
    "Assertion IssueInstant, newest": Bound(
        _assertion, "IssueInstant", "the Assertion's IssueInstant", lambda t, s: s, +1
    ),
    "bearer NotBefore": Bound(
        _bearer_data, "NotBefore", "a bearer confirmation's NotBefore", lambda t, s: s, +1, "nl"
    ),
    "bearer NotOnOrAfter": Bound(
        _bearer_data,
        "NotOnOrAfter",
        "a bearer confirmation's NotOnOrAfter",
        lambda t, s: 1 - s,
        -1,
    ),
    "Conditions NotBefore": Bound(
        _conditions, "NotBefore", "the Conditions' NotBefore", lambda t, s: s, +1
    ),
    "Conditions NotOnOrAfter": Bound(
        _conditions,
        "NotOnOrAfter",
        "the Conditions' NotOnOrAfter",
        lambda t, s: 1 - s,
        -1,
        "nl",
        also=(("NotBefore", -600),),
    ),
}


def _answer_at(
    demo: LiveDemo, school: School, login: PendingLogin, case: Bound, moment: float, now: float
) -> str:
    """The school's answer to `login` with the case's time at `moment`, then signed."""
    doc = answer(demo, school.forger, login)
    element = case.element(doc)
    element.set(case.attribute, _at(moment))
    for attribute, offset in case.also:
        element.set(attribute, _at(now + offset))
    return encode(signed(doc, school.signer))


@pytest.mark.parametrize("name", list(BOUNDS))
def test_a_time_at_its_bound_is_accepted_and_one_second_past_it_gets_the_clock_page(
    demo: LiveDemo, school: School, now: float, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    case = BOUNDS[name]
    ttl, skew = demo.settings.login_ttl_seconds, demo.settings.saml.clock_skew_seconds
    at_bound = now + case.bound(ttl, skew)

    login = start_login(demo)
    page = deliver(demo, login, _answer_at(demo, school, login, case, at_bound, now))
    received = accepted_for(demo, login, page)
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")  # type: ignore[index]
    assert "code=answer_out_of_time" not in caplog.text

    login = start_login(demo, browser=Browser(case.language))
    past = at_bound + case.past
    page = deliver(demo, login, _answer_at(demo, school, login, case, past, now))
    assert_refused(demo, login.browser, page, caplog, OUT_OF_TIME, statuses=range(502, 503))
    title, message = PAGE[case.language]
    shown = html.unescape(page.text)
    assert f"<h1>{title}</h1>" in shown and message in shown, shown[:1500]

    # For the operator: the school, the time, and by how many seconds it is off; nothing about
    # the student (the NameID's value, an attribute) and nothing the school wrote as text.
    offset = round(past - now)
    side = "ahead of" if offset > 0 else "behind"
    (line,) = [m for m in caplog.messages if m.startswith("refused school=")]
    assert line.startswith(
        f"refused school={DEMO_SCHOOL_ID} code=answer_out_of_time offset={offset}s: "
        f"{case.named} is {abs(offset)} s {side} the broker's clock"
    ), line
    assert demo.school_subject("sanne.jansen") not in line and "Sanne" not in line

    # Nothing was written and the login stays open: the school's correct answer completes it.
    page = deliver(demo, login, encode(signed(answer(demo, school.forger, login), school.signer)))
    accepted_for(demo, login, page)


def test_a_bearer_not_before_in_the_past_is_no_reason_to_refuse(
    demo: LiveDemo, school: School, now: float
) -> None:
    """The profile's "MUST NOT contain a NotBefore" (SAML profiles 4.1.4.2) is the school's to
    keep; a NotBefore that has passed narrows nothing, and the login goes on."""
    login = start_login(demo)
    case = BOUNDS["bearer NotBefore"]
    page = deliver(demo, login, _answer_at(demo, school, login, case, now - 300, now))
    accepted_for(demo, login, page)
