"""A school's other names as administrators give them (broker/core/school_aliases.py)."""

from __future__ import annotations

import pytest

from broker.core.display_text import MAX_NAME
from broker.core.school_aliases import (
    MAX_ALIASES,
    AliasFault,
    aliases_problem,
    clean_alias,
    clean_aliases,
)

NAME = "Baken Lyceum"


def test_white_space_is_trimmed_and_runs_are_one_space() -> None:
    assert clean_alias("  Het\tBaken \n") == "Het Baken"
    assert clean_aliases([" Locatie  Zuid", "CSG Liudger"]) == ("Locatie Zuid", "CSG Liudger")


@pytest.mark.parametrize(
    "aliases",
    [
        (),
        ("Het Baken",),
        ("Het Baken", "Locatie Zuid", "'t Baken", "CSG Liudger"),
        tuple(f"Locatie {n}" for n in range(MAX_ALIASES)),
        ("L" * MAX_NAME,),
        # The name in other words is an alias: the abbreviation rule is the search's business.
        ("Baken Lyc.",),
    ],
)
def test_other_names_as_schools_have_them_are_accepted(aliases: tuple[str, ...]) -> None:
    assert aliases_problem(NAME, aliases) is None


@pytest.mark.parametrize(
    ("aliases", "fault", "position", "message"),
    [
        (
            tuple(f"Locatie {n}" for n in range(MAX_ALIASES + 1)),
            AliasFault.TOO_MANY,
            0,
            f"a school has at most {MAX_ALIASES} aliases",
        ),
        (("Het Baken", ""), AliasFault.NOT_A_NAME, 2, "the alias '' must not be empty"),
        (
            ("L" * (MAX_NAME + 1),),
            AliasFault.NOT_A_NAME,
            1,
            f"must be at most {MAX_NAME} characters",
        ),
        (
            ("Het\u200bBaken",),
            AliasFault.NOT_A_NAME,
            1,
            "the alias 'Het\\u200bBaken' must not contain hidden or control characters: "
            '"Het?Baken" has U+200B ZERO WIDTH SPACE as character 4 (delete it)',
        ),
        (("Baken\u202e",), AliasFault.NOT_A_NAME, 1, "U+202E RIGHT-TO-LEFT OVERRIDE"),
        (("--",), AliasFault.NOTHING_TO_SEARCH, 1, "the alias '--' must hold a letter or a digit"),
        (("Het Baken", "Het Baken"), AliasFault.TWICE, 2, "the alias 'Het Baken' is given twice"),
        (
            ("Het Baken", "het-baken"),
            AliasFault.TWICE,
            2,
            "the alias 'het-baken' is 'Het Baken' again, as a search reads it",
        ),
        (
            ("BAKEN LYCEUM",),
            AliasFault.IS_THE_NAME,
            1,
            "the alias 'BAKEN LYCEUM' is the school's name",
        ),
    ],
)
def test_bad_aliases_are_refused_with_the_reason_and_the_place(
    aliases: tuple[str, ...], fault: AliasFault, position: int, message: str
) -> None:
    problem = aliases_problem(NAME, aliases)
    assert problem is not None
    assert problem.fault is fault and problem.position == position
    assert message in str(problem)
