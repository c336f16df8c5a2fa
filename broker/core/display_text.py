"""Names and towns that students and staff read: a school's, a service's, a chain's, a
publisher's. One line of plain text each.

What is refused is what would deceive a reader rather than what looks odd: control and format
characters (Unicode category C*), among them invisible ones (a zero-width space makes two names
that look the same differ) and direction overrides (U+202E shows a name read backwards). Pure
checks, shared by the CLI, the registry file import and the portals.
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 200


def plain_text_problem(text: str, limit: int) -> str | None:
    """Why `text` cannot be shown as a name or a town, as "must …", or None when it can."""
    if len(text) > limit:
        return f"must be at most {limit} characters"
    if any(unicodedata.category(c).startswith("C") for c in text):
        return "must be plain text: letters, digits, spaces and punctuation"
    return None


def name_problem(name: str) -> str | None:
    """Why `name` cannot be the name of a school, service, chain or publisher, or None."""
    if not name.strip():
        return "must not be empty"
    return plain_text_problem(name, MAX_NAME)
