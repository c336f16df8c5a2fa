"""The operator's forms: publishers, chains, a service's chain, and a school as students see it
(name, town, other names) with its identity provider's metadata when it is onboarded.

What the registry refuses (duplicates, unknown ids) comes back as a message next to the field.
Labels are lazy strings, so one class serves both languages.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import Field, IntegerField, SelectField, StringField, TextAreaField, URLField
from wtforms.validators import (
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from broker.core.display_text import MAX_NAME
from broker.core.pseudonym_rotation import MAX_WINDOW_DAYS
from broker.core.school_aliases import (
    MAX_ALIASES,
    AliasFault,
    AliasProblem,
    aliases_problem,
    clean_alias,
)
from broker.core.towns import MAX_TOWN, clean_town, town_problem
from broker.web.portal.field_checks import (
    IDENTIFIER,
    PrefilledForm,
    at_most,
    plain_name,
    required,
    unchanged,
    word_refusal,
)

SCHOOL_ID = Regexp(
    r"\A[0-9A-Z]{2,12}\Z", message=_l("Use capital letters and digits, such as 99XX00.")
)


class PublisherForm(FlaskForm):
    publisher_id = StringField(_l("Publisher id"), [required(), IDENTIFIER])
    name = StringField(_l("Name"), [required(), at_most(MAX_NAME), plain_name])


class ChainForm(FlaskForm):
    chain_id = StringField(_l("Chain id"), [required(), IDENTIFIER])
    name = StringField(_l("Name"), [required(), at_most(MAX_NAME), plain_name])


class ServiceChainForm(FlaskForm):
    chain = SelectField(_l("Chain"), choices=[], validate_choice=True)
    # Empty: moved without a window (core/chain_move.py), as before this field.
    window = IntegerField(
        _l("Migration window (days)"),
        [Optional(), NumberRange(min=1, max=MAX_WINDOW_DAYS)],
    )


def _as_stored_town(value: object) -> object:
    return clean_town(value) if isinstance(value, str) else value


# One line of the other names' text area each (a browser sends CR LF); a line or paragraph
# separator inside a line is no line break here: plain_text_problem refuses it.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_ALIASES_TEXT = MAX_ALIASES * (MAX_NAME + 2)


def _alias_message(problem: AliasProblem, line: int) -> str:
    """`problem` in the operator's language, at its line of the text area."""
    match problem.fault:
        case AliasFault.TOO_MANY:
            message = _l("Give at most %(max)d other names, one per line.", max=MAX_ALIASES)
        case AliasFault.NOT_A_NAME if problem.text and (refusal := word_refusal(problem.text)):
            # The same words as for a name or a town (word_refusal), at the alias's line.
            message = _l("Line %(line)d: %(problem)s", line=line, problem=refusal)
        case AliasFault.NOT_A_NAME:
            message = _l(
                "Line %(line)d: use at most %(max)d letters, digits, spaces and punctuation.",
                line=line,
                max=MAX_NAME,
            )
        case AliasFault.NOTHING_TO_SEARCH:
            message = _l("Line %(line)d: give a name with letters or digits.", line=line)
        case AliasFault.TWICE:
            message = _l(
                "Line %(line)d: “%(alias)s” is the same as “%(earlier)s” (capitals, accents "
                "and punctuation do not count).",
                line=line,
                alias=problem.alias,
                earlier=problem.detail,
            )
        case AliasFault.IS_THE_NAME:
            message = _l(
                "Line %(line)d: “%(alias)s” is the school's name itself.",
                line=line,
                alias=problem.alias,
            )
    return str(message)


class SchoolDetailsForm(PrefilledForm):
    """What students see of a school on the discovery page: checked the same way when the
    operator onboards a school (`SchoolForm`) and when they change it later."""

    name = StringField(_l("Name"), [required(), at_most(MAX_NAME), plain_name])
    town = StringField(
        _l("Town"),
        [Optional()],
        filters=[_as_stored_town],
        description=_l(
            "Shown under the school's name when students choose their school, and searched "
            "there: it tells schools of the same name apart."
        ),
    )

    aliases = TextAreaField(
        _l("Other names"),
        [Optional(), at_most(MAX_ALIASES_TEXT)],
        description=_l(
            "One per line, at most %(max)d: names students still know the school by, such as "
            "a former name after a merger, an informal name or a location. Students find the "
            "school by them too, and then see its name with the other name they typed.",
            max=MAX_ALIASES,
        ),
    )

    def validate_town(self, field: Field) -> None:
        if not field.data or unchanged(field) or (problem := town_problem(field.data)) is None:
            return
        message = _l("Use at most %(max)d letters, digits, spaces and punctuation.", max=MAX_TOWN)
        raise ValidationError(word_refusal(problem) or str(message))

    def _alias_lines(self) -> list[tuple[int, str]]:
        """The other names as stored, each with its line number; empty lines skipped."""
        lines = _LINE_BREAK.split(self.aliases.data or "")
        cleaned = ((number, clean_alias(line)) for number, line in enumerate(lines, start=1))
        return [(number, alias) for number, alias in cleaned if alias]

    def alias_list(self) -> tuple[str, ...]:
        """The other names as stored (checked by `validate`)."""
        return tuple(alias for _number, alias in self._alias_lines())

    def validate_aliases(self, field: Field) -> None:
        # Checked against the name as given (an unusable name has its own error).
        lines = self._alias_lines()
        problem = aliases_problem(self.name.data or "", [alias for _n, alias in lines])
        if problem is not None:
            line = lines[problem.position - 1][0] if problem.position else 0
            raise ValidationError(_alias_message(problem, line))


class SchoolForm(SchoolDetailsForm):
    school_id = StringField(_l("School id (BRIN)"), [required(), SCHOOL_ID])
    metadata_file = FileField(
        _l("SAML metadata file of the school's identity provider"),
        description=_l("Upload a file, or give the address below."),
    )
    # No Optional(): it would stop the chain before validate_metadata_url sees an empty field.
    metadata_url = URLField(_l("Or: address of the metadata"), [at_most(1000)])

    def validate_metadata_url(self, field: Field) -> None:
        if not (field.data or "").strip() and not self.metadata_file.data:
            raise ValidationError(str(_l("Upload the metadata or give its address.")))
