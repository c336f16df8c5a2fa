"""The student's page for a school's "no" that the school did not sign (UnsignedSchoolRefusal).

Anyone can post an unsigned error Response to the ACS with a login's RelayState, so it ends
nothing: the login record stays, the service is told nothing, no SSO session is opened. Yet it
is usually real: ADFS and Entra ID sign only the assertion by default, so a student who
cancels, an access policy that denies and a locked account all arrive this way. The student
hears that their school did not sign them in (what it answered, as its answer, never as fact)
and gets a way on that takes nothing from the message: "Try again" posts the same login and
school to `/discovery`, which sends them to the school with a fresh request, as choosing the
school did; a link shows the school choice for the same login.
"""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from broker.core.errors import UnsignedSchoolRefusal
from broker.core.model import School
from broker.login.login_model import LoginRecord
from broker.web import metrics
from broker.web.errors import render_error
from broker.web.labels import school_said
from broker.web.school_retry import retry_at_school


def unsigned_refusal_page(
    record: LoginRecord, school: School, refusal: UnsignedSchoolRefusal
) -> Response:
    metrics.refused_at(request.endpoint, refusal, login_open=True)
    return render_error(
        refusal,
        message=lambda: school_said(refusal.said),
        retry=retry_at_school(record, school),
    )
