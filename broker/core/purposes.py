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
Two texts state the same purpose when their *words and clause breaks* are the same, compared
after:

- Unicode NFC and case folding (`E-mail` and `e-mail`; a composed and a decomposed `é`);
- whitespace of any kind collapsed, and format characters (zero-width space, soft hyphen,
  byte-order mark, direction marks) removed;
- punctuation removed, except that a clause break (`. , ; : ! ?` or an ellipsis, or a dash
  standing between spaces) between two words counts, as one break whatever its mark: a comma
  moved from "voor inloggen, niet voor reclame" to "voor inloggen niet, voor reclame" reverses
  the purpose with the same words, and must not pass as an edit. A break at the start or the
  end counts for nothing (the full stop a publisher adds).

Everything else is a new purpose, a corrected typo included: the broker cannot tell a typo from
a new word, and a school confirming once more is the cheaper mistake.
"""

from __future__ import annotations

import unicodedata

from broker.core.model import Declaration

# Marks that end or split a clause. A full stop and a comma count alike: "…begroeten. Niet voor
# reclame." and "…begroeten, niet voor reclame." state one purpose.
_CLAUSE_BREAKS = frozenset(".,;:!?\u2026")  # … is U+2026
# A clause break among the words (`purpose_of_record`); no word is empty, so "" is free.
BREAK = ""

# How a release policy version that the broker wrote because a purpose changed records its
# author (`policy_changes.changed_by`): the declaration version that changed the purpose.
PURPOSE_CHANGE_PREFIX = "purpose-change:"


def purpose_of_record(text: str) -> tuple[str, ...]:
    """The words of a Dutch purpose with its clause breaks (`BREAK`), as the module docstring
    compares them: two texts with the same value state the same purpose."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    tokens: list[str] = []
    for chunk in folded.split():
        tokens.extend(_chunk_tokens(chunk))
    # One break for a run of them, none at the ends.
    kept: list[str] = []
    for token in tokens:
        if token == BREAK and (not kept or kept[-1] == BREAK):
            continue
        kept.append(token)
    while kept and kept[-1] == BREAK:
        kept.pop()
    return tuple(kept)


def _ignored(character: str) -> bool:
    """Punctuation (quotes, brackets, hyphens, apostrophes) and format characters: nothing."""
    category = unicodedata.category(character)
    return category.startswith("P") or category == "Cf"


def _chunk_tokens(chunk: str) -> list[str]:
    """The words and breaks of one run of non-space characters."""
    if all(_ignored(c) for c in chunk):
        # A mark standing alone between spaces: "inloggen - niet voor reclame" (any dash).
        standing = any(c in _CLAUSE_BREAKS or unicodedata.category(c) == "Pd" for c in chunk)
        return [BREAK] if standing else []
    tokens: list[str] = []
    word: list[str] = []
    for character in chunk:
        if character in _CLAUSE_BREAKS:
            if word:
                tokens.append("".join(word))
                word = []
            tokens.append(BREAK)
        elif not _ignored(character):
            word.append(character)
    if word:
        tokens.append("".join(word))
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
