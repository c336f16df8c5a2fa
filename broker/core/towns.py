"""A school's town (plaats, vestigingsplaats): what tells two schools of the same name apart on
the discovery page ("Stedelijk Gymnasium", Leiden or Utrecht), and what a student may search on.

Plain text of one line, at most `MAX_TOWN` characters, optional (empty: none). It names a place,
never a person: not personal data. Pure checks on the text, shared by the CLI, the registry
file import and the portal.
"""

from __future__ import annotations

from broker.core.display_text import TextProblem, plain_text_problem

MAX_TOWN = 80


def clean_town(value: str) -> str:
    """What an administrator typed, as stored: spaces trimmed, every run of white space one
    space (a town pasted from a spreadsheet keeps no tab or line break)."""
    return " ".join(value.split())


def town_problem(town: str) -> TextProblem | None:
    """Why `town` (as `clean_town` left it) cannot be a school's town, or None when it can; a
    message says "the town {problem}"."""
    return plain_text_problem(town, MAX_TOWN)
