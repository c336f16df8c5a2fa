"""The forms of administrator accounts: signing in (password and authenticator code), accepting
an invitation, and the operator's invitation itself.

Labels are lazy strings, so one class serves both languages.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

CODE = Regexp(r"\A\s*[0-9]{3}\s?[0-9]{3}\s*\Z", message=_l("Enter the 6 digits of your app."))


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


TOTP_SPACES = re.compile(r"\s+")


def digits(code: str) -> str:
    return TOTP_SPACES.sub("", code)
