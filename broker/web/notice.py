"""The student's answer to the information notice: continue the login it held (receipting.py)."""

from __future__ import annotations

from flask import Blueprint, request
from werkzeug.wrappers import Response

from broker.core.errors import StateExpired
from broker.web.browser import browser_secret
from broker.web.login_steps import broker, finish

notice = Blueprint("notice", __name__)
MAX_NOTICE_ID = 64


@notice.route("/notice/<notice_id>", methods=["POST"])
def proceed(notice_id: str) -> Response:
    # The id is unguessable and only on the page shown to this browser, and the held login is
    # sealed under this browser's secret: another site cannot make a student continue.
    if len(notice_id) > MAX_NOTICE_ID:
        raise StateExpired("notice id too long")
    secret, _ = browser_secret(request)
    pending = broker().receipting.take(secret, notice_id)
    return finish(
        pending.record,
        pending.identity,
        pending.authn_instant,
        sso_token=pending.sso_token,
        shown=pending.fingerprint,
    )
