"""The bad-input battery of tests/security/test_bad_input_sweep.py: what every route of the broker
is sent, and what each kind of route must answer.

Every garbage value carries `MARK`, so a log line that quotes what a request sent is found by
looking for it. `Spec` says, per endpoint, which parameters it reads and in which format it
refuses (a page in the requester's language, an OAuth JSON error, the back-channel's JSON, the
Metadata Query Protocol's plain 404); `Case` is one bad request, built for a route and a
language.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

MARK = "Zq7bad"
LANGUAGES = ("nl", "en")
# Above MAX_CONTENT_LENGTH (512 KiB, broker/web/app.py).
OVERSIZED_BODY = 600 * 1024
# Werkzeug's test client sends what it is given; these reach the app as invalid UTF-8.
INVALID_UTF8 = b"%ff%fe%c3%28" + MARK.encode()


class Answer(Enum):
    PAGE = "an HTML page in the requester's language"
    OAUTH = "an OAuth JSON error (RFC 6749 5.2, RFC 6750 3.1)"
    BACKCHANNEL = "Back-Channel Logout's JSON error (section 2.8)"
    MDQ = "the Metadata Query Protocol's plain 404"
    SOAP = "a SOAP 1.1 fault with HTTP 500 (SAML bindings 3.2.3.3)"
    PORTAL = "a portal page: the sign-in page for a GET without a session, the CSRF page"
    DOCUMENT = "a document that takes no input: a query is ignored"
    JSON_DOCUMENT = "a JSON document that takes no input; refusals in OAuth JSON, as the others"


@dataclass(frozen=True)
class NoInput:
    """What a route answers to a request that carries none of its parameters, where that is a
    valid request (every parameter is optional), and why."""

    status: int
    why: str
    writes_store: bool = False


@dataclass(frozen=True)
class Spec:
    answer: Answer
    params: tuple[str, ...] = ()
    no_input: NoInput | None = None
    # An oversized body is refused by the route itself, in its own format (or 413 by Flask).
    too_large: int = 413


SAML_REQUEST = ("SAMLRequest", "RelayState", "SigAlg", "Signature")
SAML_RESPONSE = ("SAMLResponse", "RelayState", "SigAlg", "Signature")
AUTHORIZE = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")
TOKEN = ("grant_type", "code", "redirect_uri", "client_id", "client_secret", "code_verifier")
END_SESSION = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales")
PAGE, OAUTH, PORTAL, DOCUMENT = Answer.PAGE, Answer.OAUTH, Answer.PORTAL, Answer.DOCUMENT

# Every endpoint of the app; the sweep fails on one missing here, so a new route is classified
# before it ships.
SPECS: dict[str, Spec] = {
    "home": Spec(DOCUMENT),
    "favicon": Spec(DOCUMENT),
    "healthz": Spec(DOCUMENT),
    "static": Spec(DOCUMENT),
    "demo_start.show": Spec(DOCUMENT),
    "operations.readyz": Spec(DOCUMENT),
    "operations.metrics_page": Spec(DOCUMENT),
    "saml.idp_metadata": Spec(DOCUMENT),
    "saml.sp_metadata": Spec(DOCUMENT),
    "saml.mdq_entity": Spec(Answer.MDQ),
    "oidc_op.discovery_document": Spec(Answer.JSON_DOCUMENT),
    "oidc_op.jwks": Spec(Answer.JSON_DOCUMENT),
    "my_data.start": Spec(DOCUMENT),
    "my_data.sign_in": Spec(
        DOCUMENT,
        no_input=NoInput(
            200, "takes no parameters: every request starts a sign-in (a login record)", True
        ),
    ),
    "my_data.view": Spec(PAGE),
    "my_data.closed": Spec(DOCUMENT),
    "my_data.close": Spec(PAGE, ("view",)),
    "saml.sso": Spec(PAGE, SAML_REQUEST),
    "saml.acs": Spec(PAGE, SAML_RESPONSE),
    "saml_logout.idp_slo": Spec(PAGE, SAML_REQUEST),
    "saml_logout.sp_slo": Spec(PAGE, (*SAML_REQUEST, "SAMLResponse")),
    # A school IdP's LogoutRequest in a SOAP envelope: anything else is a fault, also a body
    # over the cap (refused by the route before it is read).
    "saml_soap_logout.sp_slo_soap": Spec(Answer.SOAP, ("SAMLRequest",), too_large=500),
    "oidc_op.authorize": Spec(PAGE, AUTHORIZE),
    "oidc_op.token": Spec(OAUTH, TOKEN),
    "oidc_op.userinfo": Spec(OAUTH, ("access_token",)),
    "oidc_logout.end_session": Spec(
        PAGE,
        END_SESSION,
        no_input=NoInput(
            303,
            "RP-Initiated Logout: every parameter is optional; without a session the run starts "
            "at once and the student sees its page",
            True,
        ),
    ),
    "oidc_logout.school_logged_out": Spec(PAGE, ("state",)),
    "oidc_rp.callback": Spec(PAGE, ("state", "code", "error", "iss")),
    "school_backchannel.school_backchannel_logout": Spec(
        Answer.BACKCHANNEL, ("logout_token",), too_large=400
    ),
    "discovery.choose": Spec(PAGE, ("login", "q")),
    "discovery.chosen": Spec(PAGE, ("login", "school")),
    "back_to_platform.tell": Spec(PAGE, ("login",)),
    "notice.show": Spec(PAGE),
    "notice.proceed": Spec(
        PAGE,
        no_input=NoInput(
            303,
            "a POST without continue=1 is a reload that re-sent the notice's own request: it "
            "is shown the notice again (broker/web/notice.py)",
        ),
    ),
    "notice.sent_on": Spec(PAGE),
    "logout.student_logout": Spec(
        PAGE,
        ("csrf_token",),
        no_input=NoInput(
            200,
            "a form without a token is asked again (a plain form with a fresh token), never "
            "refused with a dead end: only a token not made for this browser is (400); asking "
            "ends nothing (broker/login/logout_form.py)",
        ),
    ),
    "logout.propagate": Spec(PAGE),
    "logout.done": Spec(PAGE),
    "logout.front": Spec(PAGE),
    "logout.next_step": Spec(PAGE),
    "logout.status": Spec(PAGE),
}
# The portal: anonymous here; test_bad_input_sweep.py sends garbage signed in as well.
PORTAL_ENDPOINTS = (
    "portal_sign_in.home",
    "portal_sign_in.accept_invitation",
    "portal_sign_in.sign_out",
    "portal_operator.attention",
    "portal_operator.admins",
    "portal_operator.withdraw_invitation",
    "portal_operator.remove_admin",
    "portal_operator.invite",
    "portal_operator.add_publisher",
    "portal_operator.chains",
    "portal_operator.schools",
    "portal_operator.school_details",
    "portal_operator.services",
    "portal_operator.approve",
    "portal_operator.put_in_chain",
    "portal_publisher.services",
    "portal_publisher.service",
    "portal_publisher_oidc.redirect_uris",
    "portal_publisher_oidc.rotate_secret",
    "portal_publisher.register",
    "portal_publisher_oidc.register",
    "portal_school_idp.identity_provider",
    "portal_school_idp.oidc_provider",
    "portal_school_idp.saml_provider",
    "portal_school_receipts.overview",
    "portal_school_receipts.privacy_contact",
    "portal_school_receipts.receipts",
    "portal_school_receipts.export",
    "portal_school_receipts.find_student",
    "portal_school.services",
    "portal_school.service",
)
SPECS.update({endpoint: Spec(PORTAL, ("csrf_token",)) for endpoint in PORTAL_ENDPOINTS})
# The sign-in form itself: a page to fill in (GET ignores a query), a CSRF refusal for a POST.
SPECS["portal_sign_in.sign_in"] = Spec(PORTAL, ("csrf_token", "email", "password", "code"))

# Real values for path arguments (a request for an unknown one is a case of its own).
SAMPLE_ARGS = {
    "school_id": "99XX00",
    "service_id": "leesplank",
    "publisher_id": "uitgeverij-noord",
    "run_id": "r" * 22,
    "notice_id": "n" * 22,
    "view_id": "v" * 24,
    "token": "t" * 43,
    "token_hash": "a" * 64,
    "admin_id": "1",
    "identifier": "http://example.org/entity",
    "index": "0",
    "fmt": "csv",
    "filename": "style.css",
}


def _deflated(data: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


TRUNCATED_XML = (
    b'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_' + MARK.encode()
)
# Garbage values for every parameter a route reads (each with MARK, so a log line that quotes
# one is found).
VALUES: dict[str, str] = {
    "not_base64": f"{MARK}!!*not base64*",
    "base64_not_xml": _b64(MARK.encode() + b" is no XML"),
    "deflate_garbage": _b64(b"\x8b\x03\xff" + MARK.encode()),
    "deflated_not_xml": _deflated(MARK.encode() * 4),
    "truncated_xml": _b64(TRUNCATED_XML),
    "truncated_xml_deflated": _deflated(TRUNCATED_XML),
    "nul_bytes": f"{MARK}\x00\x00x",
    "control_characters": f"{MARK}\x1b[31m\u202e\r\n",
    "long_value": MARK + "x" * 1000,
}


@dataclass(frozen=True)
class Request:
    """One request of the sweep, as Werkzeug's test client takes it; `case` names it."""

    method: str
    path: str
    query_string: str | dict[str, str] | None = None
    data: bytes | dict[str, str] | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    case: str = ""
    language: str = "nl"
    base_url: str | None = None

    def speaking(self, language: str) -> Request:
        return replace(self, language=language)

    def over(self, base_url: str) -> Request:
        return replace(self, base_url=base_url)

    def send(self, client: Any) -> Any:
        headers = {"Accept-Language": self.language, **self.headers}
        extra = {"base_url": self.base_url} if self.base_url else {}
        return client.open(
            self.path,
            method=self.method,
            query_string=self.query_string,
            data=self.data,
            content_type=self.content_type,
            headers=headers,
            **extra,
        )

    def __str__(self) -> str:
        shown = self.path if len(self.path) < 90 else self.path[:90] + "…"
        return f"{self.method} {shown!r} [{self.language}]"


@dataclass(frozen=True)
class Case:
    """A bad request for a route: `carries_params` says whether the route's parameters arrive
    (a route whose parameters are all optional may then take it as a valid request)."""

    name: str
    build: Callable[[str, str, tuple[str, ...]], Request]
    carries_params: bool = True

    def request(self, method: str, path: str, params: tuple[str, ...]) -> Request:
        return replace(self.build(method, path, params), case=self.name)


def _bag(params: tuple[str, ...], value: str) -> dict[str, str]:
    return {name: value for name in params or ("unused",)}


def _sent(method: str, path: str, values: dict[str, str]) -> Request:
    if method == "GET":
        return Request(method, path, query_string=values)
    return Request(method, path, data=values)


def _value_case(name: str, value: str) -> Case:
    return Case(name, lambda method, path, params: _sent(method, path, _bag(params, value)))


def _oversized_value(method: str, path: str, params: tuple[str, ...]) -> Request:
    values = _bag(params, MARK)
    values[(params or ("unused",))[0]] = MARK + "A" * 100_000
    return _sent(method, path, values)


def _long_relay_state(method: str, path: str, params: tuple[str, ...]) -> Request:
    values = _bag(params, VALUES["base64_not_xml"])
    values["RelayState"] = MARK + "r" * 10_000
    return _sent(method, path, values)


def _invalid_utf8(method: str, path: str, params: tuple[str, ...]) -> Request:
    raw = b"&".join(name.encode() + b"=" + INVALID_UTF8 for name in params or ("unused",))
    if method == "GET":
        return Request(method, path, query_string=raw.decode("ascii"))
    return Request(method, path, data=raw, content_type="application/x-www-form-urlencoded")


def _json_body(method: str, path: str, params: tuple[str, ...]) -> Request:
    body = json.dumps(_bag(params, MARK)).encode()
    return Request(method, path, data=body, content_type="application/json")


def _broken_multipart(method: str, path: str, params: tuple[str, ...]) -> Request:
    body = f'--b\r\nContent-Disposition: form-data; name="{MARK}"\r\n\r\n{MARK}'.encode()
    return Request(method, path, data=body, content_type="multipart/form-data; boundary=b")


def _bad_cookies(method: str, path: str, params: tuple[str, ...]) -> Request:
    cookie = (
        f'kb_browser="{MARK}\\x00\\xff; ;;=;kb_sso={MARK}{"x" * 6000}; session={MARK}%%%; '
        f"kb_lang={MARK}; kb_school={MARK}{'s' * 4000}"
    )
    return Request(method, path, headers={"Cookie": cookie})


def _bad_headers(method: str, path: str, params: tuple[str, ...]) -> Request:
    headers = {"Authorization": f"Basic {MARK}%%%", "X-Request-Id": f"{MARK}\x7f" * 10}
    return Request(method, path, headers=headers)


# The battery, for every GET and POST a route takes. Cases that send no parameters come first.
CASES: tuple[Case, ...] = (
    Case("missing", lambda method, path, params: Request(method, path), carries_params=False),
    _value_case("empty", ""),
    *(_value_case(name, value) for name, value in VALUES.items()),
    Case("oversized_value", _oversized_value),
    Case("invalid_utf8", _invalid_utf8),
    Case("bad_cookies", _bad_cookies, carries_params=False),
    Case("bad_headers", _bad_headers, carries_params=False),
)
CASES_BY_NAME = {case.name: case for case in CASES}
POST_CASES: tuple[Case, ...] = (
    Case("json_body", _json_body, carries_params=False),
    Case("broken_multipart", _broken_multipart, carries_params=False),
)
SAML_CASES: tuple[Case, ...] = (Case("long_relay_state", _long_relay_state),)
