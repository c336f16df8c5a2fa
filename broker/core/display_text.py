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
# How much of a peer's own text (an entity id, a URL, an issuer, a list of algorithms from
# fetched metadata) an error message repeats.
MAX_SHOWN = 200
# Invisible letters and marks: not control or format characters, yet nothing to see (a Hangul
# filler is a letter, the combining grapheme joiner a mark).
_INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0")


def plain_text_problem(text: str, limit: int) -> str | None:
    """Why `text` cannot be shown as a name or a town, as "must …", or None when it can."""
    if len(text) > limit:
        return f"must be at most {limit} characters"
    if any(_hidden(c) for c in text):
        return "must be plain text: letters, digits, spaces and punctuation"
    return None


def _hidden(character: str) -> bool:
    # C*: control and format characters (zero-width, direction overrides); Zl/Zp: line and
    # paragraph separators (a second line in a one-line name).
    category = unicodedata.category(character)
    return category[0] == "C" or category in ("Zl", "Zp") or character in _INVISIBLE


def shown_excerpt(text: str, limit: int = MAX_SHOWN) -> str:
    """A peer's text as an error message repeats it, to a page, a terminal or a log line: cut
    short, every character that is not printable shown as "?"."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be the name of a school, service, chain or publisher, or None."""
    if not name.strip():
        return "must not be empty"
    return plain_text_problem(name, MAX_NAME)
