"""Names and towns that students and staff read: a school's, a service's, a chain's, a
publisher's. One line of plain text each.

What is refused is what would deceive a reader rather than what looks odd: control and format
characters (Unicode category C*), among them invisible ones (a zero-width space makes two names
that look the same differ) and direction overrides (U+202E shows a name read backwards); letters
and digits in a compatibility form of an ordinary one (a fullwidth or mathematical bold W), or
a phonetic letter or unit sign drawn as one (a script g, the Kelvin sign); a word that mixes
Latin letters with look-alike letters of another script ("Woordwijs" with a Cyrillic o, U+043E:
two services that read the same, one of them a phishing copy); and a word written wholly in
Cyrillic, Greek, Armenian or Coptic letters that pass for Latin ones ("Coco" in Cyrillic). Pure
checks, shared by the CLI, the registry file import and the portals: each returns a
`TextProblem` (which rule, which word, where, and which characters in it are at fault, each by
its code point, its Unicode name and what to do: the plain letter to type instead, an ordinary
space, or delete it), and every caller words its own message from it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from broker.core.latin_look_alikes import (
    LATIN_LOOK_ALIKES,
    LATIN_VARIANTS,
    NEVER_SHOWN,
    WHOLE_SCRIPT_CHECKED,
)

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
# as no script at all. Other scripts with a few look-alikes (Canadian Syllabics, Tifinagh) or
# near ones (Georgian: core/latin_look_alikes.py) are not covered.
LOOK_ALIKE_SCRIPTS = frozenset({"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC", "LISU"})
# How much of a refused word a message repeats.
MAX_SHOWN_WORD = 40
# How many different characters at fault a message names (the rest it counts), and at how many
# places in the word each: a fullwidth name has a dozen, and the first few tell the reader what
# is wrong and what to type.
MAX_NAMED = 3
MAX_PLACES = 3

# The controls that are white space (a tab or a line break pasted from a spreadsheet or a
# document) have no Unicode name: a message names them by their formal alias in Unicode's
# NameAliases.txt, which `unicodedata.lookup` knows, so each is checked here as it is read.
_CONTROL_ALIASES = {
    unicodedata.lookup(alias): alias
    for alias in (
        "CHARACTER TABULATION",
        "LINE FEED",
        "LINE TABULATION",
        "FORM FEED",
        "CARRIAGE RETURN",
        "INFORMATION SEPARATOR FOUR",
        "INFORMATION SEPARATOR THREE",
        "INFORMATION SEPARATOR TWO",
        "INFORMATION SEPARATOR ONE",
        "NEXT LINE",
    )
}
# What a message calls a character with no Unicode name (and no alias above), by its category:
# these are the only characters a refusal names that have none (so are the Tangut ideographs to
# Python, which no rule refuses). The portals word them in the page's language
# (web/portal/field_checks.py).
UNNAMED = {
    "Cc": "a control character",
    "Co": "a private-use character",
    "Cs": "a surrogate code point",
    "Cn": "an unassigned code point",
}

# Compatibility forms that only restate an ordinary letter or digit in another width, font or as
# a ligature: NFKC replaces them, and a reader sees the ordinary one. Raised, lowered, circled and
# squared forms (<super>: ª º ², <sub>, <circle>, <square>, <fraction>) stay allowed: they show
# for what they are ("nº 5", "Lab²"), and NFKC changes no letter a reader would mistake.
_COMPATIBILITY_TAGS = ("<wide>", "<font>", "<compat>")
# Kept though NFKC replaces them: the Dutch ij as one letter (U+0132, U+0133: Dutch capitalises
# it as one, "Ĳsselmonde", and it reads as exactly the IJ that NFKC makes of it, so it deceives
# no reader about what the name says), and the micro sign (on European keyboards; NFKC makes it
# the Greek mu it looks like, no Latin letter).
_KEPT_COMPATIBILITY = frozenset("\u0132\u0133\u00b5")


class TextFault(Enum):
    EMPTY = "empty"
    TOO_LONG = "too_long"
    HIDDEN = "hidden"  # a control, format, separator or invisible character
    # a fullwidth or mathematical letter, a ligature, a script g (core/latin_look_alikes.py)
    COMPATIBILITY_FORM = "compatibility_form"
    MIXED_SCRIPT = "mixed_script"  # Latin letters and look-alikes of another script in a word
    # only Cyrillic, Greek, Armenian, Coptic, Lisu or Cherokee letters that pass for Latin ones
    LOOK_ALIKE_WORD = "look_alike_word"


@dataclass(frozen=True)
class CharacterAtFault:
    """A character of a refused word that a message names: a Kelvin sign, a fullwidth W and a
    Cyrillic o look like K, W and o, and a zero-width space or a soft hyphen shows nothing, so a
    message that only repeats the word shows the reader nothing to fix. Its code point and
    Unicode name say which it is ("U+212A KELVIN SIGN"), the places where it stands in the
    word, and what to do: the ordinary letter to type instead, or (a hidden character) an
    ordinary space to type instead or nothing, to delete it."""

    character: str
    places: tuple[int, ...]  # in the word, counted from 1
    # The ordinary letter or digit (or "fi", "XII") to type instead, " " for an ordinary space;
    # "" if none.
    plain: str = ""
    delete: bool = False  # a hidden character with nothing to type instead: delete it

    @property
    def code(self) -> str:
        return f"U+{ord(self.character):04X}"

    @property
    def name(self) -> str:
        """Its Unicode name ("ZERO WIDTH SPACE"), a white-space control's alias ("CHARACTER
        TABULATION"), or "" for a character that has neither (`UNNAMED`: its category says
        what it is)."""
        return unicodedata.name(self.character, "") or _CONTROL_ALIASES.get(self.character, "")

    @property
    def category(self) -> str:
        return unicodedata.category(self.character)

    def named_as(self, unnamed: Mapping[str, str]) -> str:
        """Its code point and name ("U+212A KELVIN SIGN"), or for a character with no name
        what `unnamed` calls its category ("U+0001 (a control character)")."""
        return f"{self.code} {self.name or f'({unnamed.get(self.category, self.category)})'}"

    @property
    def named(self) -> str:
        """As the CLI and the registry file import name it, in English."""
        return self.named_as(UNNAMED)

    @property
    def instead(self) -> str:
        """What to do, in English: ' (type "K" instead)', ' (delete it)'; "" if nothing."""
        if self.delete:
            return " (delete them)" if len(self.places) > 1 else " (delete it)"
        if self.plain == " ":
            return " (type an ordinary space instead)"
        return f' (type "{self.plain}" instead)' if self.plain else ""

    @property
    def shown_places(self) -> str:
        """Its places in the word as a message lists them: "2", "2, 3", "2, 3, 5, …"."""
        shown = ", ".join(str(place) for place in self.places[:MAX_PLACES])
        return shown + (", …" if len(self.places) > MAX_PLACES else "")


@dataclass(frozen=True)
class TextProblem:
    """Why a text cannot be shown as a name or a town: the rule (`fault`), and what a message
    names. `str()` is the English "must …" the CLI and the registry file import give."""

    fault: TextFault
    limit: int = 0  # TOO_LONG: the most characters allowed
    # The first character at fault, counted from 1 (0 for EMPTY and TOO_LONG).
    position: int = 0
    # The word at fault, as a message shows it (`shown_excerpt`; a hidden character as "?").
    word: str = ""
    script: str = ""  # MIXED_SCRIPT, LOOK_ALIKE_WORD: the other script ("Cyrillic")
    # COMPATIBILITY_FORM: the word in ordinary letters; LOOK_ALIKE_WORD: the Latin it reads as.
    plain: str = ""
    # HIDDEN, COMPATIBILITY_FORM, MIXED_SCRIPT, LOOK_ALIKE_WORD: the first `MAX_NAMED`
    # different characters of `word` at fault, in order, and how many different others there are.
    characters: tuple[CharacterAtFault, ...] = ()
    more: int = 0

    def __str__(self) -> str:
        match self.fault:
            case TextFault.EMPTY:
                return "must not be empty"
            case TextFault.TOO_LONG:
                return f"must be at most {self.limit} characters"
            case TextFault.HIDDEN:
                return (
                    "must not contain hidden or control characters: "
                    f'"{self.word}" has {self.characters_named}'
                )
            case TextFault.COMPATIBILITY_FORM:
                return (
                    "must be written in ordinary letters and digits, not in wide, mathematical "
                    f'or other special forms of them: "{self.word}" has {self.characters_named}'
                )
            case TextFault.MIXED_SCRIPT:
                return (
                    f"must not mix Latin letters with look-alike {self.script} ones in one word: "
                    f'"{self.word}" has {self.characters_named}'
                )
            case TextFault.LOOK_ALIKE_WORD:
                return (
                    f"must not spell a word only in {self.script} letters that look like Latin "
                    f'ones: "{self.word}" reads as "{self.plain}" and has {self.characters_named}'
                )

    @property
    def characters_named(self) -> str:
        """The characters at fault in English, as the CLI and the registry file import name
        them: 'U+212A KELVIN SIGN as character 1 (type "K" instead); …; and 2 other such
        characters'. The portals word them in the page's language (web/portal/field_checks.py)."""
        named = []
        for at_fault in self.characters:
            s = "s" if len(at_fault.places) > 1 else ""
            named.append(
                f"{at_fault.named} as character{s} {at_fault.shown_places}{at_fault.instead}"
            )
        if self.more:
            named.append(f"and {self.more} other such character{'s' if self.more > 1 else ''}")
        return "; ".join(named)


def plain_text_problem(text: str, limit: int) -> TextProblem | None:
    """Why `text` cannot be shown as a name or a town, or None when it can."""
    if len(text) > limit:
        return TextProblem(TextFault.TOO_LONG, limit=limit)
    for index, character in enumerate(text):
        if _hidden(character):
            return _hidden_refusal(text, index)
    if text.isascii():  # the usual name: every letter Latin and ordinary, nothing to look up
        return None
    return compatibility_form(text) or mixed_script_word(text) or look_alike_word(text)


def name_problem(name: str) -> TextProblem | None:
    """Why `name` cannot be the name of a school, service, chain or publisher, or None."""
    if not name.strip():
        return TextProblem(TextFault.EMPTY)
    return plain_text_problem(name, MAX_NAME)


def holds_hidden(text: str) -> bool:
    """Whether `text` holds a character no one sees (a control or format character, a line
    separator): a search box's text that no one typed."""
    return any(map(_hidden, text))


def _hidden(character: str) -> bool:
    # C*: control and format characters (zero-width, direction overrides); Zl/Zp: line and
    # paragraph separators (a second line in a one-line name).
    category = unicodedata.category(character)
    return category[0] == "C" or category in ("Zl", "Zp") or character in _INVISIBLE


def _hidden_refusal(text: str, index: int) -> TextProblem:
    """The refusal of `text`, whose first hidden character stands at `index`: the word it
    stands in, shown with each hidden character as "?", and the hidden characters of that word,
    counted in the word as the look-alike refusals count (a word is what an ordinary space
    separates, so a tab between two words makes them one)."""
    word = _word_at(text, index)
    characters, more = _at_fault(word, _hidden, _space_instead, delete=True)
    return TextProblem(
        TextFault.HIDDEN,
        position=index + 1,
        word=shown_excerpt("".join("?" if _hidden(c) else c for c in word), MAX_SHOWN_WORD),
        characters=characters,
        more=more,
    )


def _space_instead(word: str, index: int) -> str:
    """An ordinary space to type instead of the hidden character at `index` of `word` when it is
    white space (a tab, a line break) that parts two pieces of the word nothing else parts; ""
    (delete it) for any other, and for white space at either end of the word, which an ordinary
    space or the end of the text already parts."""
    parts = index > 0 and not word[index - 1].isspace() and bool(word[index + 1 :].strip())
    return " " if parts and word[index].isspace() else ""


def _words(text: str) -> Iterator[tuple[int, str]]:
    """Each word of `text` with the index of its first character. A word is what an ordinary
    space (U+0020) separates: see `mixed_script_word`."""
    start = 0
    for word in text.split(" "):
        yield start, word
        start += len(word) + 1


def _word_at(text: str, index: int) -> str:
    start = text.rfind(" ", 0, index) + 1
    end = text.find(" ", index)
    return text[start : end if end >= 0 else len(text)]


def _at_fault(
    word: str,
    faulty: Callable[[str], bool],
    plain: Callable[[str, int], str],
    *,
    delete: bool = False,
) -> tuple[tuple[CharacterAtFault, ...], int]:
    """The first `MAX_NAMED` different characters of `word` that are `faulty`, each with its
    places in the word and the `plain` letter to type instead (given the word and the index),
    and how many different others. A character with two different letters to type at its
    places (a tab between two pieces of a word and one at its end) is named twice. `delete`:
    one with nothing to type instead is to be deleted."""
    places: dict[tuple[str, str], list[int]] = {}
    for index, character in enumerate(word):
        if faulty(character):
            places.setdefault((character, plain(word, index)), []).append(index + 1)
    found = list(places.items())
    named = tuple(
        CharacterAtFault(c, tuple(at), typed, delete and not typed)
        for (c, typed), at in found[:MAX_NAMED]
    )
    return named, len(found) - len(named)


# What to type instead of the character at an index of a word, for `_at_fault`.
def _latin_letter(word: str, index: int) -> str:
    return LATIN_LOOK_ALIKES.get(word[index], "")


def _no_letter(_word: str, _index: int) -> str:
    return ""


def _ordinary_letter(word: str, index: int) -> str:
    return _ordinary(word[index])


def _compatibility_letter(character: str) -> bool:
    return character in LATIN_VARIANTS or (
        unicodedata.category(character)[0] in "LN"
        and character not in _KEPT_COMPATIBILITY
        and unicodedata.decomposition(character).startswith(_COMPATIBILITY_TAGS)
    )


def _ordinary(character: str) -> str:
    """The ordinary letter or digit that a compatibility letter stands for."""
    return LATIN_VARIANTS.get(character) or unicodedata.normalize("NFKC", character)


def compatibility_form(text: str) -> TextProblem | None:
    """The first word of `text` with a letter or digit in a compatibility form of an ordinary
    one (a fullwidth W, U+FF37; mathematical bold or script letters; a ligature such as fi,
    U+FB01; a Roman numeral XII, U+216B: what NFKC would replace), or with a letter that is
    drawn as an ordinary Latin one and is not it (core/latin_look_alikes.LATIN_VARIANTS: the
    script g of phonetics, U+0261; a small capital c, U+1D04; the Kelvin sign, U+212A, whose
    decomposition to K is canonical, not tagged), or None.

    The ordinary letter looks the same, or nearly, so "Woordwijs" in fullwidth or mathematical
    letters reads as the real name and is not it; no one types these forms for a Dutch name
    (they come from a copy of styled text, or from someone who wants the look-alike), nor
    writes a name in phonetic letters. Accented letters are no compatibility form (é, or e with
    a combining accent, is canonical, NFC), and punctuation is not judged: a typographic
    apostrophe (U+2019) and "…" stay as they are."""
    for index, character in enumerate(text):
        if not character.isascii() and _compatibility_letter(character):
            word = _word_at(text, index)
            plain = "".join(_ordinary(c) if _compatibility_letter(c) else c for c in word)
            characters, more = _at_fault(
                word,
                lambda c: not c.isascii() and _compatibility_letter(c),
                _ordinary_letter,
            )
            return TextProblem(
                TextFault.COMPATIBILITY_FORM,
                position=index + 1,
                word=shown_excerpt(word, MAX_SHOWN_WORD),
                plain=shown_excerpt(plain, MAX_SHOWN_WORD),
                characters=characters,
                more=more,
            )
    return None


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
    Latin: each word reads as what it is). A word wholly in look-alike letters is
    `look_alike_word`'s.

    The letters at fault are those of the look-alike script, each with the Latin letter it
    passes for; in a word mostly of that script (a Russian name with one Latin a typed into it)
    they are the Latin ones, which have no other letter to type instead."""
    if text.isascii():  # the usual name: every letter Latin, nothing to look up
        return None
    for start, word in _words(text):
        if not word.isascii() and (script := _look_alike_beside_latin(word)):
            characters, more = _mixed_at_fault(word)
            return TextProblem(
                TextFault.MIXED_SCRIPT,
                position=start + characters[0].places[0],
                word=shown_excerpt(word, MAX_SHOWN_WORD),
                script=script.title(),
                characters=characters,
                more=more,
            )
    return None


def _mixed_at_fault(word: str) -> tuple[tuple[CharacterAtFault, ...], int]:
    """The letters of a mixed word that are at fault: those of the side with fewer letters,
    the look-alike side when the two are even."""
    scripts = {c: _script(c) for c in dict.fromkeys(word) if c.isalpha()}
    latin = sum(1 for c in word if scripts.get(c) == "LATIN")
    other = sum(1 for c in word if scripts.get(c) in LOOK_ALIKE_SCRIPTS)
    if latin < other:
        return _at_fault(word, lambda c: scripts.get(c) == "LATIN", _no_letter)
    return _at_fault(
        word,
        lambda c: scripts.get(c) in LOOK_ALIKE_SCRIPTS,
        _latin_letter,
    )


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


def look_alike_word(text: str) -> TextProblem | None:
    """The first word of `text` in Cyrillic, Greek, Armenian, Coptic, Lisu or Cherokee letters
    that all pass for Latin ones ("Coco", "CITO" or "school" spelt in Cyrillic, "Logo" in
    Armenian, "CITO" in Coptic: core/latin_look_alikes.py), when no letter of that script
    anywhere in `text` shows the script for what it is; or None.

    Refused whether or not the name has Latin words too: the copy most worth making is of a
    one-word brand with nothing beside it. A real Russian, Ukrainian, Greek or Armenian name
    almost always holds a letter that no Latin one resembles (Cyrillic sha, el, ya, i; Greek
    lambda, sigma, theta, an accented vowel; Armenian ayb, ben, reh), and then a short word
    wholly of look-alikes within it (the Russian "s", "o", the Greek article "To") passes: the
    reader sees the script. A modifier letter (Unicode category Lm: the Armenian half ring
    U+0559, the Greek numeral sign U+0374) shows nothing of it: it reads as a quote or an accent
    mark, so "Logo" in Armenian between two half rings is still refused. Judged over
    the whole text, so a name that is only capitals of look-alikes ("TO KENTPO" in Greek) must
    be written with its lower-case letters. Lisu and Cherokee letters (NEVER_SHOWN) show
    nothing: no name in a Dutch federation is written in them, so any word of them is refused."""
    if text.isascii():
        return None
    first: dict[str, int] = {}  # script → index of its first letter
    shown: set[str] = set()  # scripts with a letter no Latin one resembles
    scripts: dict[str, str] = {}  # each letter's script, looked up once
    for index, character in enumerate(text):
        if character.isascii() or not character.isalpha():
            continue
        if character not in scripts:
            scripts[character] = _script(character)
        script = scripts[character]
        if script in WHOLE_SCRIPT_CHECKED:
            first.setdefault(script, index)
            if (
                script not in shown
                and character not in LATIN_LOOK_ALIKES
                and script not in NEVER_SHOWN
                and unicodedata.category(character) != "Lm"
            ):
                shown.add(script)
    refused = [(index, script) for script, index in first.items() if script not in shown]
    if not refused:
        return None
    index, script = min(refused)
    word = _word_at(text, index)
    as_latin = "".join(LATIN_LOOK_ALIKES.get(c, c) for c in word)
    # Its letters of that script, each with the Latin one it passes for; a modifier letter
    # (the Armenian half ring) reads as a quote and is no letter at fault.
    characters, more = _at_fault(
        word,
        lambda c: scripts.get(c) == script and unicodedata.category(c) != "Lm",
        _latin_letter,
    )
    return TextProblem(
        TextFault.LOOK_ALIKE_WORD,
        position=index + 1,
        word=shown_excerpt(word, MAX_SHOWN_WORD),
        script=script.title(),
        plain=shown_excerpt(as_latin, MAX_SHOWN_WORD),
        characters=characters,
        more=more,
    )


def shown_excerpt(text: str, limit: int = MAX_SHOWN) -> str:
    """A peer's text as an error message repeats it, to a page, a terminal or a log line: cut
    short, every character that is not printable shown as "?"."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")
