"""SAML messages the broker must refuse (security.md), against the live demo.

Every refusal is checked for its outcome: a 4xx page, the reason code in the audit line, no
SSO cookie, no assertion on its way to the publisher, and nothing received there. A correctly
forged school response is accepted first (the control), so each refusal below is caused by the
one thing that was changed.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from lxml import etree
from saml2 import BINDING_HTTP_POST, samlp

from broker.certificates import write_pair
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import School
from broker.login.replay import bucket_of
from tests.support.client import Browser, Page
from tests.support.forge import (
    NS,
    PublisherForger,
    SchoolForger,
    authn_request_id,
    expire,
    redirect_message,
    saml_time,
    set_audience,
    with_doctype,
)
from tests.support.live import (
    PERSISTENT,
    SSO_COOKIE,
    LiveDemo,
    free_ports,
    running_demo,
)
from tests.support.saml_workers import demo_school_forger, redis_settings, waiting_record, worker

REDIS_URL = "redis://127.0.0.1:6379/14"
OTHER_SCHOOL_ID = "99YY00"
OTHER_SCHOOL_IDP = "https://idp.andere-school.example/saml/metadata"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("refusals-demo")) as live:
        yield live


def _key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    if not key.exists():
        write_pair(key, cert, name)
    return key, cert


@pytest.fixture(scope="module")
def school(demo: LiveDemo) -> SchoolForger:
    return demo_school_forger(demo)


@pytest.fixture(scope="module")
def other_school(demo: LiveDemo) -> SchoolForger:
    """A second school in the registry, with its own IdP and key."""
    key, cert = _key_pair(demo.directory / "peers", "other-school")
    forger = SchoolForger(OTHER_SCHOOL_IDP, key, cert, demo.broker.saml_entities.sp_metadata())
    demo.registry.add_school(
        School(OTHER_SCHOOL_ID, "Andere School", OTHER_SCHOOL_IDP), forger.metadata()
    )
    return forger


@dataclass
class PendingLogin:
    """A login the broker sent on to the demo school; the school has not answered yet."""

    browser: Browser
    request_id: str
    relay_state: str


def start_login(
    demo: LiveDemo, publisher: str = "leesplank", browser: Browser | None = None
) -> PendingLogin:
    browser = browser or Browser()
    page = browser.get(
        f"{demo.publishers[publisher].base_url}/login?school={demo.school_entity_id}",
        stop=lambda url: url.startswith(demo.school_url),
    )
    location = page.location
    assert location is not None and location.startswith(f"{demo.school_url}/sso"), page.url
    _, params = redirect_message(location)
    return PendingLogin(browser, authn_request_id(location), params["RelayState"])


def deliver(demo: LiveDemo, login: PendingLogin, saml_response: str, acs_url: str = "") -> Page:
    return login.browser.post(
        acs_url or demo.acs_url, {"SAMLResponse": saml_response, "RelayState": login.relay_state}
    )


def forged(demo: LiveDemo, forger: SchoolForger, login: PendingLogin, **changes: object) -> str:
    """The school's answer to `login` for Sanne, signed by `forger`, with `changes` applied."""
    args: dict[str, object] = {
        "in_response_to": login.request_id,
        "destination": demo.acs_url,
        "audience": demo.sp_entity_id,
        "subject": demo.school_subject("sanne.jansen"),
    }
    args.update(changes)
    return forger.response(**args)  # type: ignore[arg-type]


def assert_refused(
    demo: LiveDemo,
    browser: Browser,
    page: Page,
    caplog: pytest.LogCaptureFixture,
    codes: tuple[str, ...],
    *,
    had_session: bool = False,
    statuses: range = range(400, 500),
) -> None:
    assert page.status in statuses, (page.status, page.text[:500])
    assert page.location is None, "a refusal redirects nowhere"
    assert SSO_COOKIE not in page.cookies_set
    if not had_session:
        assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(page)
    assert "SAMLResponse" not in page.text
    assert '<p class="error-code">' in page.text  # "Error code:", in the page's language
    logged = [code for code in codes if f"refused code={code} " in caplog.text]
    assert logged, f"none of {codes} in the audit lines: {caplog.text}"
    for publisher in demo.publishers.values():
        received = browser.get(f"{publisher.base_url}/received.json")
        assert received.status == 404, f"{publisher.id} received a login"


# -- the control ------------------------------------------------------------------------------


def test_a_correctly_signed_school_response_is_accepted(
    demo: LiveDemo, school: SchoolForger
) -> None:
    login = start_login(demo)
    page = deliver(demo, login, forged(demo, school, login))
    assert page.status == 200, page.text
    assert SSO_COOKIE in page.cookies_set
    assert demo.answers_publisher(page)
    at_publisher = login.browser.submit(page, demo.publishers["leesplank"].acs_url)
    assert at_publisher.status == 200
    received = demo.received(login.browser, "leesplank")
    assert received["name_id"]["format"] == PERSISTENT
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")


# -- responses from the school's side -----------------------------------------------------------

SchoolCase = Callable[[LiveDemo, SchoolForger, PendingLogin, Path], str]


def _unsigned(demo: LiveDemo, school: SchoolForger, login: PendingLogin, _: Path) -> str:
    return forged(demo, school, login, sign=False)


def _stranger_key(demo: LiveDemo, school: SchoolForger, login: PendingLogin, tmp: Path) -> str:
    key, cert = _key_pair(tmp, "stranger")
    impostor = SchoolForger(
        demo.school_entity_id, key, cert, demo.broker.saml_entities.sp_metadata()
    )
    return forged(demo, impostor, login)


def _wrong_audience(demo: LiveDemo, school: SchoolForger, login: PendingLogin, _: Path) -> str:
    return forged(demo, school, login, tamper=set_audience(demo.publishers["leesplank"].entity_id))


def _expired(demo: LiveDemo, school: SchoolForger, login: PendingLogin, _: Path) -> str:
    # Ten minutes ago, far beyond the 60 s clock skew.
    return forged(demo, school, login, tamper=expire(600))


def _expired_conditions_only(
    demo: LiveDemo, school: SchoolForger, login: PendingLogin, _: Path
) -> str:
    return forged(demo, school, login, tamper=expire(600, subject_confirmation=False))


def _other_request(demo: LiveDemo, school: SchoolForger, login: PendingLogin, _: Path) -> str:
    return forged(demo, school, login, in_response_to="_an-earlier-request-of-someone-else")


def _doctype(demo: LiveDemo, school: SchoolForger, login: PendingLogin, _: Path) -> str:
    return with_doctype(forged(demo, school, login))


def _tampered(change: Callable[[samlp.Response], None]) -> SchoolCase:
    def make(demo: LiveDemo, school: SchoolForger, login: PendingLogin, _: Path) -> str:
        return forged(demo, school, login, tamper=change)

    return make


def _recipient_elsewhere(response: samlp.Response) -> None:
    for confirmation in response.assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.recipient = "https://evil.example/acs"


def _no_audience_restriction(response: samlp.Response) -> None:
    response.assertion.conditions.audience_restriction = []


def _no_destination(response: samlp.Response) -> None:
    response.destination = None


def _sender_vouches_only(response: samlp.Response) -> None:
    for confirmation in response.assertion.subject.subject_confirmation:
        confirmation.method = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"


def _confirmation_without_expiry(response: samlp.Response) -> None:
    for confirmation in response.assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.not_on_or_after = None


def _destination_elsewhere(response: samlp.Response) -> None:
    response.destination = "https://evil.example/acs"


def _not_yet_valid(response: samlp.Response) -> None:
    # Every other window open: only Conditions' NotBefore lies ten minutes ahead.
    response.assertion.conditions.not_before = saml_time(datetime.now(UTC) + timedelta(minutes=10))


def _issued_an_hour_ago(response: samlp.Response) -> None:
    # Every window still open: only the assertion's age gives it away.
    response.assertion.issue_instant = saml_time(datetime.now(UTC) - timedelta(hours=1))


# A time of the school's answer out of bounds: the clock page (SchoolAnswerOutOfTime), 502 as
# the school's other failures; tests/security/test_saml_answer_times.py holds the bounds.
OUT_OF_TIME = ("answer_out_of_time",)

SCHOOL_CASES: dict[str, tuple[SchoolCase, tuple[str, ...]]] = {
    "Recipient elsewhere": (_tampered(_recipient_elsewhere), ("wrong_recipient",)),
    "no AudienceRestriction": (_tampered(_no_audience_restriction), ("wrong_audience",)),
    "signed without Destination": (_tampered(_no_destination), ("wrong_destination",)),
    "sender-vouches, no bearer": (_tampered(_sender_vouches_only), ("wrong_recipient",)),
    "bearer without NotOnOrAfter": (_tampered(_confirmation_without_expiry), ("wrong_recipient",)),
    "issued an hour ago": (_tampered(_issued_an_hour_ago), OUT_OF_TIME),
    "Destination elsewhere": (_tampered(_destination_elsewhere), ("wrong_destination",)),
    "NotBefore in the future": (_tampered(_not_yet_valid), OUT_OF_TIME),
    # pysaml2 reports "neither signed" as a SigverError, which back.py files under the general
    # reason; bad_signature would be the more precise one.
    "unsigned": (_unsigned, ("bad_signature", "response_refused")),
    "key not in the school's metadata": (_stranger_key, ("bad_signature",)),
    "audience of another entity": (_wrong_audience, ("response_refused", "wrong_audience")),
    "expired": (_expired, OUT_OF_TIME),
    "expired conditions, live confirmation": (_expired_conditions_only, OUT_OF_TIME),
    "InResponseTo of another request": (_other_request, ("unsolicited",)),
    "DOCTYPE": (_doctype, ("doctype_refused",)),
}


@pytest.mark.parametrize("case", list(SCHOOL_CASES))
def test_school_response_is_refused(
    demo: LiveDemo,
    school: SchoolForger,
    case: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make, codes = SCHOOL_CASES[case]
    login = start_login(demo)
    page = deliver(demo, login, make(demo, school, login, tmp_path))
    statuses = range(502, 503) if codes == OUT_OF_TIME else range(400, 500)
    assert_refused(demo, login.browser, page, caplog, codes, statuses=statuses)


def test_response_of_another_schools_idp_is_refused(
    demo: LiveDemo, other_school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    """Validly signed by a school the broker knows, but not the school this login went to."""
    login = start_login(demo)
    page = deliver(demo, login, forged(demo, other_school, login))
    assert_refused(demo, login.browser, page, caplog, ("issuer_mismatch",))


def test_response_in_the_schools_name_signed_by_another_schools_key_is_refused(
    demo: LiveDemo, other_school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    peers = demo.directory / "peers"
    impostor = SchoolForger(
        demo.school_entity_id,
        peers / "other-school.key",
        peers / "other-school.crt",
        demo.broker.saml_entities.sp_metadata(),
    )
    login = start_login(demo)
    page = deliver(demo, login, forged(demo, impostor, login))
    assert_refused(demo, login.browser, page, caplog, ("bad_signature",))


def test_response_with_two_signed_assertions_is_refused(
    demo: LiveDemo, school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    """Exactly one assertion: with two, whose identity would the broker pass on?"""
    login = start_login(demo)
    saml_response = school.response_with_two_assertions(
        in_response_to=login.request_id,
        destination=demo.acs_url,
        audience=demo.sp_entity_id,
        subjects=(demo.school_subject("sanne.jansen"), demo.school_subject("daan.devries")),
    )
    doc = etree.fromstring(base64.b64decode(saml_response))
    assert len(doc.findall("saml:Assertion", NS)) == 2
    page = deliver(demo, login, saml_response)
    assert_refused(demo, login.browser, page, caplog, ("assertion_count",))


def _session_ends(seconds: int) -> Callable[[samlp.Response], None]:
    """The school's session (SessionNotOnOrAfter) ends `seconds` from now (negative: ago)."""
    moment = saml_time(datetime.now(UTC) + timedelta(seconds=seconds))

    def tamper(response: samlp.Response) -> None:
        response.assertion.authn_statement[0].session_not_on_or_after = moment

    return tamper


def test_the_sso_session_ends_no_later_than_the_schools(
    demo: LiveDemo, school: SchoolForger
) -> None:
    """SessionNotOnOrAfter caps the broker's SSO session: it vouches for the school's login,
    which the school stops vouching for then. A session over already (by any amount, SAML
    core 2.7.2) answers the login and opens no SSO session at all."""
    login = start_login(demo)
    page = deliver(demo, login, forged(demo, school, login, tamper=_session_ends(3)))
    assert page.status == 200 and demo.answers_publisher(page), page.text[:300]
    token = login.browser.cookies(demo.broker_url)[SSO_COOKIE]
    session = demo.broker.flow.session(token)
    assert session is not None and session[0].session_ends is not None
    time.sleep(3.5)  # the broker's SSO lifetime is hours; this session ends with the school's
    assert demo.broker.flow.session(token) is None

    login = start_login(demo)
    page = deliver(demo, login, forged(demo, school, login, tamper=_session_ends(-10)))
    assert page.status == 200 and demo.answers_publisher(page), page.text[:300]
    assert SSO_COOKIE not in page.cookies_set


def test_replayed_school_response_is_refused(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    captured = demo.school_response(browser, "leesplank", "daan.devries")
    first = browser.post(demo.acs_url, captured)
    assert first.status == 200, first.text
    assert demo.answers_publisher(first)

    second = browser.post(demo.acs_url, captured)
    # The first copy consumed the login; the second finds nothing to complete. In the browser
    # whose login it answered (Back into the school's page), it is told it is signed in.
    assert_already_signed_in(demo, browser, second)
    # Anyone else's copy opens nothing at all.
    stranger = Browser()
    stolen = stranger.post(demo.acs_url, captured)
    assert_refused(demo, stranger, stolen, caplog, ("cookies_blocked",))


def assert_already_signed_in(demo: LiveDemo, browser: Browser, page: Page) -> None:
    """A second answer to a login this browser had answered: no second answer goes anywhere,
    and the page says so, with the way to the platform (nothing of the answer is used)."""
    assert page.status == 200, page.text[:500]
    assert "<h1>You are already signed in to Leesplank (demo publisher)</h1>" in page.text
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in page.text
    assert not demo.answers_publisher(page) and "SAMLResponse" not in page.text
    assert SSO_COOKIE not in page.cookies_set
    for publisher in demo.publishers.values():
        received = browser.get(f"{publisher.base_url}/received.json")
        assert received.status == 404, f"{publisher.id} received a login"


# -- requests from the publishers' side ---------------------------------------------------------


def test_authn_request_of_an_unknown_service_is_refused(
    demo: LiveDemo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key, cert = _key_pair(tmp_path, "unknown-service")
    stranger = PublisherForger(
        "http://localhost:9/metadata",
        "http://localhost:9/acs",
        key,
        cert,
        demo.broker.saml_entities.idp_metadata(),
    )
    browser = Browser()
    page = browser.get(stranger.request_url(f"{demo.broker_url}/saml/idp/sso"))
    assert len(page.visited) == 1
    assert_refused(demo, browser, page, caplog, ("unknown_service",))
    assert "http://localhost:9/acs" not in page.text


@pytest.mark.parametrize("suffix", ["-evil", None])
def test_authn_request_with_an_acs_url_outside_the_metadata_is_refused(
    demo: LiveDemo, suffix: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    leesplank = demo.publishers["leesplank"]
    evil = f"{leesplank.acs_url}{suffix}" if suffix else "javascript:alert(1)"
    peers = demo.directory / "peers"
    as_leesplank = PublisherForger(
        leesplank.entity_id,
        leesplank.acs_url,
        peers / "leesplank.key",
        peers / "leesplank.crt",
        demo.broker.saml_entities.idp_metadata(),
    )
    url = as_leesplank.request_url(f"{demo.broker_url}/saml/idp/sso", acs_url=evil)
    xml, _ = redirect_message(url)
    assert etree.fromstring(xml).get("AssertionConsumerServiceURL") == evil
    browser = Browser()
    page = browser.get(url)
    assert len(page.visited) == 1
    assert_refused(demo, browser, page, caplog, ("acs_not_in_metadata",))
    assert evil not in page.text and "javascript:" not in page.text


# -- two broker instances sharing Redis -----------------------------------------------------------


def _redis_or_skip() -> redis.Redis[bytes]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        client.close()
        pytest.skip(f"Redis at {REDIS_URL} not reachable: {type(error).__name__}")
    return client


def _assertion_id(saml_response: str) -> str:
    doc = etree.fromstring(base64.b64decode(saml_response))
    assertion = doc.find("saml:Assertion", NS)
    assert assertion is not None
    return assertion.get("ID") or ""


@pytest.mark.redis
def test_replay_across_two_instances_sharing_redis(
    demo: LiveDemo, school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers of one broker (one config, one registry, one Redis) behind one origin: an
    assertion accepted by A is refused by B, also when B holds a login record that expects it."""
    store = _redis_or_skip()
    settings = redis_settings(demo, REDIS_URL, "redis")
    port = free_ports(2)
    instance_a, instance_b = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
    try:
        with worker(settings, instance_a), worker(settings, instance_b) as app_b:
            # The publisher sends the student to "the broker"; the load balancer picks A.
            browser = Browser()
            page = browser.get(
                f"{demo.publishers['leesplank'].base_url}/login?school={demo.school_entity_id}",
                stop=lambda url: url.startswith(demo.broker_url),
            )
            assert page.location is not None
            picker = browser.get(page.location.replace(demo.broker_url, instance_a, 1))
            assert picker.url.startswith(f"{demo.school_url}/sso"), picker.url
            request_id = authn_request_id(picker.url)
            answer = browser.submit(picker, f"{demo.school_url}/sso/pick", {"uid": "sanne.jansen"})
            captured = answer.form(demo.acs_url).fields

            accepted = browser.post(f"{instance_a}/saml/sp/acs", captured)
            assert accepted.status == 200, accepted.text
            assert demo.answers_publisher(accepted)
            assertion_id = _assertion_id(captured["SAMLResponse"])
            bucket = bucket_of(request_id)  # an answer's: the request it answers
            assert store.exists(f"kb:replay:{bucket}:saml:{demo.school_entity_id}:{assertion_id}")

            # The same response at B: the login it answered is over, nothing is issued.
            again = browser.post(f"{instance_b}/saml/sp/acs", captured)
            assert_already_signed_in(demo, browser, again)

            # Now let B hold a login record that still waits for exactly that request (a slower
            # twin of the first login): only the shared replay cache stands in the way.
            caplog.clear()
            replayed = browser.post(
                f"{instance_b}/saml/sp/acs",
                {**captured, "RelayState": waiting_record(app_b, browser, demo, request_id)},
            )
            assert_refused(demo, browser, replayed, caplog, ("replay",), had_session=True)

            # Control: a fresh assertion for the same request passes the same record shape on B.
            fresh = school.response(
                in_response_to=request_id,
                destination=demo.acs_url,
                audience=demo.sp_entity_id,
                subject=demo.school_subject("sanne.jansen"),
            )
            passed = browser.post(
                f"{instance_b}/saml/sp/acs",
                {
                    "SAMLResponse": fresh,
                    "RelayState": waiting_record(app_b, browser, demo, request_id),
                },
            )
            assert passed.status == 200, passed.text
            assert demo.answers_publisher(passed)
    finally:
        store.close()


# -- the school says no -------------------------------------------------------------------------

RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
REQUEST_UNSUPPORTED = "urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"
# The school's own StatusMessage: never on the student's page, never in the log.
SCHOOL_TEXT = "the student cancelled at 08:29"


def _error_response(
    demo: LiveDemo,
    school: SchoolForger,
    login: PendingLogin,
    sign: bool,
    second_level: str = RESPONDER,
) -> str:
    """The school's error Response (top-level Responder, `second_level` under it)."""
    return school.error_response(
        in_response_to=login.request_id,
        destination=demo.acs_url,
        status=second_level,
        message=SCHOOL_TEXT,
        sign=sign,
    )


def unsigned_no(
    demo: LiveDemo,
    school: SchoolForger,
    caplog: pytest.LogCaptureFixture,
    second_level: str,
    language: str = "en",
) -> tuple[PendingLogin, Page]:
    """A login the school answers with an unsigned "no" (`second_level` under Responder), and
    the student's page, checked as every such page must be."""
    login = start_login(demo, browser=Browser(language))
    unsigned = _error_response(demo, school, login, sign=False, second_level=second_level)
    page = deliver(demo, login, unsigned)
    assert_told_the_school_said_no(demo, login, page, caplog)
    return login, page


def assert_told_the_school_said_no(
    demo: LiveDemo, login: PendingLogin, page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    """A school's unsigned "no": shown as the school's other failures are (502), with a way on
    for the same login, and nothing ended or sent on. Anyone could have posted it."""
    assert_refused(
        demo, login.browser, page, caplog, ("unsigned_status",), statuses=range(502, 503)
    )
    assert "refused code=unsigned_status status=502 " in caplog.text
    # Nothing of the school's message is repeated, to the student or in the log.
    assert SCHOOL_TEXT not in page.text and SCHOOL_TEXT not in caplog.text
    # "Try again" asks the broker for a fresh request to the same school, for the same login;
    # the school choice is offered for the same login too.
    retry = page.form(f"{demo.broker_url}/discovery")
    assert retry.fields == {
        "login": login.relay_state,
        "school": DEMO_SCHOOL_ID,
        "service": "leesplank",
    }
    assert f'href="/discovery?login={login.relay_state}"' in page.text
    # The button's answer is a redirect to the school: the page's form-action must allow it.
    policy = page.response.headers["Content-Security-Policy"]
    assert f"form-action 'self' {demo.school_url}" in policy
    assert page.response.headers["Cache-Control"] == "no-store"


def assert_sanne_signs_in(demo: LiveDemo, school: SchoolForger, login: PendingLogin) -> None:
    """The school's signed answer to `login`'s request completes it: Leesplank gets Sanne."""
    page = deliver(demo, login, forged(demo, school, login))
    assert page.status == 200, page.text[:500]
    assert demo.answers_publisher(page)
    login.browser.submit(page, demo.publishers["leesplank"].acs_url)
    received = demo.received(login.browser, "leesplank")
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")


def test_an_unsigned_error_status_tells_the_student_and_ends_nothing(
    demo: LiveDemo, school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    login, page = unsigned_no(demo, school, caplog, AUTHN_FAILED)
    assert "<h1>Your school did not sign you in</h1>" in page.text
    assert "Your school&#39;s sign-in service answered that signing in did not succeed." in (
        page.text
    )
    assert "the button below takes you back to your school" in page.text
    # The school's real answer still completes the login: the unsigned "no" consumed nothing.
    assert_sanne_signs_in(demo, school, login)


def test_try_again_after_an_unsigned_no_goes_back_to_the_school_for_the_same_login(
    demo: LiveDemo, school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    """In Dutch (informal), an access policy's "no"; the button sends the student to the
    school again with a fresh request, and the school's signed answer to it completes the
    login the platform started."""
    login, page = unsigned_no(demo, school, caplog, REQUEST_DENIED, "nl")
    assert '<html lang="nl">' in page.text
    assert "<h1>Je school heeft je niet ingelogd</h1>" in page.text
    assert "De inlogdienst van je school antwoordde dat hij deze inlog niet toestaat." in page.text
    assert ">Opnieuw proberen</button>" in page.text
    assert ">Kies je school opnieuw.</a>" in page.text

    try_again_and_sign_in(demo, school, login, page)


def try_again_and_sign_in(
    demo: LiveDemo, school: SchoolForger, login: PendingLogin, page: Page
) -> None:
    """The page's "Try again": the same login goes to the school with a fresh request, and the
    school's signed answer to it completes the login."""
    to_school = login.browser.submit(page, f"{demo.broker_url}/discovery", follow=False)
    assert to_school.status == 303
    location = to_school.location or ""
    assert location.startswith(f"{demo.school_url}/sso"), location
    _, params = redirect_message(location)
    again = PendingLogin(login.browser, authn_request_id(location), params["RelayState"])
    assert again.relay_state == login.relay_state, "the same login"
    assert again.request_id != login.request_id, "a fresh request"
    assert_sanne_signs_in(demo, school, again)


def test_an_unsigned_status_the_page_does_not_word_says_only_not_signed_in(
    demo: LiveDemo, school: SchoolForger, caplog: pytest.LogCaptureFixture
) -> None:
    login, page = unsigned_no(demo, school, caplog, REQUEST_UNSUPPORTED)
    assert "Your school&#39;s sign-in service did not sign you in." in page.text
    assert "answered that" not in page.text
    # The school choice for the same login opens (another school, or the same one again).
    choice = login.browser.get(f"{demo.broker_url}/discovery?login={login.relay_state}")
    assert choice.status == 200 and demo.shows_discovery(choice)


def test_a_signed_error_response_tells_the_service(demo: LiveDemo, school: SchoolForger) -> None:
    login = start_login(demo)
    page = deliver(demo, login, _error_response(demo, school, login, sign=True))
    assert page.status == 502, page.text[:500]
    assert SSO_COOKIE not in page.cookies_set
    # The page's button ends the login at the broker, which then sends a signed AuthnFailed
    # to the publisher's ACS.
    told = back_to_platform(demo, login, page)
    assert _status_codes(told) == [RESPONDER, AUTHN_FAILED]
    assert "Assertion" not in base64.b64decode(_form_field(told.text, "SAMLResponse")).decode()
    # And the login is over: the school's late success is refused.
    late = deliver(demo, login, forged(demo, school, login))
    assert late.status == 400


def back_to_platform(demo: LiveDemo, login: PendingLogin, page: Page) -> Page:
    """The page's "Back to <platform>": a POST to the broker, which takes the login and answers
    with the auto-post page that carries the refusal to the publisher's ACS."""
    button = page.form(f"{demo.broker_url}/back-to-platform")
    assert button.fields == {"login": login.relay_state}
    told = login.browser.submit(page, f"{demo.broker_url}/back-to-platform")
    assert told.status == 200, told.text[:500]
    assert told.form(demo.publishers["leesplank"].acs_url).css_class == "autopost"
    return told


@pytest.mark.parametrize(
    ("second_level", "said"),
    [
        (AUTHN_FAILED, "De inlogdienst van je school antwoordde dat het inloggen niet is gelukt."),
        (
            REQUEST_DENIED,
            "De inlogdienst van je school antwoordde dat hij deze inlog niet toestaat.",
        ),
    ],
)
def test_a_signed_no_says_what_the_school_answered_and_offers_to_try_again(
    demo: LiveDemo, school: SchoolForger, second_level: str, said: str
) -> None:
    """A school that signs its "no" gets the page an unsigned one gets (what the school
    answered, "Try again", the school choice), and the platform can still be told: the page's
    button carries a signed AuthnFailed to it. "Try again" goes to the school with a fresh
    request for the same login, whose signed answer completes it."""
    login = start_login(demo, browser=Browser("nl"))
    signed_no = _error_response(demo, school, login, sign=True, second_level=second_level)
    page = deliver(demo, login, signed_no)
    assert page.status == 502, page.text[:500]
    assert SSO_COOKIE not in page.cookies_set
    assert "<h1>Je school heeft je niet ingelogd</h1>" in page.text
    assert said in page.text
    assert "over een paar minuten" not in page.text
    assert SCHOOL_TEXT not in page.text
    # The platform can be told, by the student's button, through the broker (below).
    assert "SAMLResponse" not in page.text
    assert ">Terug naar Leesplank (demo publisher)</button>" in page.text
    # And the way on at the school, for the same login.
    retry = page.form(f"{demo.broker_url}/discovery")
    assert retry.fields["login"] == login.relay_state
    assert retry.fields["school"] == DEMO_SCHOOL_ID
    assert ">Opnieuw proberen</button>" in page.text
    assert f'href="/discovery?login={login.relay_state}">Kies je school opnieuw.</a>' in page.text
    policy = page.response.headers["Content-Security-Policy"]
    assert demo.school_url in policy and demo.publishers["leesplank"].base_url in policy
    assert page.response.headers["Cache-Control"] == "no-store"
    # The school choice opens for the same login (another school, or the same again).
    choice = login.browser.get(f"{demo.broker_url}/discovery?login={login.relay_state}")
    assert choice.status == 200 and demo.shows_discovery(choice)

    try_again_and_sign_in(demo, school, login, page)


def test_an_error_status_is_never_read_as_a_login(
    demo: LiveDemo,
    school: SchoolForger,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pysaml2 names an error status by raising; were it ever to return instead, with a parsed
    login in hand, the broker reads none of it: `status_parse_mismatch`, and no login."""
    login = start_login(demo)
    (entry,) = demo.registry.schools_by_idp(demo.school_entity_id)
    client = demo.broker.saml_entities.client
    success = client.parse_authn_request_response(
        forged(demo, school, login),
        BINDING_HTTP_POST,
        outstanding={login.request_id: entry.id},
    )
    assert success.assertion is not None, "what pysaml2 hands back carries an assertion"
    monkeypatch.setattr(client, "parse_authn_request_response", lambda *a, **k: success)
    page = deliver(demo, login, _error_response(demo, school, login, sign=True))
    assert_refused(demo, login.browser, page, caplog, ("status_parse_mismatch",))


def _status_codes(page: Page) -> list[str | None]:
    """The status codes of the error Response the page's button carries to the publisher."""
    answer = etree.fromstring(base64.b64decode(_form_field(page.text, "SAMLResponse")))
    return [c.get("Value") for c in answer.iter("{urn:oasis:names:tc:SAML:2.0:protocol}StatusCode")]


def _form_field(page: str, name: str) -> str:
    import html
    import re

    match = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert match, f"no {name} on the page"
    return html.unescape(match.group(1))
