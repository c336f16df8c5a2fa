"""Two schools on one OpenID provider (a school board's Entra ID tenant or Keycloak realm), end
to end against the live demo: the rule of a board's SAML IdP (test_shared_school_idp.py), by
issuer.

A scripted board provider (the demo's authlib OpenID provider, broker/demo/school_op.py, on a
port of its own) is registered for two schools, "Bestuur Noord" (99YY00) and "Bestuur Zuid"
(99YY01), with one client and a redirect URI per school; its `school_id` claim names each
student's own school. A student whose claim names Noord signs in there, is refused at Zuid (403
`other_school`, nothing written); a student without the claim is refused (`school_not_asserted`).
The provider knows one back-channel logout URI for its one client (Noord's): a logout token for a
session at Zuid, POSTed there, ends that session, found under Zuid's filing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from broker.cli.demo import DEMO_PUBLISHERS
from broker.core.model import OidcUpstream, School
from broker.demo.school_op import SchoolOpSettings, create_school_op_app
from broker.registry.receipts import ReceiptQuery
from broker.web.browser import SSO_COOKIE
from tests.flows.test_school_backchannel_logout import logout_token, logs_out_everywhere, post
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, free_ports, running_demo, served

NOORD, ZUID = "99YY00", "99YY01"
PUBLISHER = "leesplank"
REALM = "bestuur.example"
# Whose school the board's provider names: Sanne is Noord's, Daan Zuid's, Fatima has none.
OF_NOORD, OF_ZUID, OF_NONE = "sanne.jansen", "daan.devries", "fatima.elamrani"


@dataclass(frozen=True)
class Board:
    demo: LiveDemo
    issuer: str


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    with running_demo(tmp_path_factory.mktemp("shared-issuer-demo")) as demo:
        issuer = f"http://localhost:{free_ports(1)}"
        settings = demo.settings
        op = SchoolOpSettings(
            base_url=issuer,
            key_file=demo.directory / "peers" / "school-op.key",
            client_id="board-client",
            client_secret="board-secret",
            redirect_uri=settings.oidc_callback_url(NOORD),
            more_redirect_uris=(settings.oidc_callback_url(ZUID),),
            # One client, one back-channel logout URI: Noord's, for Zuid's sessions too.
            backchannel_logout_uri=settings.oidc_backchannel_logout_url(NOORD),
            school_name="Bestuur",
            brin=NOORD,
            realm=REALM,
            school_of=((OF_ZUID, ZUID), (OF_NONE, "")),
        )
        released = next(p.released for p in DEMO_PUBLISHERS if p.id == PUBLISHER)
        with served(issuer, create_school_op_app(op)):
            for school_id, name in ((NOORD, "Bestuur Noord"), (ZUID, "Bestuur Zuid")):
                upstream = OidcUpstream(issuer, op.client_id, op.client_secret)
                school = School(school_id, name, issuer, "sub", scopes=(REALM,), oidc=upstream)
                demo.registry.add_school(school, "")
                demo.registry.set_policy(school_id, PUBLISHER, released, "test")
            yield Board(demo, issuer)


def _to_school(board: Board, browser: Browser, school_id: str) -> Page:
    """A login at the publisher naming the board's issuer: the discovery page offers its two
    schools only; choosing `school_id` sends the student to the provider's sign-in page."""
    demo = board.demo
    page = browser.get(f"{demo.publishers[PUBLISHER].base_url}/login?school={board.issuer}")
    assert demo.shows_discovery(page), page.url
    offered = {value for form in page.forms for name, value in form.buttons if name == "school"}
    assert offered == {NOORD, ZUID}
    form = next(f for f in page.forms if ("school", school_id) in f.buttons)
    picker = browser.post(form.action, {**form.fields, "school": school_id})
    assert picker.url.startswith(f"{board.issuer}/authorize"), picker.url
    return picker


def _sign_in(board: Board, browser: Browser, school_id: str, uid: str) -> Page:
    """Choose `school_id`, sign in at the provider as `uid`: the broker's answer page."""
    picker = _to_school(board, browser, school_id)
    form = next(f for f in picker.forms if ("uid", uid) in f.buttons)
    return browser.post(form.action, {"uid": uid})


def _receipts(board: Board, school_id: str) -> int:
    return len(board.demo.broker.receipts.find(ReceiptQuery(school_id)))


def test_the_issuer_two_schools_are_on_must_name_the_school(board: Board) -> None:
    registry = board.demo.registry
    assert registry.idp_names_school(board.issuer)
    assert [s.id for s in registry.schools_by_idp(board.issuer)] == [NOORD, ZUID]


def test_a_student_the_claim_names_signs_in_at_that_school(board: Board) -> None:
    demo, browser = board.demo, Browser()
    page = _sign_in(board, browser, NOORD, OF_NOORD)
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
    browser.submit(page, demo.publishers[PUBLISHER].acs_url)
    session = demo.broker.flow.session(browser.cookies(demo.broker_url)[SSO_COOKIE])
    assert session is not None and session[0].school_id == NOORD
    # The claim names the chosen school: kept, and the SSO session counts as named.
    assert session[0].attributes["school_id"] == (NOORD,)


@pytest.mark.parametrize(
    ("uid", "code", "said"),
    [
        (OF_NOORD, "other_school", "Your school account does not belong to the school you chose."),
        (OF_NONE, "school_not_asserted", ""),
    ],
)
def test_a_login_whose_claim_does_not_name_the_chosen_school_is_refused(
    board: Board, caplog: pytest.LogCaptureFixture, uid: str, code: str, said: str
) -> None:
    demo, browser, receipts = board.demo, Browser(), _receipts(board, ZUID)
    with caplog.at_level(logging.INFO):
        refused = _sign_in(board, browser, ZUID, uid)
    assert refused.status == 403, refused.text[:500]
    assert said in refused.text
    lines = [r.getMessage() for r in caplog.records if f"code={code}" in r.getMessage()]
    assert any(f"school={ZUID}" in line for line in lines), caplog.text
    # The school the provider named is not logged.
    assert not any(NOORD in line for line in lines)
    # Nothing written: no receipt, no SSO session, nothing for the publisher.
    assert _receipts(board, ZUID) == receipts
    assert SSO_COOKIE not in refused.cookies_set
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(refused)
    # The way back: the same login's school choice (its spent request goes nowhere).
    link = next(a for a in _links(refused) if "/discovery?login=" in a)
    again = browser.get(urljoin(demo.broker_url, link))
    assert demo.shows_discovery(again), again.url
    if uid == OF_NOORD:
        form = next(f for f in again.forms if ("school", NOORD) in f.buttons)
        picker = browser.post(form.action, {**form.fields, "school": NOORD})
        sign_in = next(f for f in picker.forms if ("uid", uid) in f.buttons)
        page = browser.post(sign_in.action, {"uid": uid})
        assert page.status == 200 and demo.answers_publisher(page), page.text[:500]


def _links(page: Page) -> list[str]:
    return [unescape(href) for href in re.findall(r'href="([^"]+)"', page.text)]


def test_a_session_at_one_of_the_boards_schools_answers_its_issuers_idp_list(
    board: Board,
) -> None:
    """As for a board's SAML IdP: the session's login named its school, so it answers a login
    kept to the issuer's schools, without a second visit to the provider."""
    demo, browser = board.demo, Browser()
    page = _sign_in(board, browser, NOORD, OF_NOORD)
    assert demo.answers_publisher(page), page.text[:500]
    start = len(browser.history)
    again = browser.get(f"{demo.publishers[PUBLISHER].base_url}/login?school={board.issuer}")
    assert demo.answers_publisher(again), again.url
    assert not any(url.startswith(board.issuer) for url in browser.history[start:])


def test_the_boards_logout_token_at_noords_uri_ends_the_session_at_zuid(board: Board) -> None:
    demo, browser = board.demo, Browser()
    page = _sign_in(board, browser, ZUID, OF_ZUID)
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    session = demo.broker.flow.session(token)
    assert session is not None and session[0].school_id == ZUID
    sid = session[0].upstream_session["sid"]
    # Filed under Zuid, the session's school: never under the school the URI names.
    index = demo.broker.school_logout.index
    assert index.find(ZUID, sid) == token and index.find(NOORD, sid) is None

    # The provider's "log out everywhere" for this student: its token goes to Noord's URI.
    assert logs_out_everywhere(board.issuer, OF_ZUID) == [200]
    assert demo.broker.flow.session(token) is None
    assert index.find(ZUID, sid) is None


def test_the_boards_logout_token_is_used_once_across_its_schools_uris(board: Board) -> None:
    """The jti is used once per issuer and client (`jti_scope`), not per school: the board's
    token, used at Noord's URI, is a replay at Zuid's, which reaches the same sessions."""
    demo, browser = board.demo, Browser()
    page = _sign_in(board, browser, ZUID, OF_ZUID)
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    session = demo.broker.flow.session(token)
    assert session is not None
    sid = session[0].upstream_session["sid"]
    signed = logout_token(demo, sid, iss=board.issuer, aud="board-client")
    assert post(demo, signed, NOORD).status_code == 200
    assert demo.broker.flow.session(token) is None
    again = post(demo, signed, ZUID)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_request", "error_description": "replay"}


def _callback(board: Board, browser: Browser) -> str:
    """The last answer of the provider the browser brought to the broker (state and code)."""
    prefix = board.demo.settings.oidc_callback_url("")
    return next(url for url in reversed(browser.history) if url.startswith(prefix))


def _prompt(page: Page) -> list[str]:
    return parse_qs(urlsplit(page.url).query).get("prompt", [])


def test_a_copy_of_the_refused_answer_leaves_the_login_chosen_again_alone(
    board: Board, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused at Zuid (the provider named Noord), the student chooses Noord: the request there
    asks which account to use (prompt=select_account), and the refused answer, sent again,
    is stale (its state's tag is not the live request's). It neither ends nor spends the
    live login, which then completes."""
    demo, browser = board.demo, Browser()
    first = _to_school(board, browser, ZUID)
    assert _prompt(first) == []
    form = next(f for f in first.forms if ("uid", OF_NOORD) in f.buttons)
    refused = browser.post(form.action, {"uid": OF_NOORD})
    assert refused.status == 403, refused.text[:500]
    old_answer = _callback(board, browser)
    link = next(a for a in _links(refused) if "/discovery?login=" in a)
    again = browser.get(urljoin(demo.broker_url, link))
    form = next(f for f in again.forms if ("school", NOORD) in f.buttons)
    picker = browser.post(form.action, {**form.fields, "school": NOORD})
    assert picker.url.startswith(f"{board.issuer}/authorize"), picker.url
    assert _prompt(picker) == ["select_account"]
    with caplog.at_level(logging.INFO):
        replayed = browser.get(old_answer)
    assert replayed.status == 400, replayed.text[:500]
    assert "refused code=stale_state " in caplog.text
    assert not demo.answers_publisher(replayed)
    sign_in = next(f for f in picker.forms if ("uid", OF_NOORD) in f.buttons)
    page = browser.post(sign_in.action, {"uid": OF_NOORD})
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]


def test_reloading_the_refused_answer_keeps_the_way_back_to_the_school_choice(
    board: Board,
) -> None:
    """The refusal page reloaded (its callback URL asked again): stale, the record is put back
    as it was, so the page's link back to the school choice still works."""
    demo, browser = board.demo, Browser()
    refused = _sign_in(board, browser, ZUID, OF_NOORD)
    assert refused.status == 403, refused.text[:500]
    reloaded = browser.get(_callback(board, browser))
    assert reloaded.status == 400, reloaded.text[:500]
    assert not demo.answers_publisher(reloaded)
    link = next(a for a in _links(refused) if "/discovery?login=" in a)
    again = browser.get(urljoin(demo.broker_url, link))
    assert demo.shows_discovery(again), again.url
    form = next(f for f in again.forms if ("school", NOORD) in f.buttons)
    picker = browser.post(form.action, {**form.fields, "school": NOORD})
    sign_in = next(f for f in picker.forms if ("uid", OF_NOORD) in f.buttons)
    page = browser.post(sign_in.action, {"uid": OF_NOORD})
    assert page.status == 200 and demo.answers_publisher(page), page.text[:500]
