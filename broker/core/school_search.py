"""Finding a school on the discovery page, in a federation of three schools or of thousands.

A small federation's page lists every school and the browser filters as the student types
(static/discovery.js). A page that listed thousands would be megabytes of HTML per login, and
its Content-Security-Policy would have to name thousands of sign-in origins (a header proxies
refuse beyond a few kilobytes): above `LIST_ALL_UP_TO` schools the page asks for part of the
name first, and shows at most `SHOWN_AT_MOST` matches.

The rule, the same in discovery.js (which gets `ABBREVIATIONS` and `TYPO_MIN_LENGTH` from the
page, so there is one list):
- accents, case and punctuation fold away, hyphens included: "sint bonifatius" finds
  "Sint-Bonifatiuscollege", and the name's words also count joined ("sintbonifatius"); "ij" and
  "y" are one letter, as Dutch keyboards and handwriting have it ("stedelyk" finds "Stedelijk");
- a school is found by its name, its town or its code (BRIN), every typed word somewhere in
  one of them: "gymnasium leiden" finds the Stedelijk Gymnasium in Leiden, not the one in
  Utrecht (the Netherlands has many schools of one name; the town tells them apart);
- each of its aliases (core/school_aliases.py: a former name, an informal one) stands in for
  its name, with the same town and code: "het baken zwolle" finds Baken Lyceum in Zwolle by its
  alias "Het Baken", but the words of one search never mix the name and an alias. A school
  found by an alias and not by its name says which (`Found.aliases`), so the page can show the
  real name with "also known as Het Baken";
- a few common abbreviations in Dutch school names count as the full word, both ways ("st
  bonifatius" finds "Sint-Bonifatiuscollege", "sint" finds "St. Jozef"), in towns too ("St.
  Michielsgestel");
- only when nothing matches that way: one typo per word (a letter wrong, missing, extra, or two
  swapped) in words of `TYPO_MIN_LENGTH` letters or more, in the name or the town ("lyceym"
  finds "Lyceum", "utrcht" finds Utrecht; a code is never guessed).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from broker.core.model import School

# Up to this many schools the page lists them all (and the browser filters).
LIST_ALL_UP_TO = 200
# In a larger federation a search shows at most this many matches; the student types more.
SHOWN_AT_MOST = 50
# Shorter words must match as typed: one typo in three letters matches nearly every name.
TYPO_MIN_LENGTH = 5
# Abbreviation → the full words (folded below: `ABBREVIATIONS`). Small on purpose: only
# abbreviations that stand for one thing in Dutch school names, and none that is a word of its own.
_WRITTEN_OUT = {
    "st": "sint",
    "chr": "christelijk",
    "kath": "katholiek",
    "rk": "rooms katholiek",
    "prot": "protestants",
    "sg": "scholengemeenschap",
    "csg": "christelijke scholengemeenschap",
}

_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower case, accents off, every run of anything but letters and digits one space, and
    "ij" written "y"."""
    # NFKD: compatibility forms too, so the Dutch ligature "ĳ" is found by "ij" (and "y").
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    # "ij" and "y" are one letter to a Dutch student ("stedelyk", "Ysselcollege"): both sides
    # of every comparison are folded, so either spelling finds the other.
    return " ".join(_NOT_LETTER_OR_DIGIT.sub(" ", bare.lower()).split()).replace("ij", "y")


# Folded abbreviation → the folded full words (discovery.js gets this list from the page).
ABBREVIATIONS = {short: fold(full) for short, full in _WRITTEN_OUT.items()}


def expand(folded: str) -> str:
    """`folded` with every abbreviation written out."""
    return " ".join(ABBREVIATIONS.get(word, word) for word in folded.split())


def name_forms(name: str) -> tuple[str, ...]:
    """A name folded and written out (one form when it has no abbreviation)."""
    folded = fold(name)
    return tuple(dict.fromkeys((folded, expand(folded))))


def name_key(forms: tuple[str, ...]) -> str:
    """What a school's name (or town) is searched in: its `name_forms`, and each joined up."""
    joined = dict.fromkeys(form.replace(" ", "") for form in forms)
    return " ".join([*forms, *joined])


def search_key(name: tuple[str, ...], town: tuple[str, ...], school_id: str) -> str:
    """All a school is found by: its name's and its town's `name_forms` (`name_key` of each;
    `town` empty: none) and its code, spaced, so a typed word is looked for in one of them."""
    return f" {name_key(name)} {name_key(town)} {fold(school_id)} "


def one_typo_pattern(word: str) -> re.Pattern[str]:
    """Text holding `word` with at most one letter wrong, missing, extra, or two swapped (a
    match never spans a line: `.` stops at a newline)."""
    n = len(word)
    forms = {re.escape(word[:i]) + "." + re.escape(word[i + 1 :]) for i in range(n)}
    forms |= {re.escape(word[:i] + word[i + 1 :]) for i in range(n)}
    forms |= {re.escape(word[:i]) + "." + re.escape(word[i:]) for i in range(1, n)}
    forms |= {re.escape(word[:i] + word[i + 1] + word[i] + word[i + 2 :]) for i in range(n - 1)}
    return re.compile("|".join(sorted(forms)))


def one_typo_sieve(word: str) -> re.Pattern[str]:
    """Text that can hold `word` with one typo holds its first half or all after its middle
    letter (one edit breaks at most one of the two): a quick scan for candidates."""
    half = len(word) // 2
    return re.compile(f"{re.escape(word[:half])}|{re.escape(word[half + 1 :])}")


@dataclass(frozen=True)
class Found:
    """The schools to show (name order, at most the limit) and how many matched in all."""

    schools: tuple[School, ...]
    total: int
    # False when the page asks for a search first (a large federation, nothing typed yet).
    searched: bool = True
    # Nothing matched as typed: these matched with one typo per word.
    approximate: bool = False
    # Shown schools found by an alias and not by their name: school id → that alias.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # A large federation's: the schools shown are what this search found, never the federation,
    # so the next search is the server's too (discovery.js filters only a small one's list).
    large: bool = False

    @property
    def partial(self) -> bool:
        return self.total > len(self.schools)


class SchoolDirectory:
    """The federation's schools in name order, folded once (a worker keeps one per registry
    generation: building it sorts and folds every school, and indexes the words of names and
    towns for the typo search, so a search costs no folding of names).

    A search looks through entries: one per school (its name, town and code), and one more per
    alias of a school (the alias, the town and the code), a school's entries side by side with
    its name's first. Without aliases the entries are the schools."""

    def __init__(self, schools: Iterable[School]) -> None:
        # Many schools share a town: each town is folded once.
        towns: dict[str, tuple[str, ...]] = {"": ()}

        def town_forms(school: School) -> tuple[str, ...]:
            found = towns.get(school.town)
            if found is None:
                found = towns[school.town] = name_forms(school.town)
            return found

        # Name order as a student reads it: "École" among the E's, not after the Z's; schools of
        # one name by town (one without a town first).
        ordered = sorted(schools, key=lambda s: (fold(s.name), town_forms(s)[:1], s.id))
        self._schools = tuple(ordered)
        self._by_id = {s.id: s for s in ordered}
        # Per entry: the school (its index) and the alias ("": the school's name).
        self._owners = tuple(i for i, s in enumerate(ordered) for _ in range(1 + len(s.aliases)))
        self._aliases = tuple(alias for s in ordered for alias in ("", *s.aliases))
        forms = [
            (name_forms(alias or s.name), town_forms(s), s.id)
            for s in ordered
            for alias in ("", *s.aliases)
        ]
        # The name, the town and the id: a school's ICT officer may tell students its BRIN code.
        self._keys = tuple(search_key(name, town, school_id) for name, town, school_id in forms)
        # The names' and towns' words, one a line, and which entries hold each: a typo search
        # scans this text (in C) instead of every school's name.
        holders: dict[str, list[int]] = {}
        for index, (name, town, _id) in enumerate(forms):
            for word in dict.fromkeys(" ".join((*name, *town)).split()):
                holders.setdefault(word, []).append(index)
        self._words = tuple(holders)
        self._holders = tuple(frozenset(holders[w]) for w in self._words)
        self._word_text = "\n".join(self._words)
        starts, at = [], 0
        for word in self._words:
            starts.append(at)
            at += len(word) + 1
        self._word_starts = tuple(starts)

    def __len__(self) -> int:
        return len(self._schools)

    def get(self, school_id: str) -> School | None:
        """A listed school by id (the remembered one): never a reason to read the registry."""
        return self._by_id.get(school_id)

    def find(self, query: str) -> Found:
        """The schools whose name (or an alias), town or id holds every word of `query` (module
        docstring); an empty query lists every school of a small federation and none of a
        large one."""
        large = len(self._schools) > LIST_ALL_UP_TO
        if large and not fold(query).split():
            return Found((), 0, searched=False, large=True)
        # A small federation's page shows every match, as its full list would.
        return self._found(query, SHOWN_AT_MOST if large else None, large=large)

    def find_all(self, query: str) -> Found:
        """Every school `query` finds by the same rule as `find`, in name order (an empty
        query: every school), however large the federation: for a list that shows them a page
        at a time (the operator's portal)."""
        return self._found(query, None, large=False)

    def _found(self, query: str, limit: int | None, *, large: bool) -> Found:
        """The schools `query` finds (every one when it is empty), the first `limit` shown."""
        words = fold(query).split()
        if not words:
            return Found(self._schools[:limit], len(self._schools), large=large)
        wanted = [tuple(dict.fromkeys((w, ABBREVIATIONS.get(w, w)))) for w in words]
        matched = self._holding_all(wanted)
        approximate = not matched
        if approximate:
            matched = self._with_one_typo(wanted)
        schools, by_alias = self._schools_of(matched)
        shown = tuple(self._schools[i] for i in schools[:limit])
        aliases = {s.id: by_alias[i] for i, s in zip(schools, shown, strict=False) if i in by_alias}
        return Found(
            shown,
            len(schools),
            approximate=approximate and bool(schools),
            aliases=aliases,
            large=large,
        )

    def _schools_of(self, entries: list[int]) -> tuple[list[int], dict[int, str]]:
        """The schools (indexes, name order) of the matched `entries` (in order), and of those
        found by an alias only, the first such alias: a school's name's entry comes before its
        aliases', so a school its name finds names no alias."""
        if len(self._owners) == len(self._schools):  # no school has an alias
            return entries, {}
        schools: list[int] = []
        by_alias: dict[int, str] = {}
        for entry in entries:
            school = self._owners[entry]
            if schools and schools[-1] == school:
                continue
            schools.append(school)
            if alias := self._aliases[entry]:
                by_alias[school] = alias
        return schools, by_alias

    def _holding_all(self, wanted: list[tuple[str, ...]]) -> list[int]:
        """Entries (indexes, in order) whose key holds one of each word's `forms`."""
        if all(len(forms) == 1 for forms in wanted):  # no abbreviation typed: the quick way
            plain = [forms[0] for forms in wanted]
            return [i for i, key in enumerate(self._keys) if all(w in key for w in plain)]
        return [
            i
            for i, key in enumerate(self._keys)
            if all(any(form in key for form in forms) for forms in wanted)
        ]

    def _with_one_typo(self, wanted: list[tuple[str, ...]]) -> list[int]:
        """Entries (indexes, in order) where every word matches as typed, or (a word long
        enough) with one typo in a word of the name (or alias) or the town."""
        candidates: set[int] | None = None
        for forms in wanted:
            holding = set(self._holding_all([forms]))
            if len(forms[0]) >= TYPO_MIN_LENGTH:
                holding |= self._holding_near(forms)
            candidates = holding if candidates is None else candidates & holding
            if not candidates:
                return []
        return sorted(candidates or ())

    def _holding_near(self, forms: tuple[str, ...]) -> set[int]:
        """Entries whose name (or alias) or town has a word within one typo of one of `forms`."""
        found: set[int] = set()
        for form in forms:
            pattern = one_typo_pattern(form)
            candidates = {
                bisect_right(self._word_starts, match.start()) - 1
                for match in one_typo_sieve(form).finditer(self._word_text)
            }
            for word in candidates:
                if pattern.search(self._words[word]):
                    found |= self._holders[word]
        return found
