"""The discovery page: the student chooses their school (searchable, remembered)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, make_response, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from broker.core.errors import BadRequest
from broker.core.model import School
from broker.web.browser import SCHOOL_COOKIE, browser_secret, remember_school
from broker.web.login_steps import broker, content_security_policy, go_upstream

discovery = Blueprint("discovery", __name__)

MAX_QUERY = 100


def _login_id(value: str | None) -> str:
    if not value or len(value) > 64:
        raise BadRequest("discovery without a login", code="missing_login")
    return value


@discovery.route("/discovery", methods=["GET"])
def choose() -> Response:
    b = broker()
    login_id = _login_id(request.args.get("login"))
    secret, _ = browser_secret(request)
    record = b.flow.load(secret, login_id)
    service = b.view.service(record.request.service_id)
    service_name = service.name if service else str(gettext("your data page"))
    query = request.args.get("q", "")[:MAX_QUERY].strip()
    schools = sorted(b.view.schools(), key=lambda s: s.name.casefold())
    remembered = next((s for s in schools if s.id == request.cookies.get(SCHOOL_COOKIE)), None)
    if query:
        needle = query.casefold()
        schools = [s for s in schools if needle in s.name.casefold() or needle in s.id.casefold()]
    page = render_template(
        "discovery.html",
        service_name=service_name,
        schools=schools,
        remembered=remembered,
        action=url_for("discovery.chosen"),
        search_url=url_for("discovery.choose"),
        login=login_id,
        query=query,
    )
    response = make_response(page)
    response.headers["Cache-Control"] = "no-store"
    # Choosing a school POSTs here and is redirected to the school's IdP; browsers apply the
    # page's form-action to that redirect, so it must name the listed schools' SSO origins.
    shown = [*schools, remembered] if remembered else schools
    origins = sorted({o for o in map(_sign_in_origin, shown) if o})
    response.headers["Content-Security-Policy"] = content_security_policy(" ".join(origins))
    return response


def _sign_in_origin(school: School) -> str | None:
    """Where choosing `school` redirects the browser: its SAML SSO or OIDC authorization origin."""
    b = broker()
    if school.oidc is None:
        return b.saml_back.sso_origin(school)
    # Never a network call here: one slow provider must not hold up every student's page.
    cached = b.oidc_back.directory.cached(school.oidc.issuer)
    endpoint = cached.authorization_endpoint if cached is not None else school.oidc.issuer
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@discovery.route("/discovery", methods=["POST"])
def chosen() -> Response:
    """The login id is unguessable and its record opens only with this browser's cookie, so it
    also does the work of a CSRF token here."""
    b = broker()
    login_id = _login_id(request.form.get("login"))
    school_id = request.form.get("school", "")
    secret, _ = browser_secret(request)
    # go_upstream saves the record with the school in it (note_upstream).
    record = b.flow.choose_school(secret, login_id, school_id, save=False)
    response = go_upstream(secret, record)
    remember_school(response, school_id)
    return response
