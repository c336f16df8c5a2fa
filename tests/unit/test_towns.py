"""A school's town as administrators type it (broker/core/towns.py)."""

from __future__ import annotations

import pytest

from broker.core.towns import MAX_TOWN, clean_town, town_problem


def test_white_space_is_trimmed_and_runs_are_one_space() -> None:
    assert clean_town("  Bergen\t(NH)\n") == "Bergen (NH)"
    assert clean_town("   ") == ""


@pytest.mark.parametrize(
    "town",
    [
        "",
        "Leiden",
        "'s-Hertogenbosch",
        "Bergen (NH)",
        "Sint-Oedenrode",
        "Nuenen, Gerwen en Nederwetten",
        "L" * MAX_TOWN,
    ],
)
def test_towns_as_they_are_written_are_accepted(town: str) -> None:
    assert town_problem(town) is None


@pytest.mark.parametrize(
    ("town", "reason"),
    [
        ("L" * (MAX_TOWN + 1), f"at most {MAX_TOWN}"),
        # a direction override: read backwards
        ("Leiden\u202e", 'hidden or control characters: "Leiden?" has U+202E RIGHT-TO-LEFT'),
        # invisible: looks like another town
        ("Lei\u200bden", '"Lei?den" has U+200B ZERO WIDTH SPACE as character 4 (delete it)'),
        ("Lei\x07den", '"Lei?den" has U+0007 (a control character) as character 4 (delete it)'),
    ],
)
def test_what_is_not_a_town_is_refused_with_the_reason(town: str, reason: str) -> None:
    problem = town_problem(town)
    assert problem is not None and reason in str(problem)
