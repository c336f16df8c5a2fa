"""The student's page for a school's "no" that the school did not sign (UnsignedSchoolRefusal).

Anyone can post an unsigned error Response to the ACS with a login's RelayState, so it ends
nothing: the login record stays, the service is told nothing, no SSO session is opened. Yet it
is usually real: ADFS and Entra ID sign only the assertion by default, so a student who
cancels, an access policy that denies and a locked account all arrive this way. The student
hears that their school did not sign them in (what it answered, as its answer, never as fact)
and gets a way on that takes nothing from the message: "Try again" posts the same login and
school to `/discovery`, which sends them to the school with a fresh request, as choosing the
school did; a link shows the school choice for the same login. And, as after the school's signed
"no", "Back to <platform>": the student's own choice to end the login, which the platform then
hears (back_to_platform.py); the only way on where the school must change a setting
(InvalidNameIDPolicy), which trying again does not mend (errors.render_error).
"""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from broker.core.errors import UnsignedSchoolRefusal
from broker.core.model import School
from broker.login.login_model import LoginRecord
from broker.web import metrics
from broker.web.labels import school_said
from broker.web.school_retry import retry_at_school
from broker.web.service_answers import retry_page


def unsigned_refusal_page(
    record: LoginRecord, school: School, refusal: UnsignedSchoolRefusal
) -> Response:
    metrics.refused_at(request.endpoint, refusal, login_open=True)
    return retry_page(
        record, refusal, retry_at_school(record, school), message=lambda: school_said(refusal.said)
    )
