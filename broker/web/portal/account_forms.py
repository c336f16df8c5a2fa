"""The forms of administrator accounts: signing in (password and authenticator code), accepting
an invitation, and the operator's invitation itself.

Labels are lazy strings, so one class serves both languages.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import EqualTo, Length, Optional, Regexp

from broker.web.portal.field_checks import at_most, required

CODE_DIGITS = _l("Enter the 6 digits of your app.")
CODE = Regexp(r"\A\s*[0-9]{3}\s?[0-9]{3}\s*\Z", message=CODE_DIGITS)
MIN_PASSWORD = 12


class SignInForm(FlaskForm):
    email = EmailField(_l("E-mail address"), [required(), at_most(254)])
    password = PasswordField(_l("Password"), [required(), at_most(256)])
    code = StringField(
        _l("Code from your authenticator app"),
        [required(CODE_DIGITS), CODE],
        description=_l("6 digits; a new code appears every 30 seconds."),
    )


class AcceptInvitationForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        # Said as the hint says it (WTForms' own text names both bounds in other words).
        [
            required(_l("Choose a password.")),
            Length(min=MIN_PASSWORD, message=_l("Use at least %(min)d characters.")),
            at_most(256),
        ],
        description=_l("At least %(min)d characters.", min=MIN_PASSWORD),
    )
    password_again = PasswordField(
        _l("New password again"),
        [
            required(_l("Type the password again.")),
            EqualTo("password", message=_l("The two passwords are not the same.")),
        ],
    )
    code = StringField(
        _l("Code from your authenticator app"),
        [required(CODE_DIGITS), CODE],
        description=_l("Add the key above to your app, then enter the code it shows."),
    )


class InviteForm(FlaskForm):
    email = EmailField(_l("E-mail address"), [required(), at_most(254)])
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
        [Optional(), at_most(64)],
        description=_l("Empty for an operator."),
    )
    # The token hash of the open invitation for the address that this one replaces, set by the
    # page that said one is open (operator_pages.invite); empty: refused while one is open.
    replaces = HiddenField()


TOTP_SPACES = re.compile(r"\s+")


def digits(code: str) -> str:
    return TOTP_SPACES.sub("", code)
