"""The student's page for a refused logout request: a LogoutRequest (saml_logout_routes.py:
unsigned, a signature that does not verify, an issuer not registered, out of time, a replay, for
another endpoint) or an end_session request (oidc_logout_routes.py: a hint the broker did not
sign, a post_logout_redirect_uri not registered, a form token of another browser).

A refused request ends nothing (SAML profiles 4.4.4.1: the request must be signed, and anyone
could have sent an unsigned one), so the broker's SSO session stands and the next visit to a
platform signs the student in again without asking. The student pressed "log out", though, and
must not leave believing it worked, nor read that a sign-in failed: the page says that logging
out did not work and that they may still be logged in, and offers the broker's own "log out
everywhere" (a POST with this browser's form token, logout_routes.student_logout: the refused
request itself never ends a session), or else closing the browser. The log line is the error
page's, with the refusal's own code.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import gettext
from werkzeug.wrappers import Response

from broker.core.errors import BadRequest
from broker.web.errors import render_error
from broker.web.labels import LOGOUT_REFUSED, LOGOUT_REFUSED_TITLE


def refused_logout_page(error: BadRequest) -> Response:
    """The refusal's page (its status, its error id), worded for a logout."""
    return render_error(
        error,
        title=lambda: gettext(LOGOUT_REFUSED_TITLE),
        message=lambda: gettext(LOGOUT_REFUSED),
        log_out_everywhere=True,
    )


def _always() -> bool:
    return True


def refusals_worded_for_logout(
    handle: Callable[[], Response], asks_logout: Callable[[], bool] = _always
) -> Response:
    """`handle` a logout request; a refusal (a BadRequest) of one that `asks_logout` gets the
    logout's own page (`refused_logout_page`): nothing ended and nothing redirects (a target
    the request names is not believed); anything else is raised on to the error pages."""
    try:
        return handle()
    except BadRequest as error:
        if not asks_logout():
            raise
        return refused_logout_page(error)
