"""Checks that several portal forms share: the shape of an id, and names people read (a school,
a publisher, a chain, a service), refused word by word for hidden characters and look-alike
letters (core/display_text.py) in the page's language, naming the characters at fault: a
Kelvin sign pasted from a PDF looks like a K and a zero-width space looks like nothing, so only
their code points and names show what to retype or delete.

Every field's own words: `required` and `at_most` (and `Length(min=…)` with a message of its
own) stand for WTForms' `DataRequired` and `Length`, whose stock texts ("Field must be between 12
and 256 characters long.") are not the portal's and do not match a field's hint; a test checks
that no portal form shows them.

Validators check shape only; what the registry refuses (duplicates, unknown ids) comes back as a
message next to the field.

Labels are lazy strings, so one class serves both languages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, SelectMultipleField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from broker.core.chain_ids import IDENTIFIER as CHAIN_ID_SHAPE
from broker.core.display_text import (
    CharacterAtFault,
    TextFault,
    TextProblem,
    name_problem,
)

# The shape of a chain id (core/chain_ids.py, which the registry checks too), also asked of
# publishers' and services' ids here.
IDENTIFIER = Regexp(
    CHAIN_ID_SHAPE, message=_l("Use lower-case letters, digits and hyphens (at most 63).")
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
# What a refusal calls a character with no Unicode name, by its category (core/display_text.py's
# UNNAMED; a test checks that every one is here).
UNNAMED_CHARACTERS = {
    "Cc": _l("a control character"),
    "Co": _l("a private-use character"),
    "Cs": _l("a surrogate code point"),
    "Cn": _l("an unassigned code point"),
}


# What an empty required field says, unless the field words it its own way.
REQUIRED = _l("Fill in this field.")


def required(message: Any = REQUIRED) -> DataRequired:
    """`DataRequired` with the portal's words (a lazy string: `message`)."""
    return DataRequired(message=message)


def at_most(limit: int) -> Length:
    """`Length(max=limit)` with the portal's words (WTForms fills in `max`)."""
    return Length(max=limit, message=_l("Use at most %(max)d characters."))


NOT_SENT = _l("Nothing of the form was sent. Open the page again and save from there.")


class PrefilledForm(FlaskForm):
    """A form filled from the registry (`data=`) to change it. WTForms keeps the filled-in value
    of a field the request did not send: a field left out stays as it is. A submission with
    none of the fields (only its CSRF token) is no change anyone asked for, yet it would be
    saved (a select's filled-in default even changes what it names): it is refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefilled = kwargs.get("data") is not None

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        valid: bool = super().validate(extra_validators)
        # Checkboxes are left out by a browser when unticked: they say nothing here.
        sendable = [
            f
            for f in self
            if f.name != "csrf_token" and not isinstance(f, BooleanField | SelectMultipleField)
        ]
        if self.prefilled and sendable and all(f.raw_data == [] for f in sendable):
            sendable[0].errors = [*sendable[0].errors, str(NOT_SENT)]
            return False
        return valid


def unchanged(field: Field) -> bool:
    """Whether `field` holds what the registry holds (the form was filled from it): a name or
    town registered before a rule is shown as it is, and saving the other field keeps it."""
    return field.object_data is not None and field.data == field.object_data


def word_refusal(problem: TextProblem) -> str | None:
    """A word that `problem` refuses (core/display_text.py: hidden characters, look-alike
    letters, a compatibility form), in the page's language with the word and the characters at
    fault in it, the same for every field; None for a fault of the whole text (empty, too
    long), which each field words its own way."""
    letters = SCRIPT_LETTERS.get(problem.script, problem.script)
    match problem.fault:
        case TextFault.HIDDEN:
            message = _l(
                "“%(word)s” contains hidden or control characters (shown here as “?”), often "
                "copied along from a PDF or a document. It has %(characters)s.",
                word=problem.word,
                characters=_characters(problem),
            )
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
    point and Unicode name (which has no translation; a character with none by what it is), its
    places in the word and what to do: the ordinary letter or an ordinary space to type instead,
    or delete it; then how many others."""
    # A character with no Unicode name by what it is, in the page's language.
    unnamed = {category: str(kind) for category, kind in UNNAMED_CHARACTERS.items()}
    named = [_character(at_fault, unnamed) for at_fault in problem.characters]
    if problem.more:
        named.append(
            ngettext(
                "and %(num)d other such character",
                "and %(num)d other such characters",
                problem.more,
            )
        )
    return "; ".join(named)


def _character(at_fault: CharacterAtFault, unnamed: dict[str, str]) -> str:
    """One character at fault and what to do, as `CharacterAtFault.instead` says it in English."""
    count = len(at_fault.places)
    named = {"character": at_fault.named_as(unnamed), "places": at_fault.shown_places}
    text: str
    if at_fault.delete:
        text = ngettext(
            "%(character)s as character %(places)s (delete it)",
            "%(character)s as characters %(places)s (delete them)",
            count,
            **named,
        )
    elif at_fault.plain == " ":
        text = ngettext(
            "%(character)s as character %(places)s (type an ordinary space instead)",
            "%(character)s as characters %(places)s (type an ordinary space instead)",
            count,
            **named,
        )
    elif at_fault.plain:
        text = ngettext(
            "%(character)s as character %(places)s (type “%(plain)s” instead)",
            "%(character)s as characters %(places)s (type “%(plain)s” instead)",
            count,
            plain=at_fault.plain,
            **named,
        )
    else:
        text = ngettext(
            "%(character)s as character %(places)s",
            "%(character)s as characters %(places)s",
            count,
            **named,
        )
    return text


def plain_name(_form: FlaskForm, field: Field) -> None:
    """A name students or staff read (core/display_text.py): its emptiness and length are
    `DataRequired`'s and `Length`'s, the rest is said here."""
    if not field.data or unchanged(field):
        return
    problem = name_problem(field.data)
    if problem is not None and (message := word_refusal(problem)) is not None:
        raise ValidationError(message)
