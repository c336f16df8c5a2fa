"""The key schedule (broker/core/key_schedule.py): which key signs and which are published, by
the clock alone, and a rotation's moments."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from broker.core.errors import ConfigurationError
from broker.core.key_schedule import (
    KeyFiles,
    KeyGeneration,
    KeyRotationRefused,
    choose,
    finish,
    pending,
    rotate,
)

DAY = 86400
PUBLISH = 8 * DAY
RETAIN = 7 * DAY + 60


def files(n: int) -> KeyFiles:
    return KeyFiles(Path(f"k{n}.key"), Path(f"k{n}.crt"), Path(f"k{n}.pem"))


FIRST = KeyGeneration(1, files(1), published_from=0.0, signing_from=0.0)


def rotated(now: float = 1000.0) -> tuple[KeyGeneration, ...]:
    return rotate((FIRST,), files(2), now, publish_seconds=PUBLISH, retain_seconds=RETAIN)


def test_a_key_set_of_one_signs_and_publishes_that_key_forever() -> None:
    choice = choose((FIRST,), 1e9)
    assert choice.signing is FIRST and choice.published == (FIRST,)
    assert choice.valid_until == math.inf


def test_rotation_publishes_now_signs_after_the_publish_period_and_retires_the_old_key() -> None:
    old, new = rotated(1000.0)
    assert (new.number, new.published_from, new.signing_from) == (2, 1000.0, 1000.0 + PUBLISH)
    assert new.retire_after is None
    assert old.retire_after == new.signing_from + RETAIN


def test_the_choice_follows_the_clock() -> None:
    generations = rotated(1000.0)
    old, new = generations
    during = choose(generations, 1001.0)
    assert during.signing is old and [g.number for g in during.published] == [1, 2]
    assert during.valid_until == new.signing_from
    at_switch = choose(generations, new.signing_from)
    assert at_switch.signing is new and [g.number for g in at_switch.published] == [2, 1]
    assert at_switch.state != during.state
    assert old.retire_after is not None
    before_retirement = choose(generations, old.retire_after - 1)
    assert [g.number for g in before_retirement.published] == [2, 1]
    retired = choose(generations, old.retire_after)
    assert retired.published == (new,) and retired.valid_until == math.inf


def test_one_next_key_at_a_time() -> None:
    generations = rotated(1000.0)
    assert pending(generations, 1001.0) is generations[1]
    with pytest.raises(KeyRotationRefused, match="key 2 is already waiting"):
        rotate(generations, files(3), 2000.0, publish_seconds=PUBLISH, retain_seconds=RETAIN)
    after_switch = generations[1].signing_from
    assert pending(generations, after_switch) is None
    third = rotate(
        generations, files(3), after_switch, publish_seconds=PUBLISH, retain_seconds=RETAIN
    )
    # The first key keeps its own retirement; the second now has one too.
    assert [g.retire_after for g in third] == [
        generations[0].retire_after,
        after_switch + PUBLISH + RETAIN,
        None,
    ]


def test_finish_drops_only_retired_keys() -> None:
    generations = rotated(1000.0)
    assert finish(generations, 2000.0) == (generations, ())
    old_retires = generations[0].retire_after
    assert old_retires is not None
    kept, removed = finish(generations, old_retires)
    assert kept == (generations[1],) and removed == (generations[0],)


def test_no_key_in_its_signing_period_is_a_configuration_error() -> None:
    waiting = KeyGeneration(1, files(1), published_from=100.0, signing_from=200.0)
    with pytest.raises(ConfigurationError, match="no signing key"):
        choose((waiting,), 150.0)
