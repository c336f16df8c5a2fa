"""The token of the student's logout forms: "log out everywhere" and the confirmation of an
OpenID Connect end_session request (web/logout_routes.py).

It replaces Flask-WTF's CSRF token there. That one lives an hour (WTF_CSRF_TIME_LIMIT) and
hangs on Flask's session cookie: a student who left the my-data page open over a lesson and then
pressed "log out everywhere" got a 400 and stayed signed in, and at a shared school laptop the
next student was then signed in to the platforms as them.

This token is an HMAC, under this browser's own secret (the `__Host-kb_browser` cookie: 32
random bytes, HttpOnly, never written on a page), of a purpose label and the second it was made:

- another site cannot make one for this browser (it never sees the secret), nor bring its own
  browser's token (made under another secret): a third-party page cannot log a student out;
- it needs no store and no Flask session, and it dies with the browser's secret;
- it is good for `FORM_SECONDS`, the longest SSO session the configuration allows (a day), so a
  page left open never dead-ends. A token of this browser older than that was made before any
  session that stands now (a later login): the student is asked once more (`STALE`), on a page
  with a fresh token, and so is a form without a token field (`MISSING`: nothing a forger could
  not get by leaving the field out). A token not made for this browser, an empty one included,
  is refused (`FORGED`).
"""

from __future__ import annotations

import base64
import hmac
import re
from enum import Enum
from hashlib import sha256

# The longest login.sso_session_seconds the configuration accepts (config.py: 0-86400).
FORM_SECONDS = 24 * 3600
# Workers' clocks may differ a little: a token "from the future" within this is good.
CLOCK_SKEW = 180
MAX_TOKEN = 64  # a made token is ~54 characters; anything longer was not made here
LABEL = b"ketenbroker/logout-form/"
# Flask-WTF's token: itsdangerous's "payload.timestamp.signature", each part URL-safe base64.
_FLASK_WTF_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,120}\.[A-Za-z0-9_-]{4,12}\.[A-Za-z0-9_-]{20,64}")


class FormToken(Enum):
    GOOD = "good"  # made for this browser within FORM_SECONDS: act on the form
    MISSING = "missing"  # no token field: ask again, with a token
    STALE = "stale"  # made for this browser, too long ago: ask again, with a fresh one
    FORGED = "forged"  # not made for this browser (or not made here at all): refuse


def make_form_token(browser_secret: bytes, now: float) -> str:
    made = str(int(now))
    return f"{made}.{_mac(browser_secret, made)}"


def check_form_token(browser_secret: bytes, token: str | None, now: float) -> FormToken:
    if token is None:
        return FormToken.MISSING
    if _FLASK_WTF_TOKEN.fullmatch(token):
        # COMPAT(flask-wtf-logout-token): a page rendered before this token (2026-11-30) carries
        # Flask-WTF's; at an upgrade that page's button must not dead-end either. Asking again
        # acts on nothing, so its shape alone is enough. Remove a day after every worker runs
        # this code (FORM_SECONDS: no such page is open any more).
        return FormToken.STALE
    made, _, mac = token.partition(".")
    if len(token) > MAX_TOKEN or not token.isascii() or not made.isdigit() or not mac:
        return FormToken.FORGED
    if not hmac.compare_digest(mac, _mac(browser_secret, made)):
        return FormToken.FORGED
    age = now - int(made)
    if age > FORM_SECONDS or age < -CLOCK_SKEW:
        return FormToken.STALE
    return FormToken.GOOD


def _mac(browser_secret: bytes, made: str) -> str:
    digest = hmac.new(browser_secret, LABEL + made.encode(), sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
