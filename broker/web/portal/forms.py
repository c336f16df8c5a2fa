"""The portal's forms (Flask-WTF: each carries the session's CSRF token).

Labels are lazy strings, so one class serves both languages. Validators here check shape only;
what the registry refuses (duplicates, unknown ids) comes back as a message next to the field.
"""

from __future__ import annotations

import re
from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, DateInput, ListWidget

from broker.core.catalogue import CATALOGUE
from broker.core.display_text import MAX_NAME, TextFault, TextProblem, name_problem
from broker.core.school_aliases import (
    MAX_ALIASES,
    AliasFault,
    AliasProblem,
    aliases_problem,
    clean_alias,
)
from broker.core.towns import MAX_TOWN, clean_town, town_problem
from broker.saml.metadata_check import MAX_METADATA_BYTES
from broker.web.labels import attribute_label

IDENTIFIER = Regexp(
    r"\A[a-z0-9][a-z0-9-]{0,62}\Z",
    message=_l("Use lower-case letters, digits and hyphens (at most 63)."),
)
SCHOOL_ID = Regexp(
    r"\A[0-9A-Z]{2,12}\Z", message=_l("Use capital letters and digits, such as 99XX00.")
)
CODE = Regexp(r"\A\s*[0-9]{3}\s?[0-9]{3}\s*\Z", message=_l("Enter the 6 digits of your app."))
# Characters, not bytes: the byte limit is checked again on the text (registration.py).
MAX_METADATA_CHARS = MAX_METADATA_BYTES
NEED_CHOICES = [
    SelectChoice("", _l("Not needed")),
    SelectChoice("optional", _l("Optional")),
    SelectChoice("required", _l("Required")),
]


class SignInForm(FlaskForm):
    email = EmailField(_l("E-mail address"), [DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), [DataRequired(), Length(max=256)])
    code = StringField(
        _l("Code from your authenticator app"),
        [DataRequired(), CODE],
        description=_l("6 digits; a new code appears every 30 seconds."),
    )


class AcceptInvitationForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        [DataRequired(), Length(min=12, max=256)],
        description=_l("At least 12 characters."),
    )
    password_again = PasswordField(
        _l("New password again"),
        [DataRequired(), EqualTo("password", message=_l("The two passwords are not the same."))],
    )
    code = StringField(
        _l("Code from your authenticator app"),
        [DataRequired(), CODE],
        description=_l("Add the key above to your app, then enter the code it shows."),
    )


class InviteForm(FlaskForm):
    email = EmailField(_l("E-mail address"), [DataRequired(), Length(max=254)])
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice("school", _l("School administrator")),
            SelectChoice("publisher", _l("Publisher administrator")),
            SelectChoice("operator", _l("Operator")),
        ],
    )
    tenant_id = StringField(
        _l("School id or publisher id"),
        [Optional(), Length(max=64)],
        description=_l("Empty for an operator."),
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
    form), in the page's language with the word, the same for every field; None for a fault of
    the whole text, which each field words its own way."""
    letters = SCRIPT_LETTERS.get(problem.script, problem.script)
    match problem.fault:
        case TextFault.MIXED_SCRIPT:
            message = _l(
                "“%(word)s” mixes Latin letters with %(letters)s that look like them. Use one "
                "script per word.",
                word=problem.word,
                letters=letters,
            )
        case TextFault.LOOK_ALIKE_WORD:
            message = _l(
                "“%(word)s” is written only in %(letters)s that look like Latin ones: it reads "
                "as “%(latin)s”. Write it in Latin letters.",
                word=problem.word,
                letters=letters,
                latin=problem.plain,
            )
        case TextFault.COMPATIBILITY_FORM:
            message = _l(
                "“%(word)s” uses special forms of letters or digits (wide, mathematical or "
                "joined ones). Type it in ordinary ones: “%(plain)s”.",
                word=problem.word,
                plain=problem.plain,
            )
        case _:
            return None
    return str(message)


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


class PublisherForm(FlaskForm):
    publisher_id = StringField(_l("Publisher id"), [DataRequired(), IDENTIFIER])
    name = StringField(_l("Name"), [DataRequired(), Length(max=MAX_NAME), plain_name])


class ChainForm(FlaskForm):
    chain_id = StringField(_l("Chain id"), [DataRequired(), IDENTIFIER])
    name = StringField(_l("Name"), [DataRequired(), Length(max=MAX_NAME), plain_name])


class ServiceChainForm(FlaskForm):
    chain = SelectField(_l("Chain"), choices=[], validate_choice=True)


class EmptyForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


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


class SchoolDetailsForm(FlaskForm):
    """What students see of a school on the discovery page: checked the same way when the
    operator onboards a school (`SchoolForm`) and when they change it later."""

    name = StringField(_l("Name"), [DataRequired(), Length(max=MAX_NAME), plain_name])
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
        [Optional(), Length(max=MAX_ALIASES_TEXT)],
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
    school_id = StringField(_l("School id (BRIN)"), [DataRequired(), SCHOOL_ID])
    metadata_file = FileField(
        _l("SAML metadata file of the school's identity provider"),
        description=_l("Upload a file, or give the address below."),
    )
    metadata_url = URLField(_l("Or: address of the metadata"), [Optional(), Length(max=1000)])

    def validate_metadata_url(self, field: Field) -> None:
        if not field.data and not self.metadata_file.data:
            raise ValidationError(str(_l("Upload the metadata or give its address.")))


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class PolicyForm(FlaskForm):
    active = BooleanField(_l("Switched on for our students"))
    attributes = MultiCheckboxField(
        _l("Share besides the pseudonym"),
        choices=[],
        description=_l("Nothing ticked: the platform receives the pseudonym only."),
    )


class ServiceForm(FlaskForm):
    """Registering or re-declaring a SAML service. One need and one purpose per catalogue
    attribute, built in `service_form_class` (so every field has its own label)."""

    naming = SelectField(
        _l("Attribute names"),
        default="oid",
        choices=[
            SelectChoice("oid", _l("OID (urn:oid:…)")),
            SelectChoice("plain", _l("Plain (givenName, …)")),
        ],
    )


def _purpose_needed(need_field: str) -> object:
    def check(form: FlaskForm, field: Field) -> None:
        if form[need_field].data and not (field.data or "").strip():
            raise ValidationError(str(_l("Say in Dutch why the platform needs this.")))

    return check


SERVICE_ID_HINT = _l(
    "Lower-case letters, digits and hyphens, at most 63, such as educo-lezen. It cannot be "
    "changed later."
)


def service_form_class(
    *, registering: bool, base: type[ServiceForm] = ServiceForm
) -> type[ServiceForm]:
    """The declarations form; `registering` adds id and name, and SAML metadata unless `base`
    brings the fields of another protocol (oidc_forms.OidcClientForm)."""
    attributes: dict[str, object] = {}
    if registering:
        attributes["service_id"] = StringField(
            _l("Service id"), [DataRequired(), IDENTIFIER], description=SERVICE_ID_HINT
        )
        attributes["name"] = StringField(
            _l("Name"), [DataRequired(), Length(max=MAX_NAME), plain_name]
        )
    if registering and base is ServiceForm:
        # Either a file or pasted text (registration.py checks that one is there): the text
        # field also carries an uploaded file's content back into the form when another field
        # needs correcting, as a browser never refills a file input. Metadata holds no
        # personal data.
        attributes["metadata_file"] = FileField(
            _l("SAML metadata file of the service"),
            description=_l("Upload the file, or paste the metadata below."),
        )
        attributes["metadata_xml"] = TextAreaField(
            _l("Or: the SAML metadata as text"),
            [Length(max=MAX_METADATA_CHARS)],
            render_kw={"rows": 6, "spellcheck": "false"},
        )
    if not registering:
        # Set by the page that said how many schools must confirm again (publisher_pages.py).
        attributes["confirmed"] = HiddenField()
    for name in CATALOGUE:
        attributes[f"need_{name}"] = SelectField(
            _l("Need for %(attribute)s", attribute=attribute_label(name)), choices=NEED_CHOICES
        )
        attributes[f"purpose_{name}"] = StringField(
            _l("Purpose of %(attribute)s, in Dutch", attribute=attribute_label(name)),
            [Length(max=500), _purpose_needed(f"need_{name}")],
        )
        attributes[f"purpose_en_{name}"] = StringField(
            _l("Purpose of %(attribute)s, in English (optional)", attribute=attribute_label(name)),
            [Length(max=500)],
        )
    return type("DeclarationsForm", (base,), attributes)


TOTP_SPACES = re.compile(r"\s+")


def digits(code: str) -> str:
    return TOTP_SPACES.sub("", code)


NOTICE_CHOICES = [
    SelectChoice("session", _l("At the first visit in every sign-in session (recommended)")),
    SelectChoice("changes", _l("Only at a student's first visit, and again when it changes")),
]


class NoticeForm(FlaskForm):
    mode = SelectField(_l("When students see what this platform receives"), choices=NOTICE_CHOICES)


class PrivacyContactForm(FlaskForm):
    contact = StringField(
        _l("Privacy contact"),
        [DataRequired(), Length(max=1024)],
        description=_l(
            "An e-mail address (such as privacy@school.nl) or a web page starting with https://. "
            "Students and parents see it on their data page."
        ),
    )


# What `<input type="date">` submits; a browser without a date picker shows a text field.
ISO_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _real_date(form: FlaskForm, field: Field) -> None:
    if not ISO_DATE.match(field.data or ""):
        raise ValidationError(_l("Enter the date as YYYY-MM-DD, such as 2026-11-28."))
    try:
        date.fromisoformat(field.data)
    except ValueError:
        raise ValidationError(
            _l("This date does not exist: check the day and the month.")
        ) from None


STUDENT_CODE = Regexp(
    r"\A[0-9a-f]{12,64}\Z", message=_l("A student code is 12 to 64 characters 0-9 and a-f.")
)


class ReceiptFilterForm(FlaskForm):
    """GET filter of the receipts page: no CSRF (it changes nothing). `student` takes only a
    student code, never an identifier: a GET query ends up in access logs."""

    class Meta:
        csrf = False

    since = StringField(_l("From"), [Optional(), _real_date], widget=DateInput())
    until = StringField(
        _l("Until"),
        [Optional(), _real_date],
        widget=DateInput(),
        description=_l("That day included."),
    )
    service = SelectField(_l("Service"), validate_choice=False)
    attribute = SelectField(_l("Attribute"), validate_choice=False)
    student = StringField(
        _l("Student code"),
        [Optional(), STUDENT_CODE],
        description=_l("As shown on the student's data page, or found below."),
    )

    def validate_until(self, field: Field) -> None:
        since, until = self.since.data or "", field.data or ""
        # Both are YYYY-MM-DD once their own checks passed, so text order is date order.
        if not (self.since.errors or field.errors) and since and until and until < since:
            raise ValidationError(_l("This date is before the From date."))


class StudentLookupForm(FlaskForm):
    """POSTed, so the identifier never appears in a URL or an access log."""

    identifier = StringField(
        _l("The student's identifier"),
        [DataRequired(), Length(max=512)],
        description=_l(
            "As your school's sign-in system sends it (or the ECK iD, if your school uses it). "
            "It is used once to find the student's code and is not kept."
        ),
    )
