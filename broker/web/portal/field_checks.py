"""Checks that several portal forms share: the shape of an id, and names people read (a school,
a publisher, a chain, a service), refused word by word for look-alike letters
(core/display_text.py) in the page's language, naming the characters at fault: a Kelvin sign
pasted from a PDF looks like a K, so only its code point and name show what to retype.

Validators check shape only; what the registry refuses (duplicates, unknown ids) comes back as a
message next to the field.

Labels are lazy strings, so one class serves both languages.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from wtforms import Field
from wtforms.validators import Regexp, ValidationError

from broker.core.display_text import CharacterAtFault, TextFault, TextProblem, name_problem

IDENTIFIER = Regexp(
    r"\A[a-z0-9][a-z0-9-]{0,62}\Z",
    message=_l("Use lower-case letters, digits and hyphens (at most 63)."),
)


# The look-alike scripts of core/display_text.py, as a refusal names them (a test checks that
# every one is here).
SCRIPT_LETTERS = {
    "Cyrillic": _l("Cyrillic letters"),
    "Greek": _l("Greek letters"),
    "Armenian": _l("Armenian letters"),
    "Cherokee": _l("Cherokee letters"),
    "Coptic": _l("Coptic letters"),
    "Lisu": _l("Lisu letters"),
}


def unchanged(field: Field) -> bool:
    """Whether `field` holds what the registry holds (the form was filled from it): a name or
    town registered before a rule is shown as it is, and saving the other field keeps it."""
    return field.object_data is not None and field.data == field.object_data


def word_refusal(problem: TextProblem) -> str | None:
    """A word that `problem` refuses (core/display_text.py: look-alike letters, a compatibility
    form), in the page's language with the word and the characters at fault in it, the same for
    every field; None for a fault of the whole text, which each field words its own way."""
    letters = SCRIPT_LETTERS.get(problem.script, problem.script)
    match problem.fault:
        case TextFault.MIXED_SCRIPT:
            message = _l(
                "“%(word)s” mixes Latin letters with %(letters)s that look like them. It has "
                "%(characters)s. Use one script per word.",
                word=problem.word,
                letters=letters,
                characters=_characters(problem),
            )
        case TextFault.LOOK_ALIKE_WORD:
            message = _l(
                "“%(word)s” is written only in %(letters)s that look like Latin ones: it reads "
                "as “%(latin)s”. It has %(characters)s. Write it in Latin letters.",
                word=problem.word,
                letters=letters,
                latin=problem.plain,
                characters=_characters(problem),
            )
        case TextFault.COMPATIBILITY_FORM:
            message = _l(
                "“%(word)s” uses special forms of letters or digits (wide, mathematical or "
                "joined ones). It has %(characters)s. Type the word again in ordinary letters and "
                "digits.",
                word=problem.word,
                characters=_characters(problem),
            )
        case _:
            return None
    return str(message)


def _characters(problem: TextProblem) -> str:
    """The characters at fault in a refused word, in the page's language: each by its code
    point and Unicode name (which has no translation), its places in the word and the ordinary
    letter to type instead; then how many others."""
    named = [_character(at_fault) for at_fault in problem.characters]
    if problem.more:
        named.append(
            ngettext(
                "and %(num)d other such character",
                "and %(num)d other such characters",
                problem.more,
            )
        )
    return "; ".join(named)


def _character(at_fault: CharacterAtFault) -> str:
    count, places = len(at_fault.places), at_fault.shown_places
    text: str
    if at_fault.plain:
        text = ngettext(
            "%(character)s as character %(places)s (type “%(plain)s” instead)",
            "%(character)s as characters %(places)s (type “%(plain)s” instead)",
            count,
            character=at_fault.named,
            places=places,
            plain=at_fault.plain,
        )
    else:
        text = ngettext(
            "%(character)s as character %(places)s",
            "%(character)s as characters %(places)s",
            count,
            character=at_fault.named,
            places=places,
        )
    return text


def plain_name(_form: FlaskForm, field: Field) -> None:
    """A name students or staff read (core/display_text.py): its emptiness and length are
    `DataRequired`'s and `Length`'s, the rest is said here."""
    if not field.data or unchanged(field):
        return
    problem = name_problem(field.data)
    if problem is None or problem.fault in (TextFault.EMPTY, TextFault.TOO_LONG):
        return
    message = word_refusal(problem)
    raise ValidationError(message or str(_l("Use letters, digits, spaces and punctuation only.")))
