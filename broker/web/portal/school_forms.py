"""A school administrator's forms: the policy per service, when students see the information
notice, the privacy contact, and the receipts page's filter and student lookup.

Labels are lazy strings, so one class serves both languages.
"""

from __future__ import annotations

import re
from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    HiddenField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, DateInput, ListWidget

from broker.web.portal.field_checks import at_most, required


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


NOTICE_CHOICES = [
    SelectChoice("session", _l("Every sign-in session (recommended)")),
    SelectChoice("changes", _l("Only at a student's first visit, and again when it changes")),
]


class PolicyForm(FlaskForm):
    """A service's page in one form: the release choice and when students see the information
    notice, so that saving one never drops what was changed in the other. The notice setting is
    no part of the release policy: changed alone, it makes no new policy version."""

    active = BooleanField(_l("Switched on for our students"))
    attributes = MultiCheckboxField(
        _l("Share besides the pseudonym"),
        choices=[],
        description=_l("If you tick nothing, the platform receives the pseudonym only."),
    )
    # The declaration version the page showed: a choice made on a page the publisher changed
    # since (an attribute declared again with another purpose, made required) is not saved as
    # the school's agreement to declarations it never read (school_pages.py).
    declarations_seen = HiddenField()
    # The school's policy version the page showed ("0": no choice yet): a choice made on a page
    # a colleague's saved choice has overtaken since would silently undo it (school_pages.py).
    policy_seen = HiddenField()
    mode = SelectField(_l("When students see what this platform receives"), choices=NOTICE_CHOICES)
    # The notice setting the page showed: only one the administrator changed is saved, so a
    # page left open does not put back a colleague's.
    notice_seen = HiddenField()


class PrivacyContactForm(FlaskForm):
    contact = StringField(
        _l("Privacy contact"),
        [required(), at_most(1024)],
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


# What a list's value can be: empty (all), or an id of at most 64 characters, none a control one.
LISTED = r"\A[^\x00-\x1f\x7f]{0,64}\Z"
# One student has a code per chain of platforms (core/receipts.py), so the filter takes several,
# separated by spaces or commas; the lookup below puts all of a student's codes in it.
MAX_STUDENT_CODES = 256  # the {0,255} below: a field of 16.6 kB at most
STUDENT_CODES = Regexp(
    r"\A[\s,]*[0-9a-f]{12,64}(?:[\s,]+[0-9a-f]{12,64}){0,255}[\s,]*\Z",
    message=_l(
        "A student code is 12 to 64 characters 0-9 and a-f; separate several codes (at most "
        "256) with spaces."
    ),
)


def student_codes(text: str | None) -> tuple[str, ...]:
    """The codes of a validated `student` filter, each once, in the order typed."""
    return tuple(dict.fromkeys(code for code in re.split(r"[\s,]+", text or "") if code))


class ReceiptFilterForm(FlaskForm):
    """The receipts page's filter, POSTed (with the CSRF token, as every portal POST) and
    answered directly: one student's codes in an address would be joined in the log of any
    proxy that logs addresses. `student` takes only student codes, never an identifier."""

    since = StringField(_l("From"), [Optional(), _real_date], widget=DateInput())
    until = StringField(
        _l("Until"),
        [Optional(), _real_date],
        widget=DateInput(),
        description=_l("That day included."),
    )
    # Not checked against the list (a removed service's receipts stay), but shaped like an id:
    # a control character or a length no id has is refused here, with the form's own message,
    # before the registry's NUL guard (database.py) would answer it with a bare 400.
    service = SelectField(
        _l("Service"),
        [Regexp(LISTED, message=_l("Choose one of the listed services."))],
        validate_choice=False,
    )
    attribute = SelectField(
        _l("Attribute"),
        [Regexp(LISTED, message=_l("Choose one of the listed attributes."))],
        validate_choice=False,
    )
    student = StringField(
        _l("Student codes"),
        [Optional(), STUDENT_CODES],
        description=_l(
            "A student has one code for each chain of platforms that share a pseudonym, as "
            "shown on the student's data page; separate several with spaces. Find one student "
            "below to fill in all of them."
        ),
    )

    def validate_until(self, field: Field) -> None:
        since, until = self.since.data or "", field.data or ""
        # Both are YYYY-MM-DD once their own checks passed, so text order is date order.
        if not (self.since.errors or field.errors) and since and until and until < since:
            raise ValidationError(_l("This date is before the From date."))


class StudentLookupForm(FlaskForm):
    """POSTed, so the identifier never appears in a URL or an access log. Its description names
    the school's own identifier (student_lookup.py)."""

    identifier = StringField(_l("The student's identifier"), [required(), at_most(512)])
