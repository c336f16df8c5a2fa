"""Receipts, the information notice and the my-data page, end to end with real clients.

Every completed login, in every protocol pairing, leaves one receipt with attribute names, the
policy version, the pairing and the receipt subject, and nothing else. The notice shows before
the first answer of an SSO session to a service, not again in that session, and again when the
release changes; `changes` mode skips it for a student whose last receipt shows the same
release. The my-data page shows a student exactly their own receipts.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from hashlib import sha256
from urllib.parse import urlsplit

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.core.errors import StoreUnavailable
from broker.core.model import Declaration, Release, UpstreamIdentity
from broker.core.receipts import Receipt, receipt_content
from broker.registry.receipts import ReceiptQuery
from broker.web.browser import BROWSER_COOKIE, SSO_COOKIE
from tests.flows.test_all_pairings import log_in
from tests.support.client import Browser, Page, _host
from tests.support.live import LiveDemo, OidcPublisher
from tests.support.receipts import my_data_groups

UID = "fatima.elamrani"
OTHER = "daan.devries"


def newest(demo: LiveDemo, school: str, count: int = 1) -> list[Receipt]:
    return demo.broker.receipts.find(ReceiptQuery(school), limit=count)


def notice_form(page: Page) -> dict[str, str] | None:
    for form in page.forms:
        if "/notice/" in form.action:
            return {"action": form.action, **form.fields}
    return None


@pytest.fixture
def notice_service(demo: LiveDemo) -> Iterator[str]:
    """A publisher of this test's own that declares two attributes; the school releases one."""
    service_id = f"notice-{len(demo.publishers)}"
    demo.add_publisher(
        service_id,
        "leermiddelen",
        (
            Declaration("groups", "To put the student in the right class."),
            Declaration("given_name", "To greet the student."),
        ),
        released=frozenset({"groups"}),
    )
    yield service_id


@pytest.mark.parametrize("school", [DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID])
@pytest.mark.parametrize("publisher", ["leesplank", OIDC_PUBLISHER_ID])
def test_every_pairing_writes_one_receipt_without_personal_data(
    demo: LiveDemo,
    woordwijs: OidcPublisher,
    school: str,
    publisher: str,
) -> None:
    before = newest(demo, school)
    log_in(demo, Browser(), publisher, school)
    (receipt,) = newest(demo, school)
    assert not before or receipt.seq == before[0].seq + 1
    content = receipt.content
    assert content.service_id == publisher and content.school_id == school
    assert content.school_protocol == ("oidc" if school == DEMO_OIDC_SCHOOL_ID else "saml")
    assert content.service_protocol == ("oidc" if publisher == OIDC_PUBLISHER_ID else "saml")
    assert content.chain_id == "leermiddelen"
    policy = demo.registry.policy(school, publisher)
    assert set(content.attributes) <= set(policy.attributes)
    assert content.policy_version == policy.version
    assert re.fullmatch(r"[0-9a-f]{64}", content.subject)
    text = content.canonical()
    assert UID not in text and "Fatima" not in text
    assert demo.expected_pseudonym(UID, "leermiddelen") not in text
    assert demo.broker.receipts.verify(school).problem is None


def test_the_receipt_subject_is_one_per_chain_for_a_student_across_services_and_logins(
    demo: LiveDemo,
) -> None:
    """Leesplank and Rekenroute are in one chain (leermiddelen): one subject, as one
    pseudonym. A service in no chain is a chain of its own: another subject, so receipts with
    their exact times cannot link a student's pseudonyms of two chains."""
    own_chain = f"own-chain-{len(demo.publishers)}"
    demo.add_publisher(own_chain, None, ())
    log_in(demo, Browser(), "leesplank", DEMO_SCHOOL_ID)
    first = newest(demo, DEMO_SCHOOL_ID)[0].content.subject
    log_in(demo, Browser(), "rekenroute", DEMO_SCHOOL_ID)
    assert newest(demo, DEMO_SCHOOL_ID)[0].content.subject == first
    demo.login(Browser(), own_chain, UID)
    (elsewhere,) = newest(demo, DEMO_SCHOOL_ID)
    assert elsewhere.content.service_id == own_chain and elsewhere.content.chain_id is None
    assert elsewhere.content.subject != first
    identity = UpstreamIdentity(DEMO_SCHOOL_ID, demo.school_subject(UID))
    school = demo.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    keys = demo.broker.receipting.keys
    assert keys.subject(school, identity, "leermiddelen") == first
    assert keys.subject(school, identity, f"service:{own_chain}") == elsewhere.content.subject


def old_receipt(demo: LiveDemo, uid: str, service_id: str, attributes: frozenset[str]) -> None:
    """File a receipt as the release before per-chain subjects did: its subject the same in
    every chain, HMAC(old subject key, field(namespace) || field(subject))."""
    school, service = demo.registry.school(DEMO_SCHOOL_ID), demo.registry.service(service_id)
    assert school is not None and service is not None
    identity = UpstreamIdentity(DEMO_SCHOOL_ID, demo.school_subject(uid))
    keys = demo.broker.receipting.keys
    release = Release("p" * 64, {a: ("x",) for a in attributes}, 1)
    content = receipt_content(
        keys,
        issued_at=int(time.time()),
        school=school,
        service=service,
        identity=identity,
        release=release,
    )
    message = _field(f"school:{DEMO_SCHOOL_ID}") + _field(demo.school_subject(uid))
    subject = hmac.new(keys.legacy_subject_key, message, sha256).hexdigest()
    demo.broker.receipts.append(replace(content, subject=subject))


def _field(value: str) -> bytes:
    return len(value.encode()).to_bytes(4, "big") + value.encode()


def test_changes_mode_counts_a_receipt_from_before_per_chain_subjects(
    demo: LiveDemo, notice_service: str
) -> None:
    """Across the upgrade: a student whose last receipt for the service was filed with the old
    subject, for the same release, does not see the notice again in `changes` mode."""
    demo.broker.receipts.set_notice_mode(DEMO_SCHOOL_ID, notice_service, "changes")
    old_receipt(demo, UID, notice_service, frozenset({"groups"}))
    again = demo.login(Browser(read_notices=False), notice_service, UID, deliver=False)
    assert notice_form(again.final) is None and demo.answers_publisher(again.final)
    # Another student has no receipt, old or new: the notice shows.
    other = demo.login(Browser(read_notices=False), notice_service, OTHER)
    assert notice_form(other.final) is not None


def test_notice_first_visit_not_second_again_after_a_policy_change(
    demo: LiveDemo, notice_service: str
) -> None:
    browser = Browser(read_notices=False)
    first = demo.login(browser, notice_service, UID)
    form = notice_form(first.final)
    assert form is not None, first.final.text[:500]
    assert (
        "Class" in first.final.text and "To put the student in the right class." in first.final.text
    )
    assert "To greet the student." not in first.final.text  # declared, but not released
    assert not demo.answers_publisher(first.final)
    # The notice comes with the school's answer, but it names an address of its own (which the
    # page's script puts in the browser's history): a reload or the language switch there
    # shows it again.
    address = re.search(r'data-page-address="(/notice/[^"]+)"', first.final.text)
    assert address is not None, first.final.text[:500]
    assert f'href="{address.group(1)}?lang=nl"' in first.final.text  # the language switch
    dutch = browser.get(f"{demo.broker_url}{address.group(1)}?lang=nl")
    assert dutch.status == 200 and "Verder naar" in dutch.text and notice_form(dutch) is not None
    before = newest(demo, DEMO_SCHOOL_ID)[0].seq
    # No receipt and no answer until the student continues.
    answered = browser.post(form.pop("action"), form)
    assert demo.answers_publisher(answered)
    assert newest(demo, DEMO_SCHOOL_ID)[0].seq == before + 1
    browser.submit(answered, demo.publishers[notice_service].acs_url)
    # The same notice cannot be continued twice: a second "Continue" (and the Back button to
    # its address) says the student is signed in already (in Dutch: the `?lang=nl` above
    # stays), and answers no one again.
    again = browser.post(first.final.forms[0].action, {"continue": "1"})
    assert again.status == 200 and "Je bent al ingelogd bij" in again.text, again.text[:300]
    assert not demo.answers_publisher(again)
    assert newest(demo, DEMO_SCHOOL_ID)[0].seq == before + 1

    second = demo.login(browser, notice_service, UID, deliver=False)
    assert notice_form(second.final) is None and demo.answers_publisher(second.final)

    demo.registry.set_policy(
        DEMO_SCHOOL_ID, notice_service, frozenset({"groups", "given_name"}), "test"
    )
    third = demo.login(browser, notice_service, UID, deliver=False)
    assert notice_form(third.final) is not None
    assert "To greet the student." in third.final.text


def test_changes_mode_shows_the_notice_once_per_student_until_the_release_changes(
    demo: LiveDemo, notice_service: str
) -> None:
    demo.broker.receipts.set_notice_mode(DEMO_SCHOOL_ID, notice_service, "changes")
    first = demo.login(Browser(read_notices=False), notice_service, UID)
    assert notice_form(first.final) is not None  # never visited: shown
    demo.login(Browser(), notice_service, UID)  # reads it and continues
    again = demo.login(Browser(read_notices=False), notice_service, UID, deliver=False)
    assert notice_form(again.final) is None and demo.answers_publisher(again.final)
    other = demo.login(Browser(read_notices=False), notice_service, OTHER)
    assert notice_form(other.final) is not None  # another student: never visited
    demo.registry.set_policy(DEMO_SCHOOL_ID, notice_service, frozenset(), "test")
    changed = demo.login(Browser(read_notices=False), notice_service, UID)
    assert notice_form(changed.final) is not None


GROUPS_PURPOSE = "To put the student in the right class."
NEW_PURPOSE = "Om klasgegevens te verkopen aan adverteerders."


def declare_groups(demo: LiveDemo, service_id: str, purpose: str) -> frozenset[str]:
    """The publisher saves `purpose` for groups (given_name as it was); the attributes whose
    purpose of record changed (the school's release of them stopped)."""
    replaced = demo.registry.set_declarations(
        service_id,
        (Declaration("groups", purpose), Declaration("given_name", "To greet the student.")),
        "test",
    )
    return replaced.purpose_changed


def test_changes_mode_shows_a_new_purpose_once_after_the_school_shares_it_again(
    demo: LiveDemo, notice_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The student's last receipt names the same attributes, but one of them has a new purpose
    since (the school ticked it again after the broker stopped it): the notice shows it. New
    words for the same purpose do not; once read under the new purpose, not again."""
    demo.broker.receipts.set_notice_mode(DEMO_SCHOOL_ID, notice_service, "changes")
    demo.login(Browser(), notice_service, UID)  # reads the notice and continues
    assert not declare_groups(demo, notice_service, GROUPS_PURPOSE.lower().rstrip("."))
    reworded = demo.login(Browser(read_notices=False), notice_service, UID, deliver=False)
    assert notice_form(reworded.final) is None and demo.answers_publisher(reworded.final)

    assert declare_groups(demo, notice_service, NEW_PURPOSE) == {"groups"}
    demo.registry.set_policy(DEMO_SCHOOL_ID, notice_service, frozenset({"groups"}), "test")
    shown = demo.login(Browser(read_notices=False), notice_service, UID, deliver=False)
    assert notice_form(shown.final) is not None and NEW_PURPOSE in shown.final.text
    assert not demo.answers_publisher(shown.final)
    assert newest(demo, DEMO_SCHOOL_ID)[0].content.attributes == ("groups",)  # the earlier one

    # Read and continued a while after the change (receipts of the margin's seconds after it
    # count as before: a worker's view may still have shown the old purpose).
    monkeypatch.setattr(demo.broker.receipting, "clock", lambda: time.time() + 60)
    demo.login(Browser(), notice_service, UID)
    again = demo.login(Browser(read_notices=False), notice_service, UID, deliver=False)
    assert notice_form(again.final) is None and demo.answers_publisher(again.final)


def sso_mark(demo: LiveDemo, browser: Browser, service_id: str) -> str:
    services = demo.broker.session_services.read(browser.cookies(demo.broker_url)[SSO_COOKIE])
    participant = services.get(service_id)
    assert participant is not None
    return participant.seen


def test_a_new_purpose_shows_the_notice_again_in_the_same_session(
    demo: LiveDemo, notice_service: str
) -> None:
    """The session's mark says which purposes the student read, not only which attributes."""
    browser = Browser()
    demo.login(browser, notice_service, UID)  # reads the notice and continues
    browser.read_notices = False
    assert sso_mark(demo, browser, notice_service).startswith("v2:")
    assert not declare_groups(demo, notice_service, GROUPS_PURPOSE.upper())
    same = demo.login(browser, notice_service, UID, deliver=False)
    assert notice_form(same.final) is None and demo.answers_publisher(same.final)
    declare_groups(demo, notice_service, NEW_PURPOSE)
    demo.registry.set_policy(DEMO_SCHOOL_ID, notice_service, frozenset({"groups"}), "test")
    shown = demo.login(browser, notice_service, UID, deliver=False)
    assert notice_form(shown.final) is not None and NEW_PURPOSE in shown.final.text


def test_a_session_mark_of_names_only_counts_until_a_purpose_changes(
    demo: LiveDemo, notice_service: str
) -> None:
    """COMPAT(notice-names-only): a session open across the upgrade holds the mark an older
    worker wrote (`v1:` and the names). It still spares the student the notice they read in
    this session, until a released attribute's purpose begins after the session's login."""
    browser = Browser()
    demo.login(browser, notice_service, UID)
    browser.read_notices = False
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    services = demo.broker.session_services.read(token)
    participant = services.get(notice_service)
    assert participant is not None
    demo.broker.session_services.record(token, services, replace(participant, seen="v1:groups"))
    kept = demo.login(browser, notice_service, UID, deliver=False)
    assert notice_form(kept.final) is None and demo.answers_publisher(kept.final)
    # The answer's write puts the current mark in its place: from now on it names purposes.
    assert sso_mark(demo, browser, notice_service).startswith("v2:")
    demo.broker.session_services.record(token, services, replace(participant, seen="v1:groups"))
    declare_groups(demo, notice_service, NEW_PURPOSE)
    demo.registry.set_policy(DEMO_SCHOOL_ID, notice_service, frozenset({"groups"}), "test")
    shown = demo.login(browser, notice_service, UID, deliver=False)
    assert notice_form(shown.final) is not None and NEW_PURPOSE in shown.final.text


def my_data(demo: LiveDemo, browser: Browser, uid: str) -> Page:
    page = browser.get(f"{demo.broker_url}/my-data/sign-in")
    if demo.shows_discovery(page):
        page = demo.choose_school(browser, page)
    if page.url.startswith(f"{demo.school_url}/sso"):
        page = demo.pick(browser, page, uid)
    assert page.status == 200, page.text[:500]
    assert page.url.startswith(f"{demo.broker_url}/my-data/view/"), page.url
    return page


def shared_groups(html: str) -> list[tuple[str, int]]:
    """The my-data page's "what was shared" lines (English): (the line, how many receipts)."""
    found = []
    for card, group in my_data_groups(html):
        count = re.search(r"data-when>(\d+) times?, ", group)
        assert count is not None, group
        found.append((card + group, int(count.group(1))))
    return found


def all_subjects(demo: LiveDemo, uid: str) -> tuple[str, ...]:
    """The student's subject in every chain a receipt can name, and the old one."""
    school = demo.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    identity = UpstreamIdentity(DEMO_SCHOOL_ID, demo.school_subject(uid))
    chains = demo.registry.receipt_chains()
    return demo.broker.receipting.keys.subjects(school, identity, chains)


def test_my_data_shows_exactly_the_students_own_receipts(
    demo: LiveDemo, notice_service: str
) -> None:
    fatima, daan = Browser(), Browser()
    demo.login(fatima, notice_service, UID)
    demo.login(fatima, "rekenroute", UID)
    demo.login(daan, notice_service, OTHER)
    own = demo.broker.receipts.history(all_subjects(demo, UID))

    page = my_data(demo, fatima, UID)  # the SSO session answers
    groups = shared_groups(page.text)
    # One line per platform and set of attributes, counting every receipt once.
    assert sum(count for _, count in groups) == sum(h.count for h in own) >= 2
    expected = {(h.service_id, frozenset(h.attributes)) for h in own}
    assert len(groups) == len(expected)
    assert sum("Rekenroute" in group for group, _ in groups) >= 1
    assert "mailto:privacy@demo-school.example" in page.text
    # The address itself as text, for a parent to read and copy (not only a link).
    assert "E-mail <a" in page.text and ">privacy@demo-school.example</a>" in page.text
    assert "You signed in through" in page.text
    # Counted from the oldest receipt kept (`receipts prune` removes older ones): "since".
    assert "Your sign-ins are counted since " in page.text and "The first time" not in page.text

    other = my_data(demo, daan, OTHER)
    groups = shared_groups(other.text)
    theirs = demo.broker.receipts.history(all_subjects(demo, OTHER))
    assert any(h.service_id == notice_service for h in theirs)
    assert sum(count for _, count in groups) == sum(h.count for h in theirs)
    # Fatima's Rekenroute login shows only on her page (the shared demo may hold Daan's own).
    own_rekenroute = sum(h.count for h in theirs if h.service_id == "rekenroute")
    assert sum(count for group, count in groups if "Rekenroute" in group) == own_rekenroute
    # The view belongs to the browser that signed in: another browser cannot open it, and is
    # told the page expired (with the way to open it), not to allow cookies.
    elsewhere = Browser().get(page.url)
    assert elsewhere.status == 400
    assert "This page has expired" in elsewhere.text and 'href="/my-data"' in elsewhere.text
    assert Browser().get(f"{demo.broker_url}/my-data/view/{'x' * 80}").status == 400


def test_my_data_shows_a_students_receipts_of_every_chain_and_from_before_the_upgrade(
    demo: LiveDemo,
) -> None:
    """One student, receipts in two chains (leermiddelen, and a service in none) and one filed
    with the old chain-independent subject: the page shows them all, with a code per subject,
    and no other student's."""
    own_chain = f"own-chain-{len(demo.publishers)}"
    demo.add_publisher(own_chain, None, ())
    student, browser = "sanne.jansen", Browser()
    before = sum(count for _, count in shared_groups(my_data(demo, browser, student).text))
    old_receipt(demo, student, "leesplank", frozenset({"given_name"}))
    demo.login(browser, own_chain, student)
    demo.login(browser, "rekenroute", student)
    old_receipt(demo, OTHER, own_chain, frozenset())  # Daan's: not on Sanne's page
    mine = newest(demo, DEMO_SCHOOL_ID, 4)[1:]
    assert len({r.content.subject for r in mine}) == 3
    page = my_data(demo, Browser(), student)
    groups = shared_groups(page.text)
    assert sum(count for _, count in groups) == before + 3
    assert sum(count for group, count in groups if own_chain in group) == 1
    codes = set(re.findall(r"<code data-student-code>([0-9a-f]{16})</code>", page.text))
    assert codes >= {r.content.subject[:16] for r in mine}
    assert mine[0].content.subject[:16] not in my_data(demo, Browser(), OTHER).text


def test_my_data_view_of_one_student_does_not_open_in_another_students_browser(
    demo: LiveDemo,
) -> None:
    fatima, daan = Browser(), Browser()
    page = my_data(demo, fatima, UID)
    my_data(demo, daan, OTHER)
    refused = daan.get(page.url)
    assert refused.status == 400
    # No platform is part of it: the way on is the my-data page again, not "back to the platform".
    assert "This page has expired" in refused.text
    assert 'href="/my-data"' in refused.text
    assert "learning platform" not in refused.text


def test_a_policy_changed_while_the_notice_is_open_shows_the_new_notice(
    demo: LiveDemo, notice_service: str
) -> None:
    """The release is computed again on Continue (from the worker's cached view, which a change
    moves on at once in this process): what the student agreed to see is what is sent."""
    browser = Browser(read_notices=False)
    held = demo.login(browser, notice_service, UID)
    form = notice_form(held.final)
    assert form is not None and "To greet the student." not in held.final.text
    demo.registry.set_policy(
        DEMO_SCHOOL_ID, notice_service, frozenset({"groups", "given_name"}), "test"
    )

    def head() -> int:
        found = newest(demo, DEMO_SCHOOL_ID)
        return found[0].seq if found else 0

    before = head()
    again = browser.post(form.pop("action"), form)
    assert not demo.answers_publisher(again)
    assert notice_form(again) is not None and "To greet the student." in again.text
    assert head() == before  # no receipt for the release the student has not seen
    form = notice_form(again)
    assert form is not None
    assert demo.answers_publisher(browser.post(form.pop("action"), form))
    assert head() == before + 1


def test_a_notice_left_open_cannot_continue_after_the_sso_session_ended(
    demo: LiveDemo, notice_service: str
) -> None:
    browser = Browser(read_notices=False)
    first = demo.login(browser, "leesplank", UID)  # opens the SSO session (and its notice)
    form = notice_form(first.final)
    assert form is not None
    demo.answers_publisher(browser.post(form.pop("action"), form))
    # The second platform is answered from the session, after its own notice.
    held = demo.login(browser, notice_service, UID, deliver=False)
    form = notice_form(held.final)
    assert form is not None
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    demo.broker.flow.end_session(token)  # logout, or the session's end, meanwhile
    before = newest(demo, DEMO_SCHOOL_ID)[0].seq
    refused = browser.post(form.pop("action"), form)
    assert refused.status == 400, refused.text[:300]
    assert not demo.answers_publisher(refused)
    assert newest(demo, DEMO_SCHOOL_ID)[0].seq == before  # no receipt


def test_a_login_whose_receipt_cannot_be_written_is_not_answered(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(content: object) -> Receipt:
        raise StoreUnavailable("registry database: OperationalError")

    monkeypatch.setattr(demo.broker.receipts, "append", unavailable)
    browser = Browser()
    login = demo.login(browser, "rekenroute", UID)
    assert login.final.status == 503, login.final.text[:300]
    assert not demo.answers_publisher(login.final)
    # No half-login: the SSO session opened for it was removed again.
    token = browser.cookies(demo.broker_url).get(SSO_COOKIE)
    assert token is None or demo.broker.flow.session(token) is None


def test_a_browser_that_lost_its_session_cookie_still_continues_past_the_notice(
    demo: LiveDemo, notice_service: str
) -> None:
    # A restarted browser keeps the persistent SSO cookie but not the session cookie with its
    # secret: the request that answers from the SSO session and holds the notice makes one new
    # secret, and holds the notice under the very secret its cookie carries.
    browser = Browser(read_notices=False)
    first = demo.login(browser, "leesplank", UID)
    form = notice_form(first.final)
    assert form is not None
    assert demo.answers_publisher(browser.post(form.pop("action"), form))
    browser.jar[_host(demo.broker_url)].pop(BROWSER_COOKIE)
    held = demo.login(browser, notice_service, UID, deliver=False)
    form = notice_form(held.final)
    assert form is not None, held.final.text[:300]
    # The SSO answer and the notice both hold state under the new secret: one cookie carries it.
    cookie_lines = held.final.response.raw.headers.getlist("Set-Cookie")
    assert sum(line.startswith(f"{BROWSER_COOKIE}=") for line in cookie_lines) == 1
    assert demo.answers_publisher(browser.post(form.pop("action"), form))


def test_a_resent_answer_at_the_notice_shows_the_notice_again(
    demo: LiveDemo, notice_service: str
) -> None:
    # What a browser may send on a reload after history.replaceState (WebKit keeps the POST):
    # the school's answer again, to the notice's address. The notice is shown, not continued.
    browser = Browser(read_notices=False)
    first = demo.login(browser, notice_service, UID)
    form = notice_form(first.final)
    assert form is not None
    before = newest(demo, DEMO_SCHOOL_ID)[0].seq
    resent = browser.post(
        form["action"], {"SAMLResponse": "PHNhbWxwOlJlc3BvbnNlLz4=", "RelayState": "x"}
    )
    assert (
        resent.status == 200 and resent.url == f"{demo.broker_url}{urlsplit(form['action']).path}"
    )
    assert notice_form(resent) is not None and not demo.answers_publisher(resent)
    assert newest(demo, DEMO_SCHOOL_ID)[0].seq == before
    # The held login is still there: the student's own "Continue" ends it.
    assert demo.answers_publisher(browser.post(form.pop("action"), form))
