"""A school's other names (aliases): what students still call it after a merger or a rename
("Het Baken", now part of "Baken Lyceum"), its informal name ("CSG Liudger"), a location
("Locatie Zuid"). The discovery page finds the school by them as by its name, and shows the
school's real name with the alias that matched (core/school_search.py).

At most `MAX_ALIASES` a school, each a name as `name_problem` has it (plain text of one line,
at most 200 characters), holding a letter or a digit (an alias a search folds to nothing finds
nothing), none given twice and none the school's own name: the same, that is, to a search
(`school_search.fold`: case, accents and punctuation aside). Pure checks, shared by the CLI,
the registry file import and the operator's portal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from broker.core.display_text import TextProblem, name_problem
from broker.core.school_search import fold

MAX_ALIASES = 10


class AliasFault(Enum):
    TOO_MANY = "too_many"
    NOT_A_NAME = "not_a_name"  # empty, too long, or not plain text
    NOTHING_TO_SEARCH = "nothing_to_search"  # punctuation only
    TWICE = "twice"
    IS_THE_NAME = "is_the_name"


@dataclass(frozen=True)
class AliasProblem:
    """Why a school's aliases cannot be stored: the fault, for a message in the reader's
    language, and the alias at fault (its place in the list, counted from 1; none for
    `TOO_MANY`). `str()` is the English message the CLI and the registry import give."""

    fault: AliasFault
    alias: str = ""
    position: int = 0
    # TWICE: the alias given before it.
    detail: str = ""
    # NOT_A_NAME: why the alias is no name (core/display_text.py), for the caller to word.
    text: TextProblem | None = None

    def __str__(self) -> str:
        # repr: an alias refused for a control character shows it escaped, not acted on.
        alias = repr(self.alias)
        match self.fault:
            case AliasFault.TOO_MANY:
                return f"a school has at most {MAX_ALIASES} aliases"
            case AliasFault.NOT_A_NAME:
                return f"the alias {alias} {self.text}"
            case AliasFault.NOTHING_TO_SEARCH:
                return f"the alias {alias} must hold a letter or a digit"
            case AliasFault.TWICE if self.detail == self.alias:
                return f"the alias {alias} is given twice"
            case AliasFault.TWICE:
                return f"the alias {alias} is {self.detail!r} again, as a search reads it"
            case AliasFault.IS_THE_NAME:
                return f"the alias {alias} is the school's name"


def clean_alias(value: str) -> str:
    """An alias as stored: spaces trimmed, every run of white space one space."""
    return " ".join(value.split())


def clean_aliases(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(clean_alias(value) for value in values)


def aliases_problem(name: str, aliases: Sequence[str]) -> AliasProblem | None:
    """The first reason the school called `name` cannot have `aliases` (as `clean_alias` left
    them), or None when it can."""
    if len(aliases) > MAX_ALIASES:
        return AliasProblem(AliasFault.TOO_MANY)
    # Folded → the alias given so; the name's own folded form maps to "".
    seen = {fold(name): ""}
    for position, alias in enumerate(aliases, start=1):
        if problem := name_problem(alias):
            return AliasProblem(AliasFault.NOT_A_NAME, alias, position, text=problem)
        folded = fold(alias)
        if not folded:
            return AliasProblem(AliasFault.NOTHING_TO_SEARCH, alias, position)
        if folded in seen:
            earlier = seen[folded]
            fault = AliasFault.TWICE if earlier else AliasFault.IS_THE_NAME
            return AliasProblem(fault, alias, position, earlier)
        seen[folded] = alias
    return None
