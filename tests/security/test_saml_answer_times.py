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

Not the school's clock, and so not the clock page: the `IssueInstant` of a Response that is not
signed (beside a signed Assertion), which anyone could have set; a signed assertion of another
login, which is `unsolicited` whatever its times; a time not written in UTC with 'Z' (SAML core
1.3.3); a `SessionNotOnOrAfter` that has passed, which only bounds the broker's SSO session (SAML
core 2.7.2) and so answers the login without one.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.ports import StoreOp
from broker.login.replay import BUCKET_TAGS, EPOCH_TTL_SECONDS, epoch_key
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
from tests.support.live import SSO_COOKIE, LiveDemo, running_demo
from tests.support.saml_workers import demo_school_forger, demo_school_signer

PAGE = {
    "en": (
        "Signing in at your school took too long",
        "Signing in at your school took too long.",
        "or the clock of its server is wrong.",
    ),
    "nl": (
        "Inloggen bij je school duurde te lang",
        "Het inloggen bij je school duurde te lang.",
        "of de klok van de server loopt verkeerd.",
    ),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("answer-times-demo")) as live:
        # A store that has run for a day, as a deployment's has: an assertion issued a login's
        # lifetime ago is then not refused for being older than the store (replay.py's epoch
        # rule, which the fresh demo store would apply first).
        since = f"{time.time() - 86400:.3f}".encode()
        live.broker.replay.store.batch(
            [StoreOp.put(epoch_key(tag), since, EPOCH_TTL_SECONDS) for tag in BUCKET_TAGS]
        )
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
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")
    assert "code=answer_out_of_time" not in caplog.text

    login = start_login(demo, browser=Browser(case.language))
    past = at_bound + case.past
    page = deliver(demo, login, _answer_at(demo, school, login, case, past, now))
    assert_refused(demo, login.browser, page, caplog, OUT_OF_TIME, statuses=range(502, 503))
    title, message, for_ict = PAGE[case.language]
    shown = html.unescape(page.text)
    assert f"<h1>{title}</h1>" in shown and message in shown, shown[:1500]
    assert for_ict in shown  # the clock: for the school's ICT contact, not the student

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


# -- times that say nothing of the school's clock ------------------------------------------------


def _school_line(caplog: pytest.LogCaptureFixture) -> str:
    (line,) = [m for m in caplog.messages if m.startswith("refused school=")]
    return line


@pytest.mark.parametrize("offset", [3600, -86400], ids=["an hour ahead", "a day behind"])
def test_an_unsigned_responses_issue_instant_says_nothing_of_the_schools_clock(
    demo: LiveDemo, school: School, now: float, offset: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the Assertion is signed: the Response's IssueInstant is anybody's to set (a student
    could post it an hour ahead). Out of bounds it is the general refusal (`time_window`), and
    the log line says it was not signed, with no word about the school's clock."""
    skew = demo.settings.saml.clock_skew_seconds

    def unsigned_response_at(login: PendingLogin, moment: float) -> str:
        doc = answer(demo, school.forger, login)
        doc.set("IssueInstant", _at(moment))
        return encode(signed(doc, school.signer, response=False))

    login = start_login(demo)
    accepted_for(demo, login, deliver(demo, login, unsigned_response_at(login, now + skew)))

    login = start_login(demo)
    page = deliver(demo, login, unsigned_response_at(login, now + offset))
    assert_refused(demo, login.browser, page, caplog, ("time_window",))
    assert "answer_out_of_time" not in caplog.text
    line = _school_line(caplog)
    side = "ahead of" if offset > 0 else "behind"
    assert line.startswith(
        f"refused school={DEMO_SCHOOL_ID} code=time_window: the Response's IssueInstant is "
        f"{abs(offset)} s {side} the broker's clock"
    ), line
    assert "response_signed=no" in line and "check the clock" not in line, line

    page = deliver(demo, login, encode(signed(answer(demo, school.forger, login), school.signer)))
    accepted_for(demo, login, page)


def test_another_logins_signed_assertion_in_an_unsigned_response_is_unsolicited(
    demo: LiveDemo, school: School, now: float, caplog: pytest.LogCaptureFixture
) -> None:
    """An assertion the school signed for an earlier login, long expired, wrapped in an
    unsigned Response that names this login's request: its signed confirmation names the other
    request, which is what counts (`unsolicited`), before any of its times is read as the
    school's clock."""
    skew = demo.settings.saml.clock_skew_seconds
    earlier = start_login(demo)
    doc = answer(demo, school.forger, earlier)
    expired = _at(now - skew - 600)
    _conditions(doc).set("NotBefore", _at(now - skew - 900))
    _conditions(doc).set("NotOnOrAfter", expired)
    _bearer_data(doc).set("NotOnOrAfter", expired)
    assertion_of(doc).set("IssueInstant", _at(now - skew - 900))
    signed(doc, school.signer, response=False)

    login = start_login(demo)
    doc.set("InResponseTo", login.request_id)
    page = deliver(demo, login, encode(doc))
    assert_refused(demo, login.browser, page, caplog, ("unsolicited",))
    assert "answer_out_of_time" not in caplog.text and "refused school=" not in caplog.text


@pytest.mark.parametrize("ago", ["skew", 3600])
def test_a_school_session_over_already_answers_the_login_without_an_sso_session(
    demo: LiveDemo, school: School, now: float, ago: str | int
) -> None:
    """SAML core 2.7.2: SessionNotOnOrAfter is when the service's session on this assertion must
    end, not a bound on accepting it. Passed (beyond the skew too), the login is answered and
    no SSO session is opened, as for one that passed within the skew."""
    skew = demo.settings.saml.clock_skew_seconds
    moment = now - (skew + 1 if ago == "skew" else int(ago))
    login = start_login(demo)
    doc = answer(demo, school.forger, login)
    _one(assertion_of(doc), "saml:AuthnStatement").set("SessionNotOnOrAfter", _at(moment))
    page = deliver(demo, login, encode(signed(doc, school.signer)))
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
    assert SSO_COOKIE not in page.cookies_set
    at_publisher = login.browser.submit(page, demo.publishers["leesplank"].acs_url)
    assert at_publisher.status == 200
    received = demo.received(login.browser, "leesplank")
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")
    # Nor is the passed end passed on: the publisher (pysaml2) would refuse the answer.
    assert (
        "SessionNotOnOrAfter"
        not in base64.b64decode(
            page.form(demo.publishers["leesplank"].acs_url).fields["SAMLResponse"]
        ).decode()
    )


AMSTERDAM_WINTER = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        # Dutch local time with no zone: read as UTC it would look an hour ahead.
        (
            lambda t: datetime.fromtimestamp(t, AMSTERDAM_WINTER).strftime("%Y-%m-%dT%H:%M:%S"),
            "has no time zone 'Z' (SAML core 1.3.3)",
        ),
        (
            lambda t: datetime.fromtimestamp(t, AMSTERDAM_WINTER).isoformat(),
            "has the zone offset +01:00, not UTC with 'Z' (SAML core 1.3.3)",
        ),
    ],
    ids=["no zone", "zone offset"],
)
@pytest.mark.parametrize(
    ("element", "named"),
    [
        (_assertion, "the Assertion's IssueInstant"),
        (_response, "the Response's IssueInstant"),
    ],
    ids=["Assertion", "Response"],
)
def test_a_time_not_in_utc_with_z_is_refused_for_that_reason(
    demo: LiveDemo,
    school: School,
    now: float,
    written: Callable[[float], str],
    reason: str,
    element: Callable[[etree._Element], etree._Element],
    named: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SAML core 1.3.3: every SAML time is UTC, written with 'Z'. The right moment in local
    time is refused with that reason in the log line, not as a clock an hour off."""
    login = start_login(demo)
    doc = answer(demo, school.forger, login)
    element(doc).set("IssueInstant", written(now))
    page = deliver(demo, login, encode(signed(doc, school.signer)))
    assert_refused(demo, login.browser, page, caplog, ("time_window",))
    assert "answer_out_of_time" not in caplog.text
    line = _school_line(caplog)
    assert line == f"refused school={DEMO_SCHOOL_ID} code=time_window: {named} {reason}", line

    page = deliver(demo, login, encode(signed(answer(demo, school.forger, login), school.signer)))
    accepted_for(demo, login, page)
