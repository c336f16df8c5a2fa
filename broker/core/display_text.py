"""Names and towns that students and staff read: a school's, a service's, a chain's, a
publisher's. One line of plain text each.

What is refused is what would deceive a reader rather than what looks odd: control and format
characters (Unicode category C*), among them invisible ones (a zero-width space makes two names
that look the same differ) and direction overrides (U+202E shows a name read backwards), and a
word that mixes Latin letters with look-alike letters of another script ("Woordwijs" with a
Cyrillic o, U+043E: two services that read the same, one of them a phishing copy). Pure
checks, shared by the CLI, the registry file import and the portals: each returns a
`TextProblem` (which rule, which word, where), and every caller words its own message from it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

MAX_NAME = 200
# How much of a peer's own text (an entity id, a URL, an issuer, a list of algorithms from
# fetched metadata) an error message repeats.
MAX_SHOWN = 200
# Invisible letters and marks: not control or format characters, yet nothing to see (a Hangul
# filler is a letter, the combining grapheme joiner a mark).
_INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0")


# Scripts with many letters that look like Latin ones: Unicode's confusables table (TS #39) maps
# dozens of each to a-z or A-Z. Cyrillic has look-alikes of a c d e h i j o p q s w x y (U+0430,
# U+0441, U+0501, U+0435, U+04BB, U+0456, U+0458, U+043E, U+0440, U+051B, U+0455, U+051D,
# U+0445, U+0443) and of many capitals; Greek of i o p v and most capitals; Armenian of g h n o
# q u (U+0581, U+0570, U+0578, U+0585, U+0566, U+057D: lower-case, as most of a name is);
# Cherokee of A B C E H K M P S T W, and has small letters that look like small capitals; Coptic
# (its letters come from Greek) of A E O P o; Lisu (made from Latin capitals) of A B C D E M N
# O S T. No Dutch name has a word that needs one of their letters beside Latin ones, so the
# refusal costs nothing. The first word of a letter's Unicode name is its script for these six;
# a letter whose name starts otherwise (MICRO SIGN, FEMININE ORDINAL INDICATOR in "nª") counts
# as no script at all. Other scripts with a few look-alikes (Canadian Syllabics, Tifinagh) and
# Latin's own compatibility letters (fullwidth, mathematical bold) are not covered.
LOOK_ALIKE_SCRIPTS = frozenset({"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC", "LISU"})
# How much of a refused word a message repeats.
MAX_SHOWN_WORD = 40


class TextFault(Enum):
    EMPTY = "empty"
    TOO_LONG = "too_long"
    HIDDEN = "hidden"  # a control, format, separator or invisible character
    MIXED_SCRIPT = "mixed_script"  # Latin letters and look-alikes of another script in a word


@dataclass(frozen=True)
class TextProblem:
    """Why a text cannot be shown as a name or a town: the rule (`fault`), and what a message
    names. `str()` is the English "must …" the CLI and the registry file import give."""

    fault: TextFault
    limit: int = 0  # TOO_LONG: the most characters allowed
    # The first character at fault, counted from 1 (0 for EMPTY and TOO_LONG).
    position: int = 0
    character: str = ""  # HIDDEN: the character (a message names its code point, not it)
    word: str = ""  # the word at fault, as a message shows it (`shown_excerpt`)
    script: str = ""  # MIXED_SCRIPT: the other script ("Cyrillic")

    def __str__(self) -> str:
        match self.fault:
            case TextFault.EMPTY:
                return "must not be empty"
            case TextFault.TOO_LONG:
                return f"must be at most {self.limit} characters"
            case TextFault.HIDDEN:
                return (
                    "must be plain text: letters, digits, spaces and punctuation "
                    f"(U+{ord(self.character):04X} at character {self.position})"
                )
            case TextFault.MIXED_SCRIPT:
                return (
                    f"must not mix Latin letters with look-alike {self.script} ones in one word "
                    f'("{self.word}")'
                )


def plain_text_problem(text: str, limit: int) -> TextProblem | None:
    """Why `text` cannot be shown as a name or a town, or None when it can."""
    if len(text) > limit:
        return TextProblem(TextFault.TOO_LONG, limit=limit)
    for index, character in enumerate(text):
        if _hidden(character):
            return TextProblem(TextFault.HIDDEN, position=index + 1, character=character)
    return mixed_script_word(text)


def name_problem(name: str) -> TextProblem | None:
    """Why `name` cannot be the name of a school, service, chain or publisher, or None."""
    if not name.strip():
        return TextProblem(TextFault.EMPTY)
    return plain_text_problem(name, MAX_NAME)


def _hidden(character: str) -> bool:
    # C*: control and format characters (zero-width, direction overrides); Zl/Zp: line and
    # paragraph separators (a second line in a one-line name).
    category = unicodedata.category(character)
    return category[0] == "C" or category in ("Zl", "Zp") or character in _INVISIBLE


def _words(text: str) -> Iterator[tuple[int, str]]:
    """Each word of `text` with the index of its first character. A word is what an ordinary
    space (U+0020) separates: see `mixed_script_word`."""
    start = 0
    for word in text.split(" "):
        yield start, word
        start += len(word) + 1


def mixed_script_word(text: str) -> TextProblem | None:
    """The first word of `text` whose letters are partly Latin and partly of a look-alike
    script, or None.

    The mixed-script rule of Unicode TS #39 (section 5), kept simple enough to explain: a word
    is what an ordinary space (U+0020) separates, so "Sint-Jozef" and "Leerlingenbank 2.0" are
    judged whole and neither a hyphen nor a thin, hair or no-break space (nearly invisible, or
    not at all) can split a Cyrillic o off "Woord-wijs"; digits, punctuation and combining
    marks belong to no script; accented Latin letters (é, ë, ĳ) are Latin. A name wholly in
    Greek or Cyrillic passes this rule, and so does a Latin word beside a Cyrillic or Greek one
    (a Russian or Greek school in Amsterdam, its name in its own script and the town's in
    Latin: each word reads as what it is). What it does not catch: a word wholly in a
    look-alike script that reads as a Latin one ("school" spelt in Cyrillic U+0455 U+0441
    U+04BB U+043E U+043E U+04CF)."""
    if text.isascii():  # the usual name: every letter Latin, nothing to look up
        return None
    for start, word in _words(text):
        if not word.isascii() and (script := _look_alike_beside_latin(word)):
            index = next(i for i, c in enumerate(word) if c.isalpha() and _script(c) == script)
            return TextProblem(
                TextFault.MIXED_SCRIPT,
                position=start + index + 1,
                word=shown_excerpt(word, MAX_SHOWN_WORD),
                script=script.title(),
            )
    return None


def _script(character: str) -> str:
    """The script of a letter: LATIN for an ASCII one, else the first word of its Unicode name
    (about 0.2 µs a lookup)."""
    return "LATIN" if character.isascii() else unicodedata.name(character, "").split(" ")[0]


def _look_alike_beside_latin(word: str) -> str | None:
    latin, other = False, None
    # Each letter once, in order (a word repeats letters; the name lookup is the cost).
    for character in dict.fromkeys(word):
        if not character.isalpha():  # digits, punctuation, marks: no script
            continue
        script = _script(character)
        if script == "LATIN":
            latin = True
        elif other is None and script in LOOK_ALIKE_SCRIPTS:
            other = script
        if latin and other:
            return other
    return None


def shown_excerpt(text: str, limit: int = MAX_SHOWN) -> str:
    """A peer's text as an error message repeats it, to a page, a terminal or a log line: cut
    short, every character that is not printable shown as "?"."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")
