"""The browser's cookies: what binds a login and an SSO session to one browser.

`__Host-kb_browser` carries the secret that seals this browser's login records; `__Host-kb_sso`
the token of its SSO session. The `__Host-` prefix makes the browser refuse these cookies unless
they are Secure, host-only and for Path=/, so a sibling subdomain cannot plant its own (another
student's SSO token, say). Both are `SameSite=None; Secure` because the school's identity
provider POSTs back to the broker cross-site and that POST must carry them (pitfalls.md,
cookies); Chromium counts plain-http loopback as a secure context, so the demo works too.
`kb_school` remembers the school of the last successful school login (set with the school's
answer, never at the choice: a mis-tapped school is not offered again) and is `Lax`: it is only
read on the broker's own discovery page. `__Host-kb_my_data` names the my-data view this browser
may open (my_data.py): a session cookie, `Lax` (the view is a GET of the broker's own), set to
`closed` when the student closes the view (the history's address then says so calmly), and
replaced by the next one opened.
"""

from __future__ import annotations

import base64
import binascii

from flask import Flask, Request, g
from werkzeug.wrappers import Response

from broker.login.sealed import new_secret
from broker.web.i18n import LANGUAGE_COOKIE

BROWSER_COOKIE = "__Host-kb_browser"
SSO_COOKIE = "__Host-kb_sso"
SCHOOL_COOKIE = "kb_school"
MY_DATA_COOKIE = "__Host-kb_my_data"
SCHOOL_COOKIE_MAX_AGE = 365 * 24 * 3600
# A request that carries none of these comes from a browser that blocks (or lost) the
# broker's cookies: a login's state cannot be found for it (errors.without_cookies).
BROKER_COOKIES = (BROWSER_COOKIE, SSO_COOKIE, SCHOOL_COOKIE, LANGUAGE_COOKIE)


def carries_broker_cookies(request: Request) -> bool:
    """Whether the request brought any of the broker's cookies: none at all is a browser that
    blocks them (a third-party frame, a privacy setting), not one that merely has no session."""
    return any(name in request.cookies for name in BROKER_COOKIES)


def browser_secret(request: Request) -> bytes:
    """This browser's secret; a new one when its cookie has none (`install_browser_cookie`
    then sets the cookie on this request's response)."""
    raw = request.cookies.get(BROWSER_COOKIE, "")
    try:
        secret = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)) if raw else b""
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) == 32:
        return secret
    # One new secret per request: every step of this request that holds state (the login, the
    # notice) must hold it under the one secret the response's cookie will carry.
    made: bytes | None = g.get("kb_new_browser_secret")
    if made is None:
        made = new_secret()
        g.kb_new_browser_secret = made
    return made


def install_browser_cookie(app: Flask) -> None:
    """The cookie of a secret made during a request, set once on that request's response,
    whichever of its steps held state under the secret (a login record, the notice, a logout
    run, the my-data view): no step has to remember to set it, and none sets it twice."""

    @app.after_request
    def set_new_browser_secret(response: Response) -> Response:
        made: bytes | None = g.get("kb_new_browser_secret")
        if made is not None:
            value = base64.urlsafe_b64encode(made).decode().rstrip("=")
            response.set_cookie(
                BROWSER_COOKIE, value, secure=True, httponly=True, samesite="None", path="/"
            )
        return response


def set_sso_token(response: Response, token: str) -> None:
    # A session cookie, like the school's own: closing the browser ends the SSO session for it,
    # so the next student at a shared school laptop meets their school's sign-in, not the
    # previous student's session. The record in the store ends after sso_session_seconds anyway.
    response.set_cookie(SSO_COOKIE, token, secure=True, httponly=True, samesite="None", path="/")


def clear_sso_token(response: Response) -> None:
    """Logout: the browser forgets the SSO token (the session record is already gone)."""
    response.delete_cookie(SSO_COOKIE, secure=True, httponly=True, samesite="None", path="/")


def remember_school(response: Response, school_id: str) -> None:
    response.set_cookie(
        SCHOOL_COOKIE,
        school_id,
        max_age=SCHOOL_COOKIE_MAX_AGE,
        secure=True,
        httponly=True,
        samesite="Lax",
        path="/",
    )


def set_my_data_view(response: Response, view_id: str) -> None:
    """The my-data view this browser may open: only the newest, and only until it is closed.
    A session cookie, like the SSO token: closing the browser ends the view for it too."""
    response.set_cookie(
        MY_DATA_COOKIE, view_id, secure=True, httponly=True, samesite="Lax", path="/"
    )
