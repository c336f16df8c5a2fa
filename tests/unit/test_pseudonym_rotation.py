"""Pseudonym key rotation per chain, in the core's terms (pseudonyms.md, "Keys and rotation"):
which versions a login derives with, the rotation plan, and what receipts name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.core.chain_move import ChainMove
from broker.core.errors import ConfigurationError
from broker.core.model import Release, ReleasePolicy, School, Service, UpstreamIdentity
from broker.core.notice_release import notice_release
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import (
    PREVIOUS_PSEUDONYM_RECEIPT_NAME,
    ChainKeyVersion,
    HeldKeySource,
    KeyVersions,
    RotationRefused,
    WindowOutlook,
    finished,
    key_versions_for,
    open_windows,
    plan_rotation,
    window_outlook,
)
from broker.core.receipts import ReceiptKeys, receipt_content
from broker.core.release import compute_release

# pseudonyms.md, "Test vectors": version 1 is the key 0x00 … 0x1f.
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
VECTOR_LEERLING_1 = "8228c4aacaff805af46bc75b3cb7dbc05e2efe4270d5d2431d7257dc06b99577"
VECTOR_TOETSEN_LEERLING_1 = "79c05580d73d396fb21fcb31d0cb9faa5020a494d7f1208ece53111904db463b"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SCHOOL = School("99XX00", "De Demoschool", "https://idp.demo.example")
IDENTITY = UpstreamIdentity("99XX00", "leerling-1")
KEYS = PseudonymKeys(1, {1: KEY_1, 2: KEY_2})


def _service(chain: str | None) -> Service:
    return Service("uitgever", "Uitgeverij", "https://sp.example/metadata", chain)


def _release(chain: str, versions: KeyVersions | None, keys: PseudonymKeys = KEYS) -> Release:
    return compute_release(
        keys,
        SCHOOL,
        _service(chain),
        IDENTITY,
        ReleasePolicy("99XX00", "uitgever"),
        None,
        versions,
    )


def _window(days: int = 30) -> ChainKeyVersion:
    return ChainKeyVersion("leermiddelen", 2, 1, NOW + timedelta(days=days))


# -- which versions a login derives with ---------------------------------------------------------
def test_a_chain_never_rotated_uses_the_key_sets_current() -> None:
    assert key_versions_for(KEYS, None, NOW) == KeyVersions(1, None)


def test_the_files_previous_version_is_never_released_without_the_chains_own_window() -> None:
    # A `previous` in the key set file has no window and no chain: releasing it would give every
    # never-rotated chain an old pseudonym with no end. Only a chain's own record opens one.
    legacy = PseudonymKeys(2, {1: KEY_1, 2: KEY_2}, previous_version=1)
    assert key_versions_for(legacy, None, NOW) == KeyVersions(2, None)
    assert (
        _release("toetsen", key_versions_for(legacy, None, NOW), legacy).previous_pseudonym is None
    )
    # compute_release without versions means the same: the current version alone.
    assert _release("toetsen", None, legacy).previous_pseudonym is None
    # A finished or expired window does not fall back to the file's `previous` either.
    assert key_versions_for(legacy, ChainKeyVersion("toetsen", 2), NOW) == KeyVersions(2, None)
    # The chain's own window still releases its own previous version.
    window = ChainKeyVersion("toetsen", 2, 1, NOW + timedelta(days=1))
    assert key_versions_for(legacy, window, NOW) == KeyVersions(2, 1)


def test_inside_the_window_both_versions_after_it_the_new_one_alone() -> None:
    record = _window()
    assert key_versions_for(KEYS, record, NOW) == KeyVersions(2, 1)
    ends = record.window_ends
    assert ends is not None
    assert key_versions_for(KEYS, record, ends - timedelta(seconds=1)) == KeyVersions(2, 1)
    # The end passes by the clock: no `finish` needed for the previous one to stop.
    assert key_versions_for(KEYS, record, ends) == KeyVersions(2, None)
    assert key_versions_for(KEYS, finished(record, "leermiddelen"), NOW) == KeyVersions(2, None)


def test_the_previous_pseudonym_is_exactly_the_old_keys_test_vector() -> None:
    before = _release("leermiddelen", key_versions_for(KEYS, None, NOW))
    during = _release("leermiddelen", key_versions_for(KEYS, _window(), NOW))
    assert before.pseudonym == VECTOR_LEERLING_1
    assert before.previous_pseudonym is None
    assert during.previous_pseudonym == VECTOR_LEERLING_1
    assert during.pseudonym not in (VECTOR_LEERLING_1, None)
    assert len(during.pseudonym) == 64


def test_another_chain_is_untouched_by_a_rotation() -> None:
    # The toetsen chain has no record while leermiddelen is in its window.
    other = _release("toetsen", key_versions_for(KEYS, None, NOW))
    assert other.pseudonym == VECTOR_TOETSEN_LEERLING_1
    assert other.previous_pseudonym is None


def test_a_version_the_key_set_lacks_is_a_configuration_error_not_a_guess() -> None:
    only_one = PseudonymKeys(1, {1: KEY_1})
    with pytest.raises(ConfigurationError, match="version 2"):
        _release("leermiddelen", KeyVersions(2, 1), only_one)
    with pytest.raises(ConfigurationError, match="version 2"):
        HeldKeySource(only_one).key_set_holding(frozenset({1, 2}))
    assert HeldKeySource(KEYS).key_set_holding(frozenset({1, 2})) is KEYS


# -- the rotation plan ---------------------------------------------------------------------------
def test_first_rotation_needs_a_new_version_and_opens_the_window() -> None:
    only_one = PseudonymKeys(1, {1: KEY_1})
    plan = plan_rotation(only_one, None, "leermiddelen", 30, NOW)
    assert plan.add_version
    assert plan.record == ChainKeyVersion("leermiddelen", 2, 1, NOW + timedelta(days=30))


def test_a_newer_version_in_the_key_set_is_used_without_adding_one() -> None:
    # Version 2 was added ahead (`pseudonym-key add`) or by another chain's rotation.
    plan = plan_rotation(KEYS, None, "toetsen", 7, NOW)
    assert not plan.add_version
    assert plan.new_version == 2
    assert plan.record.previous_version == 1


def test_a_chain_at_the_newest_version_gets_the_next_one() -> None:
    done = ChainKeyVersion("leermiddelen", 2)
    plan = plan_rotation(KEYS, done, "leermiddelen", 7, NOW)
    assert plan.add_version and plan.record == ChainKeyVersion(
        "leermiddelen", 3, 2, NOW + timedelta(days=7)
    )


def test_rotating_during_an_open_window_is_refused() -> None:
    with pytest.raises(RotationRefused, match="migration window until 2026-12-28 12:00 UTC"):
        plan_rotation(KEYS, _window(), "leermiddelen", 30, NOW)


def test_rotating_after_the_window_ended_by_itself_is_allowed() -> None:
    record = _window(1)
    later = NOW + timedelta(days=2)
    plan = plan_rotation(KEYS, record, "leermiddelen", 10, later)
    assert plan.record == ChainKeyVersion("leermiddelen", 3, 2, later + timedelta(days=10))


@pytest.mark.parametrize("days", [0, -1, 367])
def test_the_window_length_is_bounded(days: int) -> None:
    with pytest.raises(RotationRefused, match="1 to 366 days"):
        plan_rotation(KEYS, None, "leermiddelen", days, NOW)


def test_finishing_without_a_window_is_refused() -> None:
    with pytest.raises(RotationRefused, match="no migration window"):
        finished(None, "leermiddelen")
    with pytest.raises(RotationRefused, match="no migration window"):
        finished(ChainKeyVersion("leermiddelen", 2), "leermiddelen")


# -- receipts -----------------------------------------------------------------------------------
def test_receipts_name_the_previous_pseudonym_during_the_window_and_keep_no_value() -> None:
    receipt_keys = ReceiptKeys.from_key(bytes(32))
    during = _release("leermiddelen", KeyVersions(2, 1))
    after = _release("leermiddelen", KeyVersions(2, None))
    content, plain = (
        receipt_content(
            receipt_keys,
            issued_at=1,
            school=SCHOOL,
            service=_service("leermiddelen"),
            identity=IDENTITY,
            release=release,
        )
        for release in (during, after)
    )
    assert content.attributes == (PREVIOUS_PSEUDONYM_RECEIPT_NAME,)
    assert plain.attributes == ()
    assert VECTOR_LEERLING_1 not in content.canonical()
    # The service held the old pseudonym already: no second information notice for it.
    service = _service("leermiddelen")
    during_notice = notice_release(service, content.attributes)
    assert during_notice == notice_release(service, plain.attributes)
    assert during_notice.attributes == ()


def test_open_windows_are_those_of_the_given_services_chains() -> None:
    records = [_window(), ChainKeyVersion("toetsen", 2, 1, NOW - timedelta(days=1))]
    records.append(ChainKeyVersion("service:uitgever", 2, 1, NOW + timedelta(days=1)))
    assert open_windows(records, [_service("leermiddelen")], NOW) == [_window()]
    assert open_windows(records, [_service("toetsen")], NOW) == []  # ended by itself
    assert open_windows(records, [_service(None)], NOW) == [records[2]]


def test_the_window_outlook_counts_open_windows_and_the_nearest_end() -> None:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    records = [
        ChainKeyVersion("a", 2, 1, now + timedelta(days=30)),
        ChainKeyVersion("b", 2, 1, now + timedelta(hours=5)),
        ChainKeyVersion("c", 2, 1, now),  # ends now: closed
        ChainKeyVersion("d", 3),
    ]
    assert window_outlook(records, now) == WindowOutlook(2, 5 * 3600.0)
    assert window_outlook(records[2:], now) == WindowOutlook(0, None)
    # A service's chain move window counts the same (chain_move.py).
    moved = ChainMove("verhuisplank", "a", 1, "b", now + timedelta(hours=2))
    assert window_outlook([*records, moved], now) == WindowOutlook(3, 2 * 3600.0)
    ended = ChainMove("oud", "a", 1, "b", now)
    assert window_outlook([ended], now) == WindowOutlook(0, None)
