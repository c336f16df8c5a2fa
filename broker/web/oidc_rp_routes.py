"""The OIDC relying party's callback: a school's OpenID provider sends the student back here.

One callback for every school. A mix-up between two schools' providers is impossible because the
login record (bound to the browser, found by `state`) says which school the request went to: the
code is redeemed only at that school's token endpoint and the ID token must come from its issuer;
an RFC 9207 `iss` parameter, when present, must name that issuer too (broker/oidc/back.py).
"""

from __future__ import annotations

from flask import Blueprint, request
from werkzeug.wrappers import Response

from broker.core.errors import InvalidMessage, UnknownSchool, UpstreamFailure
from broker.web.browser import browser_secret
from broker.web.login_steps import broker, finish, refuse_to_service

CALLBACK_PATH = "/oidc/rp/callback"
MAX_PARAMETER = 4096

oidc_rp = Blueprint("oidc_rp", __name__)


@oidc_rp.route(CALLBACK_PATH, methods=["GET"])
def callback() -> Response:
    b = broker()
    login_id = request.args.get("state", "")
    if not login_id or len(login_id) > 64:
        raise InvalidMessage("callback without our state", code="unsolicited")
    params = {key: value for key, value in request.args.items() if len(value) <= MAX_PARAMETER}
    secret, _ = browser_secret(request)
    record = b.flow.load(secret, login_id)
    school = b.view.school(record.school_id or "")
    if school is None or school.oidc is None or record.upstream_request_id is None:
        raise UnknownSchool("login record has no OpenID Connect request")
    try:
        verified = b.oidc_back.complete(school, params, record.upstream)
    except UpstreamFailure as failure:
        record = b.flow.take(secret, login_id)
        return refuse_to_service(record, failure)
    # Single use: the record (with the nonce and PKCE verifier) is consumed once.
    record = b.flow.take(secret, login_id)
    return finish(record, verified.identity, verified.authn_instant)
