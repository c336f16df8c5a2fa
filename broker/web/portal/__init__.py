"""The administrators' portals (operator, school, publisher) under /portal.

`install_portals` sets the portal's session cookie, CSRF checking and the blueprints. Every page
is guarded by `rights.portal_page` (role and tenant) and every POST must carry a CSRF token.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_wtf.csrf import CSRFError

from broker.web.labels import attribute_label, attribute_labels, declared_purpose
from broker.web.portal.operator_pages import operator_pages
from broker.web.portal.publisher_oidc import publisher_oidc_pages
from broker.web.portal.publisher_pages import publisher_pages
from broker.web.portal.rights import csrf_refused
from broker.web.portal.school_idp import school_idp_pages
from broker.web.portal.school_pages import school_pages
from broker.web.portal.school_receipts import school_receipts
from broker.web.portal.sign_in import sign_in_pages

SESSION_COOKIE = "__Host-kb_portal"
# Short: an unattended administrator's browser should not stay signed in for long.
SESSION_MINUTES = 30


def install_portals(app: Flask) -> None:
    app.config.update(
        # __Host-: Secure, Path=/, no Domain; the browser refuses it otherwise.
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=SESSION_MINUTES),
        WTF_CSRF_TIME_LIMIT=SESSION_MINUTES * 60,
        # Uploaded metadata is capped by MAX_CONTENT_LENGTH and by metadata_check.
    )
    # A school's privacy officer reads "First name", not `given_name` (the code stays beside it).
    app.jinja_env.globals["attribute_label"] = attribute_label
    app.jinja_env.globals["attribute_labels"] = attribute_labels
    app.jinja_env.globals["declared_purpose"] = declared_purpose
    for blueprint in (
        sign_in_pages,
        operator_pages,
        school_pages,
        school_receipts,
        school_idp_pages,
        publisher_pages,
        publisher_oidc_pages,
    ):
        app.register_blueprint(blueprint)
    app.register_error_handler(CSRFError, csrf_refused)
