"""A chain move's migration window, in the core's terms (core/chain_move.py): which previous
pseudonym a login releases, whether a later OIDC use still releases it, and what is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from broker.core.chain_move import (
    ChainMove,
    ImportedMoveRefused,
    MoveRefused,
    check_imported_move,
    finished_move,
    move_state,
    plan_move,
    previous_still_released,
    refuse_rotation_during_moves,
    service_key_versions,
)
from broker.core.model import Release, ReleasePolicy, Service
from broker.core.pseudonym_rotation import ChainKeyVersion, KeyVersions, RotationRefused
from broker.core.release import compute_release
from tests.unit.test_pseudonym_rotation import (
    IDENTITY,
    KEYS,
    NOW,
    SCHOOL,
    VECTOR_LEERLING_1,
    VECTOR_TOETSEN_LEERLING_1,
)

ENDS = NOW + timedelta(days=30)
SECOND = timedelta(seconds=1)
IN_TOETSEN = Service("uitgever", "Uitgeverij", "https://sp.example/metadata", "toetsen")
MOVE = ChainMove("uitgever", "leermiddelen", 1, "toetsen", ENDS)


def _release(service: Service, versions: KeyVersions) -> Release:
    policy = ReleasePolicy("99XX00", service.id)
    return compute_release(KEYS, SCHOOL, service, IDENTITY, policy, None, versions)


def test_in_the_window_the_previous_pseudonym_is_the_one_of_the_chain_it_left() -> None:
    versions = service_key_versions(KEYS, None, MOVE, IN_TOETSEN, NOW)
    assert versions == KeyVersions(1, 1, "leermiddelen")
    release = _release(IN_TOETSEN, versions)
    # The test vectors (pseudonyms.md): the new chain's pseudonym, and the old chain's beside it.
    assert release.pseudonym == VECTOR_TOETSEN_LEERLING_1
    assert release.previous_pseudonym == VECTOR_LEERLING_1
    assert release.previous_chain == "leermiddelen"


def test_the_recorded_version_of_the_chain_it_left_derives_the_previous_pseudonym() -> None:
    # The old chain was rotated after the move: the service used to receive version 1.
    versions = service_key_versions(KEYS, ChainKeyVersion("toetsen", 2), MOVE, IN_TOETSEN, NOW)
    assert versions == KeyVersions(2, 1, "leermiddelen")
    assert _release(IN_TOETSEN, versions).previous_pseudonym == VECTOR_LEERLING_1


@pytest.mark.parametrize(
    ("move", "now"),
    [
        (MOVE, ENDS),  # the window's end passed
        (MOVE, ENDS + timedelta(days=1)),
        (None, NOW),  # moved without a window
        # Moved again by a version that did not know the records: no longer where it went.
        (ChainMove("uitgever", "leermiddelen", 1, "service:uitgever", ENDS), NOW),
        (ChainMove("ander", "leermiddelen", 1, "toetsen", ENDS), NOW),  # another service's
    ],
)
def test_outside_the_window_the_new_pseudonym_alone(move: ChainMove | None, now: datetime) -> None:
    versions = service_key_versions(KEYS, None, move, IN_TOETSEN, now)
    assert versions == KeyVersions(1)
    release = _release(IN_TOETSEN, versions)
    assert (release.pseudonym, release.previous_pseudonym) == (VECTOR_TOETSEN_LEERLING_1, None)


def test_a_move_out_of_every_chain_gives_the_chain_of_its_own() -> None:
    alone = Service("uitgever", "Uitgeverij", "https://sp.example/metadata", None)
    move = ChainMove("uitgever", "leermiddelen", 1, "service:uitgever", ENDS)
    release = _release(alone, service_key_versions(KEYS, None, move, alone, NOW))
    assert release.previous_pseudonym == VECTOR_LEERLING_1
    assert release.pseudonym not in (VECTOR_LEERLING_1, VECTOR_TOETSEN_LEERLING_1)


def test_a_later_oidc_use_releases_it_only_while_the_same_move_window_is_open() -> None:
    def still(move: ChainMove | None, previous_chain: str, now: datetime = NOW) -> bool:
        return previous_still_released(None, move, IN_TOETSEN, 1, previous_chain, now)

    assert still(MOVE, "leermiddelen")
    assert not still(MOVE, "leermiddelen", ENDS)  # the window ended after the login
    assert not still(None, "leermiddelen")  # finished early (the record went)
    assert not still(MOVE, "elders")  # another move's previous pseudonym
    # A rotation's previous pseudonym ("") is not released in a move's window, and is decided
    # by the rotation's rule outside one.
    rotated = ChainKeyVersion("toetsen", 2, 1, ENDS)
    assert not previous_still_released(rotated, MOVE, IN_TOETSEN, 2, "", NOW)
    assert previous_still_released(rotated, None, IN_TOETSEN, 2, "", NOW)


def test_plan_records_the_chain_it_left_its_version_and_the_end() -> None:
    records = {"leermiddelen": ChainKeyVersion("leermiddelen", 3)}
    in_leermiddelen = Service("uitgever", "Uitgeverij", "https://sp.example/m", "leermiddelen")
    planned = plan_move(in_leermiddelen, "toetsen", KEYS, records, None, 30, NOW)
    assert planned == ChainMove("uitgever", "leermiddelen", 3, "toetsen", ENDS)
    # Never rotated: the key set's current version; out of every chain: `service:<id>`.
    planned = plan_move(in_leermiddelen, None, KEYS, {}, None, 1, NOW)
    assert planned == ChainMove(
        "uitgever", "leermiddelen", 1, "service:uitgever", NOW + timedelta(days=1)
    )
    # Without a window: no record.
    assert plan_move(in_leermiddelen, "toetsen", None, records, None, None, NOW) is None
    # An ended move window does not stand in the way.
    ended = ChainMove("uitgever", "x", 1, "leermiddelen", NOW)
    assert plan_move(in_leermiddelen, "toetsen", KEYS, {}, ended, 5, NOW) is not None


@pytest.mark.parametrize(
    ("records", "move", "days", "says"),
    [
        ({}, None, 0, "the window must be 1 to 366 days, not 0"),
        ({}, None, 367, "the window must be 1 to 366 days, not 367"),
        (
            {},
            ChainMove("uitgever", "x", 1, "leermiddelen", ENDS),
            None,
            "service uitgever is in the migration window of its move from x until",
        ),
        (
            {"leermiddelen": ChainKeyVersion("leermiddelen", 2, 1, ENDS)},
            None,
            None,
            "chain leermiddelen (it is in) is in a pseudonym key migration window until",
        ),
        (
            {"toetsen": ChainKeyVersion("toetsen", 2, 1, ENDS)},
            None,
            5,
            "chain toetsen (it would go to) is in a pseudonym key migration window until",
        ),
    ],
)
def test_a_move_inside_any_window_is_refused(
    records: dict[str, ChainKeyVersion], move: ChainMove | None, days: int | None, says: str
) -> None:
    in_leermiddelen = Service("uitgever", "Uitgeverij", "https://sp.example/m", "leermiddelen")
    with pytest.raises(MoveRefused) as refused:
        plan_move(in_leermiddelen, "toetsen", KEYS, records, move, days, NOW)
    assert says in refused.value.detail


def test_a_rotation_of_the_chain_a_service_moved_into_waits_for_its_window() -> None:
    with pytest.raises(RotationRefused) as refused:
        refuse_rotation_during_moves("toetsen", [MOVE], NOW)
    assert "service uitgever moved into chain toetsen" in refused.value.detail
    assert "chain move uitgever --finish" in refused.value.detail
    refuse_rotation_during_moves("leermiddelen", [MOVE], NOW)  # the chain it left: allowed
    refuse_rotation_during_moves("toetsen", [MOVE], ENDS)  # the window is over


def test_finish_needs_an_open_window_and_status_says_it() -> None:
    finished_move(MOVE, "uitgever", NOW)
    for move, now in ((None, NOW), (MOVE, ENDS)):
        with pytest.raises(MoveRefused, match="no open move window"):
            finished_move(move, "uitgever", now)
    assert move_state(MOVE, NOW) == (
        "moved from leermiddelen (version 1); window open until "
        f"{ENDS:%Y-%m-%d %H:%M} UTC (previous pseudonym released)"
    )
    assert "window ended" in move_state(MOVE, ENDS)
    assert move_state(None, NOW) == ""


def test_a_file_adds_a_move_record_only_with_the_move_it_records() -> None:
    """check_imported_move, the one rule of the file's checks and the import's transaction."""
    in_leermiddelen = replace(IN_TOETSEN, chain_id="leermiddelen")
    # The import moves the service out of the record's from_chain: taken.
    check_imported_move(MOVE, in_leermiddelen, NOW, registry_empty=False)
    # A service new to an empty registry (a rebuild from an export): taken as the file has it.
    check_imported_move(MOVE, None, NOW, registry_empty=True)
    # The service is in to_chain already and the file does not move it: an invented move.
    with pytest.raises(ImportedMoveRefused) as refused:
        check_imported_move(MOVE, IN_TOETSEN, NOW, registry_empty=False)
    assert refused.value.key == "service_id"
    # Moved, but from another chain than the record says.
    with pytest.raises(ImportedMoveRefused) as refused:
        check_imported_move(MOVE, replace(IN_TOETSEN, chain_id=None), NOW, registry_empty=False)
    assert refused.value.key == "from_chain"
    assert "is in service:uitgever before the import, not leermiddelen" in refused.value.detail
    # The window: at most MAX_WINDOW_DAYS from now, a new service's too.
    longest = replace(MOVE, window_ends=NOW + timedelta(days=366))
    check_imported_move(longest, None, NOW, registry_empty=True)
    for was in (None, in_leermiddelen):
        with pytest.raises(ImportedMoveRefused) as refused:
            check_imported_move(
                replace(longest, window_ends=longest.window_ends + SECOND), was, NOW, True
            )
        assert refused.value.key == "window_ends"
        assert "more than 366 days from now" in refused.value.detail


def test_a_service_new_to_a_registry_with_services_brings_no_move_record() -> None:
    """Only a rebuild into an empty registry takes a new service's record on the file's word:
    else a file could add a service with a made-up move and hand it another chain's
    pseudonyms. The refusal says how to do it instead."""
    with pytest.raises(ImportedMoveRefused) as refused:
        check_imported_move(MOVE, None, NOW, registry_empty=False)
    assert refused.value.key == "service_id"
    assert refused.value.detail == (
        f"service {MOVE.service_id} is new to the registry, which holds other services: a move "
        "record comes with a new service only when a registry is rebuilt from an export into an "
        "empty one; add the service in chain leermiddelen first, then move it (`ketenbroker "
        f"chain move {MOVE.service_id} --to toetsen --window DAYS`)"
    )
    out_of_chains = replace(MOVE, to_chain=f"service:{MOVE.service_id}")
    with pytest.raises(ImportedMoveRefused, match="--no-chain --window DAYS"):
        check_imported_move(out_of_chains, None, NOW, registry_empty=False)
