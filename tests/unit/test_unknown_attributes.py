"""The note of attribute names the broker does not know (saml/unknown_attributes.py): names
only, at most once per school per hour in a process."""

from __future__ import annotations

import logging

import pytest

from broker.saml.unknown_attributes import INTERVAL, MAX_NAMES, UnknownAttributeNotes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_once_per_school_per_hour(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    notes = UnknownAttributeNotes(clock)
    notes.note("21AA00", ["b", "a", "a"])
    notes.note("21AA00", ["c"])  # the same school within the hour: not again
    notes.note("22BB00", ["x"])  # another school: its own line
    clock.now += INTERVAL
    notes.note("21AA00", ["c"])
    assert caplog.messages == [
        "unknown attributes dropped school=21AA00 names=a,b",
        "unknown attributes dropped school=22BB00 names=x",
        "unknown attributes dropped school=21AA00 names=c",
    ]


def test_nothing_unknown_is_not_logged_and_does_not_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    notes = UnknownAttributeNotes(Clock())
    notes.note("21AA00", [])
    notes.note("21AA00", ["urn:x"])
    assert caplog.messages == ["unknown attributes dropped school=21AA00 names=urn:x"]


def test_names_are_cut_short_printable_and_few(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    notes = UnknownAttributeNotes(Clock())
    names = [f"n{i:02d}" for i in range(MAX_NAMES + 3)] + ["bad\nname" + "x" * 300]
    notes.note("21AA00", names)
    (line,) = caplog.messages
    assert "\n" not in line
    # Sorted, the first MAX_NAMES, each at most 120 characters and printable.
    assert ",bad?name" + "x" * 112 + "…," not in line
    assert "names=bad?name" + "x" * 112 + "…,n00," in line
    assert line.endswith(",n18 and 4 more")
