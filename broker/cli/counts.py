"""How command output counts things: "1 school", "3 schools", and ids listed up to ten."""

from __future__ import annotations

from collections.abc import Sequence

NAMED_AT_MOST = 10


def counted(count: int, word: str, words: str = "") -> str:
    """`count` and the word, singular for one (`words` when adding an s is wrong)."""
    return f"{count} {word if count == 1 else words or word + 's'}"


def listed(ids: Sequence[str]) -> str:
    """The first ten ids, and how many more there are."""
    shown = ", ".join(ids[:NAMED_AT_MOST])
    more = len(ids) - NAMED_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown
