"""When a new purpose text is a new purpose: the rule that decides whether schools that release
an attribute must agree to it again (core/declarations.py), and how a choice changed for that
reason is recorded.

The Dutch text is the purpose of record: every page's default (a school's page shows it when
the school ticks the attribute), the text a school's processing register and its agreement with
the publisher quote, and the one the declaration history keeps for every version. A school's
choice to release an attribute holds for that purpose only (purpose limitation, GDPR art.
5(1)(b)), so a new Dutch purpose stops the release until the school chooses again. The English
text is the publisher's translation for English pages: adding, changing or removing it keeps
every choice. (Counting it too would not close a gap: a rule that let a first translation pass
could be walked around by removing the translation in one save and adding another in the next;
and one that counted every English edit would make each school confirm again for every
translation added to a service registered before revision 0010.)

Not every edit of the Dutch text is a new purpose: a publisher corrects a capital, adds a full
stop, or pastes the text from a document with curly quotes, a soft hyphen or a double space.
Two texts state the same purpose when their *words, signs, quotes and clause breaks* are the
same, compared after:

- Unicode NFC and case folding (`E-mail` and `e-mail`; a composed and a decomposed `é`);
- whitespace of any kind collapsed, and format characters (zero-width space, soft hyphen,
  byte-order mark, direction marks) removed;
- a clause break between two words counting as one break whatever its mark: `. , ; : ! ?`, an
  ellipsis, an opening or closing bracket of any shape, or a dash standing between spaces. A
  comma moved from "voor inloggen, niet voor reclame" to "voor inloggen niet, voor reclame", or
  a bracket from "voor inloggen (niet voor reclame)" to "voor inloggen niet (voor reclame)",
  reverses the purpose with the same words, and must not pass as an edit. A break at the start
  or the end counts for nothing (the full stop a publisher adds, a closing bracket);
- a quote mark counting as one mark whatever its shape (straight, curly, low, guillemets; a
  run of them as one), so curly quotes pasted for straight ones keep the purpose, but quoting a
  word does not: `"niet"` says something else than `niet` (irony, a term defined elsewhere). It
  is not a clause break, since a comma in its place would read otherwise. A single quote
  between two letters or digits is an apostrophe ("foto's"), which counts for nothing;
- the signs `% ‰ ‱ & / §` kept, each on its own: "100% van de partners" is not "100 van de
  partners", and "100 %" is "100%";
- a `.`, `,` or dash between two digits kept as part of the number: "1.000" is not "1,000",
  nor "1000"; "10-12 jaar" is not "1012 jaar";
- a dash directly before a digit, not after a letter, kept as the number's sign: "-16 jaar" is
  not "16 jaar" (as "+16" is not). Every dash counts alike, in a number and outside one: the
  hyphen-minus, the other Unicode dashes (an en dash typed for a range or a minus) and the
  minus sign U+2212, so "-16" is one number whichever of them it starts with, and "10-12" one
  range;
- any other punctuation removed: hyphens and apostrophes in words (`e-mail` is `email`,
  `COVID-19` is `COVID19`).

Everything else is a new purpose, a corrected typo included: the broker cannot tell a typo from
a new word, and a school confirming once more is the cheaper mistake.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from broker.core.model import Declaration

# Marks that end or split a clause. A full stop and a comma count alike: "…begroeten. Niet voor
# reclame." and "…begroeten, niet voor reclame." state one purpose. Brackets too (`_is_break`).
_CLAUSE_BREAKS = frozenset(".,;:!?\u2026")  # … is U+2026
# Quote marks besides the initial and final quotes (Unicode Pi and Pf: the curly ones and the
# guillemets): the straight ones, the low ones (U+201E and U+201A, which Unicode files as
# opening brackets), the reversed ones, the backtick and acute typed for them, and their
# full-width forms.
_QUOTES = frozenset("\"'`\u00b4\u201a\u201b\u201e\u201f\u301d\u301e\u301f\uff02\uff07")
# The quote marks also typed as an apostrophe ("foto's", with U+2019 too): between two letters
# or digits, one is an apostrophe and counts for nothing.
_APOSTROPHES = frozenset("'`\u00b4\u2018\u2019\u201b\uff07")
# Signs that carry meaning of their own, each a token: "100%" is not "100".
_SIGNS = frozenset("%\u2030\u2031&/\u00a7")  # ‰ ‱ §
# Marks that are part of a number between two digits: "1.000", "12,5"; dashes too (`_is_dash`).
_NUMBER_MARKS = frozenset(".,")
# What every dash in a number stands as (`_number_mark`): "-16", "\u201316" and "\u221216" alike.
_MINUS = "-"
_MINUS_SIGN = "\u2212"  # a math symbol (Sm) to Unicode, not a dash (Pd): a dash all the same
# A clause break and a quote among the words (`purpose_of_record`): no word is empty or holds a
# quote mark, so both are free.
BREAK = ""
QUOTE = '"'

# How a release policy version that the broker wrote because a purpose changed records its
# author (`policy_changes.changed_by`): the declaration version that changed the purpose.
PURPOSE_CHANGE_PREFIX = "purpose-change:"


def purpose_of_record(text: str) -> tuple[str, ...]:
    """The words of a Dutch purpose with its signs, quotes (`QUOTE`) and clause breaks
    (`BREAK`), as the module docstring compares them: two texts with the same value state the
    same purpose."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    tokens: list[str] = []
    for chunk in folded.split():
        tokens.extend(_chunk_tokens(chunk))
    # One break or quote for a run of them, no break at the ends.
    kept: list[str] = []
    for token in tokens:
        if token == BREAK and (not kept or kept[-1] == BREAK):
            continue
        if token == QUOTE and kept and kept[-1] == QUOTE:
            continue
        kept.append(token)
    while kept and kept[-1] == BREAK:
        kept.pop()
    return tuple(kept)


def _ignored(character: str) -> bool:
    """Punctuation not named above (hyphens, apostrophes), dashes and format characters:
    nothing."""
    category = unicodedata.category(character)
    return category.startswith("P") or category == "Cf" or character == _MINUS_SIGN


def _is_dash(character: str) -> bool:
    """Any Unicode dash, or the minus sign: each stands for the others (module docstring)."""
    return character == _MINUS_SIGN or unicodedata.category(character) == "Pd"


def _is_quote(character: str) -> bool:
    return character in _QUOTES or unicodedata.category(character) in ("Pi", "Pf")


def _is_break(character: str) -> bool:
    """A clause break: `_CLAUSE_BREAKS`, or a bracket of any shape (an opening or closing mark
    that is not a quote)."""
    if character in _CLAUSE_BREAKS:
        return True
    return unicodedata.category(character) in ("Ps", "Pe") and not _is_quote(character)


def _between(chunk: str, index: int, neighbour: Callable[[str], bool]) -> bool:
    """Whether the characters either side of `chunk[index]` are both `neighbour`."""
    return (
        0 < index < len(chunk) - 1 and neighbour(chunk[index - 1]) and neighbour(chunk[index + 1])
    )


def _number_mark(chunk: str, index: int) -> str | None:
    """`chunk[index]` as part of a number, or None when it is not: a `.` or `,` between two
    digits as itself; a dash (any, as `_MINUS`) between two digits (a range: "10-12"), or before
    a digit where it follows no letter (a sign: "-16", "(-16)"). After a letter it is a hyphen
    in a word ("COVID-19"), which counts for nothing, as in "e-mail"."""
    character = chunk[index]
    if character in _NUMBER_MARKS:
        return character if _between(chunk, index, str.isdecimal) else None
    if not _is_dash(character) or index + 1 == len(chunk) or not chunk[index + 1].isdecimal():
        return None
    return _MINUS if index == 0 or not chunk[index - 1].isalpha() else None


def _chunk_tokens(chunk: str) -> list[str]:
    """The words, signs, quotes and breaks of one run of non-space characters."""
    tokens: list[str] = []
    word: list[str] = []

    def end_word() -> None:
        if word:
            tokens.append("".join(word))
            word.clear()

    for index, character in enumerate(chunk):
        if mark := _number_mark(chunk, index):
            word.append(mark)
        elif character in _APOSTROPHES and _between(chunk, index, str.isalnum):
            continue  # an apostrophe in a word: "foto's"
        elif character in _SIGNS or _is_quote(character) or _is_break(character):
            end_word()
            if character in _SIGNS:
                tokens.append(character)
            else:
                tokens.append(QUOTE if _is_quote(character) else BREAK)
        elif not _ignored(character):
            word.append(character)
    end_word()
    if not tokens and any(_is_dash(c) for c in chunk):
        # A dash standing alone between spaces: "inloggen - niet voor reclame" (any dash).
        return [BREAK]
    return tokens


def same_purpose(old: Declaration, new: Declaration) -> bool:
    """Whether `new` keeps the purpose a school agreed to under `old` (the Dutch text)."""
    return purpose_of_record(old.purpose) == purpose_of_record(new.purpose)


def purpose_change_author(version: int) -> str:
    """The recorded author of a choice the broker narrowed because declaration version
    `version` changed a purpose it released."""
    return f"{PURPOSE_CHANGE_PREFIX}{version}"


def purpose_change_version(author: str) -> int | None:
    """The declaration version named by `purpose_change_author`, None for any other author."""
    if not author.startswith(PURPOSE_CHANGE_PREFIX):
        return None
    number = author.removeprefix(PURPOSE_CHANGE_PREFIX)
    return int(number) if number.isascii() and number.isdigit() else None
