"""Finding a school on the discovery page, in a federation of three schools or of thousands.

A small federation's page lists every school and the browser filters as the student types
(static/discovery.js). A page that listed thousands would be megabytes of HTML per login, and
its Content-Security-Policy would have to name thousands of sign-in origins (a header proxies
refuse beyond a few kilobytes): above `LIST_ALL_UP_TO` schools the page asks for part of the
name first, and shows at most `SHOWN_AT_MOST` matches. The matching folds accents, case and
punctuation exactly as discovery.js does, so "st bonifatius" finds "St.-Bonifatiuscollege"
whether the browser or the server searched.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from broker.core.model import School

# Up to this many schools the page lists them all (and the browser filters).
LIST_ALL_UP_TO = 200
# In a larger federation a search shows at most this many matches; the student types more.
SHOWN_AT_MOST = 50

_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower case, accents off, every run of anything but letters and digits one space."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NOT_LETTER_OR_DIGIT.sub(" ", bare.lower()).split())


@dataclass(frozen=True)
class Found:
    """The schools to show (name order, at most the limit) and how many matched in all."""

    schools: tuple[School, ...]
    total: int
    # False when the page asks for a search first (a large federation, nothing typed yet).
    searched: bool = True

    @property
    def partial(self) -> bool:
        return self.total > len(self.schools)


class SchoolDirectory:
    """The federation's schools in name order, folded once (a worker keeps one per registry
    generation: building it sorts and folds every school)."""

    def __init__(self, schools: Iterable[School]) -> None:
        # Name order as a student reads it: "École" among the E's, not after the Z's.
        ordered = sorted(schools, key=lambda s: (fold(s.name), s.id))
        self._schools = tuple(ordered)
        self._by_id = {s.id: s for s in ordered}
        # The name and the id: a school's ICT officer may tell students its BRIN code.
        self._keys = tuple(f" {fold(s.name)} {fold(s.id)} " for s in ordered)

    def __len__(self) -> int:
        return len(self._schools)

    def get(self, school_id: str) -> School | None:
        """A listed school by id (the remembered one): never a reason to read the registry."""
        return self._by_id.get(school_id)

    def find(self, query: str) -> Found:
        """The schools whose name or id holds every word of `query`; an empty query lists
        every school of a small federation and none of a large one."""
        words = fold(query).split()
        if not words:
            if len(self._schools) > LIST_ALL_UP_TO:
                return Found((), 0, searched=False)
            return Found(self._schools, len(self._schools))
        matched = [
            school
            for school, key in zip(self._schools, self._keys, strict=True)
            if all(word in key for word in words)
        ]
        # A small federation's page shows every match, as its full list would.
        limit = len(matched) if len(self._schools) <= LIST_ALL_UP_TO else SHOWN_AT_MOST
        return Found(tuple(matched[:limit]), len(matched))
