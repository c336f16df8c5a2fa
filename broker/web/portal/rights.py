"""Who may open which portal page: the signed-in administrator, their role and their tenant.

`portal_page(role)` guards a view: no session → the sign-in page; another role, or a tenant in
the URL (`school_id`, `publisher_id`) that is not the administrator's → 403 in the page's
language, logged with role, administrator id and route (no e-mail address, no names). Views
check that the objects they touch belong to that tenant with `refuse_unless`.

Every POST to a portal page must carry the session's CSRF token (`check_csrf`, run before any
view); a missing or wrong token is a 400 page and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, g, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response
from wtforms import ValidationError

from broker.core.admins import Admin, AdminRole
from broker.web.logs import note_refusal_logged, refusal_logged
from broker.web.no_store import no_store
from broker.web.portal.certificate_notice import (
    school_certificate_ends,
    service_certificates_ending,
)
from broker.web.portal.guard import session_admin
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
F = TypeVar("F", bound=Callable[..., Any])
SESSION_ADMIN = "admin"
SESSION_ID = "sid"
SESSION_SIGNED_IN_AT = "since"


class PortalForbidden(Forbidden):
    """A signed-in administrator reached for something outside their role or tenant."""


def signed_in_admin() -> Admin | None:
    session_id, signed_in_at = session.get(SESSION_ID), session.get(SESSION_SIGNED_IN_AT)
    if not isinstance(session_id, str) or not isinstance(signed_in_at, int):
        return None
    b = broker()
    admin_id = session_admin(b.store, session_id, signed_in_at)
    if admin_id is None or session.get(SESSION_ADMIN) != admin_id:
        return None
    return b.registry.accounts.admin(admin_id)


def current_admin() -> Admin:
    admin: Admin = g.portal_admin
    return admin


def portal_page(role: AdminRole) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(**kwargs: Any) -> Any:
            admin = signed_in_admin()
            if admin is None:
                return _to_sign_in()
            tenant = kwargs.get("school_id") or kwargs.get("publisher_id")
            if not admin.may_act_for(role, tenant):
                raise PortalForbidden(f"{role.value} page")
            g.portal_admin = admin
            return view(**kwargs)

        return cast("F", guarded)

    return decorate


def refuse_unless(allowed: bool) -> None:
    """Object-level check inside a view: the object must belong to the administrator's tenant."""
    if not allowed:
        raise PortalForbidden("object of another tenant")


def forbidden_page(error: PortalForbidden) -> tuple[str, int]:
    admin = getattr(g, "portal_admin", None) or signed_in_admin()
    note_refusal_logged()
    log.warning(
        "portal refused status=403 role=%s admin=%s route=%s",
        admin.role.value if admin else "-",
        admin.id if admin else "-",
        request.url_rule.rule if request.url_rule else "-",
    )
    return render_template("portal/forbidden.html", admin=admin), 403


def stale_page_refused(reason: str, *, school: str = "-", service: str = "-") -> None:
    """The one log line of a portal form refused because its page is out of date: what it
    showed changed since (a colleague's save, the publisher's, the operator's approval, a
    renewed secret). The reason code (the registry error's: `policy_changed`,
    `client_changed`, ...) and the route's school and service ids only: never a value from the
    form, nor who sent it."""
    log.warning("portal refused stale page reason=%s school=%s service=%s", reason, school, service)
    note_refusal_logged()


def csrf_refused(error: CSRFError) -> tuple[str, int]:
    note_refusal_logged()
    log.warning(
        "portal refused status=400 reason=csrf route=%s",
        request.url_rule.rule if request.url_rule else "-",
    )
    return render_template("portal/csrf.html"), 400


def check_csrf() -> None:
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as error:
            raise CSRFError(str(error)) from None


def portal_blueprint(name: str, prefix: str) -> Blueprint:
    """A portal blueprint: CSRF on every POST, the 403 page, `csrf_token()` in its templates."""
    blueprint = Blueprint(name, __name__, url_prefix=prefix)
    blueprint.before_request(check_csrf)
    # Portal pages show invitation links, TOTP secrets and federation data: never from a cache
    # (the back button after sign-out, a shared school laptop's disk cache).
    blueprint.after_request(no_store)
    blueprint.after_request(_log_form_refusal)
    blueprint.register_error_handler(PortalForbidden, forbidden_page)

    @blueprint.context_processor
    def portal_globals() -> dict[str, Any]:
        return {
            "csrf_token": generate_csrf,
            "admin": getattr(g, "portal_admin", None),
            "school_certificate_ends": school_certificate_ends,
            "service_certificates_ending": service_certificates_ending,
        }

    return blueprint


def _log_form_refusal(response: Response) -> Response:
    """A form sent back with its errors (400) is a refusal the view answered itself: one line,
    the route only (never a field's value), unless the refusal was logged already."""
    if response.status_code == 400 and not refusal_logged():
        log.warning(
            "portal refused status=400 reason=form route=%s",
            request.url_rule.rule if request.url_rule else "-",
        )
    return response


def _to_sign_in() -> Response:
    from flask import redirect

    return redirect(url_for("portal_sign_in.sign_in"), code=303)
