"""The information notice's mark in the core: the released names with each one's purpose of
record; a receipt compared by its time with when each purpose began; a mark from before purposes
counted (COMPAT) only while no purpose began after its session's login. And who "the same
student" is when a session is replaced: the pseudonym's input, never the school's subject alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from broker.core.model import Declaration, School, Service, UpstreamIdentity
from broker.core.notice_release import (
    PURPOSE_CHANGE_MARGIN_SECONDS,
    Since,
    names_only_mark,
    notice_release,
    purposes_since,
)
from broker.core.pseudonym import same_student, student_key
from broker.core.pseudonym_rotation import PREVIOUS_PSEUDONYM_RECEIPT_NAME
from broker.login.participants import Participant, SessionServices

GROUPS = Declaration("groups", "Om de leerling in de juiste klas te zetten.")
NAME = Declaration("given_name", "Om de leerling te begroeten.")
SERVICE = Service("leesplank", "Leesplank", "https://sp.example", None, declarations=(GROUPS, NAME))
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def declared(*declarations: Declaration) -> Service:
    return replace(SERVICE, declarations=declarations)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0.timestamp() + seconds, UTC)


def test_the_fingerprint_follows_names_and_purposes_of_record() -> None:
    both = notice_release(SERVICE, ["groups", "given_name"])
    assert both == notice_release(SERVICE, ["given_name", "groups"])
    assert both.attributes == ("given_name", "groups")
    assert both.fingerprint.startswith("v2:")
    assert notice_release(SERVICE, ["groups"]).fingerprint != both.fingerprint
    # A key rotation's previous pseudonym: the service held it already.
    with_previous = notice_release(SERVICE, ["groups", PREVIOUS_PSEUDONYM_RECEIPT_NAME])
    assert with_previous == notice_release(SERVICE, ["groups"])
    # New words for the same purpose (a capital, a full stop, an English text): the same.
    reworded = replace(GROUPS, purpose="om de leerling in de juiste klas te zetten", purpose_en="x")
    assert notice_release(declared(reworded, NAME), ["groups"]) == notice_release(
        SERVICE, ["groups"]
    )
    # A new purpose: another release for the notice, though the names are the same.
    sold = replace(GROUPS, purpose="Om klasgegevens te verkopen aan adverteerders.")
    changed = notice_release(declared(sold, NAME), ["groups"])
    assert changed.attributes == ("groups",)
    assert changed.fingerprint != notice_release(SERVICE, ["groups"]).fingerprint


def test_purposes_since_is_when_the_current_purpose_of_record_began() -> None:
    sold = replace(GROUPS, purpose="Om klasgegevens te verkopen aan adverteerders.")
    history = [
        (1, (GROUPS, NAME), at(0)),
        (2, (sold, NAME), at(100)),  # a new purpose for groups
        (3, (replace(sold, purpose=sold.purpose.upper()), NAME), at(200)),  # reworded only
        (4, (replace(sold, purpose=sold.purpose.upper()),), at(300)),  # given_name removed
        (5, (sold, NAME), at(400)),  # given_name declared again
    ]
    assert purposes_since(history) == {
        "groups": at(100).timestamp(),
        "given_name": at(400).timestamp(),
    }
    # Registered and never changed: no beginning known, nothing to compare.
    assert purposes_since(history[:1]) == {}
    assert purposes_since([]) == {}
    # A history that lacks the version before (rebuilt from a file): no change known.
    assert purposes_since([history[0], *history[2:3]]) == {}


def since_of(found: Mapping[str, float]) -> tuple[list[int], Since]:
    """`found`, as the registry's view gives it, counting how often it is asked."""
    asked: list[int] = []

    def since() -> Mapping[str, float]:
        asked.append(1)
        return found

    return asked, since


def test_a_receipt_shows_the_release_when_written_after_each_purpose_began() -> None:
    release = notice_release(SERVICE, ["groups"])
    changed = T0.timestamp()
    asked, since = since_of({"groups": changed})
    before, after = int(changed) - 3600, int(changed + PURPOSE_CHANGE_MARGIN_SECONDS) + 1
    assert not release.receipt_shows(["groups"], before, since)
    assert release.receipt_shows(["groups"], after, since)
    # Within the margin: a worker may still have shown the old purpose.
    assert not release.receipt_shows(["groups"], int(changed) + 1, since)
    # A purpose with no known change: the names decide, whatever the receipt's age.
    assert release.receipt_shows(["groups"], before, lambda: {"given_name": changed})
    assert not release.receipt_shows(["given_name"], after, lambda: {})
    # Other names: the registry's view is not asked.
    asked.clear()
    assert not release.receipt_shows(["groups", "given_name"], after, since)
    assert asked == []


def test_a_mark_from_before_purposes_counts_only_while_no_purpose_began_after_its_session() -> None:
    release = notice_release(SERVICE, ["groups"])
    old = names_only_mark(("groups",))
    assert old == "v1:groups"  # as workers before 2026-11-30 wrote it
    start = T0.timestamp()
    assert release.seen_in(release.fingerprint, lambda: pytest.fail("not asked"), start)
    assert release.seen_in(old, lambda: {}, start)
    assert release.seen_in(old, lambda: {"groups": start - 3600}, start)
    assert not release.seen_in(old, lambda: {"groups": start + 60}, start)
    assert not release.seen_in("v1:given_name,groups", lambda: {}, start)
    assert not release.seen_in(None, lambda: {}, start)
    assert not release.seen_in("", lambda: {}, start)


def test_a_replaced_session_hands_on_current_marks_to_the_same_student_only() -> None:
    current = notice_release(SERVICE, ["groups"]).fingerprint
    services = SessionServices(
        (Participant("a", "saml", seen=current), Participant("b", "oidc", seen="v1:groups"))
    )
    same = services.handed_on(same_student=True)
    assert [p.seen for p in same.participants] == [current, ""]
    other = services.handed_on(same_student=False)
    assert [p.seen for p in other.participants] == ["", ""]
    assert [p.service_id for p in other.participants] == ["a", "b"]


ECK_SCHOOL = School("99YY00", "ECK-school", "https://idp.example", use_eck_id=True)
SUBJECT_SCHOOL = School("99XX00", "Demo", "https://idp2.example")


def eck_student(eck_id: str, school: School = ECK_SCHOOL) -> UpstreamIdentity:
    # The back adapters leave the subject empty at an ECK iD school (saml/back.py, rp_claims.py).
    return UpstreamIdentity(school.id, "", {"eck_id": (eck_id,)})


def test_the_same_student_is_told_by_the_pseudonyms_input() -> None:
    sanne, daan = eck_student("https://ketenid.nl/1"), eck_student("https://ketenid.nl/2")
    assert sanne.subject == daan.subject == ""
    assert not same_student(ECK_SCHOOL, sanne, daan)
    assert same_student(ECK_SCHOOL, sanne, eck_student("https://ketenid.nl/1"))
    assert student_key(ECK_SCHOOL, sanne) == ("99YY00", "eckid", "https://ketenid.nl/1")
    # A school on its own subject: the subject, whatever ECK iD came along.
    one = UpstreamIdentity(SUBJECT_SCHOOL.id, "s-1", {"eck_id": ("https://ketenid.nl/1",)})
    two = UpstreamIdentity(SUBJECT_SCHOOL.id, "s-2", {"eck_id": ("https://ketenid.nl/1",)})
    assert not same_student(SUBJECT_SCHOOL, one, two)
    assert same_student(SUBJECT_SCHOOL, one, replace(one, attributes={}))
    # In doubt, another student: no input, another school's login, a school gone.
    assert not same_student(ECK_SCHOOL, UpstreamIdentity(ECK_SCHOOL.id, ""), sanne)
    assert not same_student(
        ECK_SCHOOL, UpstreamIdentity(ECK_SCHOOL.id, ""), UpstreamIdentity(ECK_SCHOOL.id, "")
    )
    assert not same_student(ECK_SCHOOL, eck_student("https://ketenid.nl/1", SUBJECT_SCHOOL), sanne)
    assert not same_student(None, sanne, sanne)
