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

from flask import make_response, request, url_for
from werkzeug.wrappers import Response

from broker.core.errors import UnsignedSchoolRefusal
from broker.core.model import School
from broker.login.login_model import LoginRecord
from broker.saml.front import PostMessage
from broker.web import metrics
from broker.web.errors import render_error
from broker.web.labels import school_said
from broker.web.service_answers import content_security_policy
from broker.web.wiring import broker


def unsigned_refusal_page(
    record: LoginRecord, school: School, refusal: UnsignedSchoolRefusal
) -> Response:
    metrics.refused_at(request.endpoint, refusal)
    retry = PostMessage(
        url_for("discovery.chosen"), {"login": record.login_id, "school": school.id}
    )
    page, status = render_error(
        refusal,
        message=school_said(refusal.said),
        retry_form=retry,
        choose_again=url_for("discovery.choose", login=record.login_id),
    )
    response = make_response(page, status)
    # "Try again" is answered with a redirect to the school's sign-in page, and browsers hold
    # that redirect to this page's form-action (as on the discovery page): name its origin.
    school_origin = broker().saml_back.sso_origin(school) or ""
    response.headers["Content-Security-Policy"] = content_security_policy(school_origin)
    # The page carries the login's id: never kept by a cache.
    response.headers["Cache-Control"] = "no-store"
    return response
