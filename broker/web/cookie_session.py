"""Flask's signed-cookie session, without its per-request cost when there is no session.

Only the portals (sign-in, CSRF tokens) use Flask's `session`; every login step, the student's
pages (their logout forms carry a token of the browser's own, login/logout_form.py), `/healthz`
and `/metrics` carry no session cookie. Flask's own interface builds an itsdangerous serializer
on every request all the same (before it even looks for the cookie) and reads seven cookie
settings on every response. Here the serializer is
built once per key set, and a request without the cookie whose session nobody touched skips
both. What is stored, how it is signed, and every cookie attribute stay Flask's.

A request that neither read nor changed the session (a stylesheet, a script, the favicon) sends
no cookie back either. Flask's would, for a permanent session such as a signed-in
administrator's (it renews the cookie on every request): a copy of the cookie the request came
with, which overwrites a newer one when that answer is late. A browser asks for a page's
favicon and scripts while the administrator may already be sending its form; one answered
between the form's redirect and the page it leads to put the session from before the POST
back, and the page lost what the form had flashed ("Saved. The next login uses it."). Pages
that read the session still renew the cookie, as they renew the server-side session's idle
time (portal/guard.py); static files renew neither.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer


class BrokerSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializers: dict[tuple[object, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # Keyed by the keys, so a changed secret (tests change app.config) gets its own.
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        try:
            return self._serializers[keys]
        except KeyError:
            serializer = super().get_signing_serializer(app)
            self._serializers[keys] = serializer  # a serializer holds no per-call state
            return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not app.secret_key:
            return None  # Flask's null session, as without this class
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # Nobody read or changed it: nothing to set, delete or vary on (Flask works that out for
        # an empty session only after reading the cookie settings). For a permanent session
        # Flask would write the request's copy back; see the module docstring for why not.
        if not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)
