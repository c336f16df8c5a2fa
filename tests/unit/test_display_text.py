"""Names and towns students and staff read (broker/core/display_text.py): plain text of one
line; invisible characters and direction overrides refused, whatever else is allowed."""

from __future__ import annotations

import pytest

from broker.core.display_text import (
    MAX_NAME,
    MAX_SHOWN,
    name_problem,
    plain_text_problem,
    shown_excerpt,
)
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


@pytest.mark.parametrize(
    "name", ["Lees\u2028plank", "Lees\u3164plank", "Lees\u034fplank", "Lees\u00adplank"]
)
def test_separators_and_invisible_letters_are_refused_too(name: str) -> None:
    """A line separator makes a second line; a Hangul filler (a letter) and the combining
    grapheme joiner (a mark) show nothing, as a soft hyphen (a format character) does."""
    assert name_problem(name) == "must be plain text: letters, digits, spaces and punctuation"


def test_a_peers_text_in_an_error_is_cut_short_and_printable() -> None:
    """Every plain str parameter of an error (an entity id, a URL from fetched metadata) reaches
    a page, a terminal and a log line only as `shown_excerpt` leaves it."""
    from broker.core.errors import BrokerError, Phrase

    long = "https://idp.example/" + "x" * 500
    error = BrokerError("metadata of %(entity_id)s: %(what)s", entity_id=long, what=Phrase("ok"))
    assert error.params["entity_id"] == shown_excerpt(long) == long[:MAX_SHOWN] + "…"
    assert isinstance(error.params["what"], Phrase)  # translated by the portal, kept as it is
    sneaky = BrokerError("issuer %(named)s", named="https://a\u202e\x1b[2Jb")
    assert sneaky.detail == "issuer https://a??[2Jb"
