"""Names and towns students and staff read (broker/core/display_text.py): plain text of one
line; invisible characters and direction overrides refused, whatever else is allowed."""

from __future__ import annotations

import pytest

from broker.core.display_text import MAX_NAME, name_problem, plain_text_problem
from broker.core.towns import MAX_TOWN, town_problem


@pytest.mark.parametrize(
    "name", ["Demo Lyceum", "'s-Hertogenbosch College", "Sint-Bonifatiuscollege", "Ée & Ça (1)"]
)
def test_ordinary_names_pass(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * (MAX_NAME + 1), f"must be at most {MAX_NAME} characters"),
        ("Leesplank\u202eknalpseel", "must be plain text"),  # shown backwards from there on
        ("Lees\u200bplank", "must be plain text"),  # looks like "Leesplank", is not
        ("Lees\nplank", "must be plain text"),
        ("Lees\x00plank", "must be plain text"),
    ],
)
def test_names_that_would_mislead_a_reader_are_refused(name: str, reason: str) -> None:
    problem = name_problem(name)
    assert problem is not None and problem.startswith(reason)


def test_a_town_keeps_its_own_wording_on_the_same_rule() -> None:
    assert town_problem("Leiden") is None
    assert town_problem("x" * (MAX_TOWN + 1)) == f"the town must be at most {MAX_TOWN} characters"
    assert town_problem("Lei\u202eden") == (
        "the town must be plain text: letters, digits, spaces and punctuation"
    )
    assert plain_text_problem("Leiden", MAX_TOWN) is None
