"""The house rule, held for every route: every bad input gets a clear, specific error (an HTTP
status, a page in the user's language or the protocol's own error format, a log line without
what was sent) and changes nothing; no stack traces, no silent fallbacks.

Every rule of `app.url_map` gets the battery of tests/support/bad_input.py: wrong methods,
missing, empty and garbage parameters (not base64, base64 of no XML, deflate garbage, truncated
XML, NUL bytes, control characters, 1,000 characters, 100 kB, invalid UTF-8, a 10 kB
RelayState), unknown path segments and ids (unknown, 1,000 characters, with a NUL), malformed
and oversized cookies, a JSON or broken multipart body where a form is read, a body over the
size limit; in Dutch and in English. The portals get garbage signed in as well, with a valid
CSRF token, in every field of their forms. What a route answers on purpose with something else
than a refusal is in the tables (`Spec.no_input` in bad_input.py, `SIGNED_IN` here), with why.

One broker for the module: the demo federation (PortalSite) with an administrator per role and a
client of the publisher's own, the in-memory store, rate limits off (thousands of requests from
one address must reach the routes, and a rate-limit counter would be a store write). The same
portal sweep, NUL bytes only, runs on PostgreSQL, which refuses text with a NUL outright.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import MapAdapter, RequestRedirect, Rule

from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.cli.instance import CONFIG_NAME, init_instance
from tests.support.bad_input import (
    CASES,
    CASES_BY_NAME,
    INVALID_UTF8,
    LANGUAGES,
    MARK,
    OVERSIZED_BODY,
    POST_CASES,
    SAML_CASES,
    SAMPLE_ARGS,
    SPECS,
    VALUES,
    Answer,
    Case,
    Request,
    Spec,
)
from tests.support.live import free_ports
from tests.support.portal import HTTPS, PUBLISHER_ID, csrf_token
from tests.support.postgres import PostgresServer
from tests.support.sweep import (
    CLIENT_ID,
    FOUR_XX,
    Sweep,
    build_sweep,
    check_answer,
    path_of,
    send,
)

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    built = build_sweep(tmp_path_factory.mktemp("bad-input"), free_ports(7))
    rows = built.registry_rows()
    yield built
    # Nothing the whole module sent added or removed a row anywhere in the registry.
    assert built.registry_rows() == rows
    built.site.registry.close()


@pytest.fixture(scope="module")
def postgres_sweep(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[Sweep]:
    """The same broker with its registry on PostgreSQL."""
    directory, port = tmp_path_factory.mktemp("bad-input-postgres"), free_ports(7)
    with postgres_server.fresh_database() as database:
        init_instance(directory, f"http://127.0.0.1:{port}", "demo.example", "Ketenbroker demo")
        config = directory / CONFIG_NAME
        sqlite = 'url = "sqlite:///registry.sqlite3"'
        config.write_text(
            config.read_text().replace(sqlite, f'url = "{postgres_server.url(database)}"')
        )
        built = build_sweep(directory, port)
        rows = built.registry_rows()
        yield built
        assert built.registry_rows() == rows
        built.site.registry.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def either_sweep(request: pytest.FixtureRequest) -> Sweep:
    built: Sweep = request.getfixturevalue(
        "sweep" if request.param == "sqlite" else "postgres_sweep"
    )
    return built


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="broker")
    return caplog


def _rules(app: Flask, endpoint: str) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]


def _is_route(adapter: MapAdapter, path: str) -> bool:
    try:
        adapter.match(path, method="GET")
    except (NotFound, RequestRedirect):
        return False
    except HTTPException:
        return True  # a route of another method
    return True


def _refusals(spec: Spec, method: str, case: Case, endpoint: str) -> set[int]:
    """What a route answers to `case`: the refusal of its kind, or what the table says."""
    if spec.no_input and not (case.carries_params and spec.params):
        return {spec.no_input.status}
    if spec.answer in (Answer.DOCUMENT, Answer.JSON_DOCUMENT):
        return {200, 204}  # it reads no query: what it shows does not depend on one
    if spec.answer is Answer.MDQ:
        return {404}
    if spec.answer is Answer.SOAP:
        return {500}
    if spec.answer is Answer.PORTAL:
        if method == "POST":
            return {400}  # no CSRF token: nothing is read, nothing changes
        if endpoint == "portal_sign_in.sign_in":
            return {200}  # the form to fill in; it reads no query
        # Without a session: the sign-in page (an invitation link is checked first).
        return {400} if endpoint == "portal_sign_in.accept_invitation" else {303}
    return FOUR_XX


def _battery(method: str, endpoint: str, spec: Spec) -> tuple[Case, ...]:
    """The whole battery where a route reads parameters; where it reads none (or reads nothing
    before it refuses: a portal page without a session or a CSRF token) a few of it."""
    if spec.answer is Answer.PAGE and not spec.params:
        return ()  # its input is the path: sent below, with garbage ids
    if spec.answer is Answer.PORTAL or not spec.params:
        few = ("missing", "nul_bytes", "long_value", "invalid_utf8", "bad_cookies", "bad_headers")
        return tuple(case for case in CASES if case.name in few)
    saml = endpoint.startswith(("saml.", "saml_logout."))
    return CASES + (POST_CASES if method == "POST" else ()) + (SAML_CASES if saml else ())


def _unknown_id(spec: Spec, method: str, endpoint: str) -> set[int]:
    """An id in the path that names nothing (or cannot: 1,000 characters, a NUL)."""
    if spec.answer in (Answer.DOCUMENT, Answer.JSON_DOCUMENT, Answer.MDQ):
        return {404}
    return _refusals(spec, method, CASES_BY_NAME["missing"], endpoint) | FOUR_XX


def test_every_route_has_a_row_in_the_table(sweep: Sweep) -> None:
    endpoints = {rule.endpoint for rule in sweep.app.url_map.iter_rules()}
    preflights = {e for e in endpoints if e.endswith("_preflight")}  # CORS: OPTIONS only
    assert endpoints - preflights == set(SPECS)


@pytest.mark.parametrize("endpoint", sorted(SPECS))
def test_every_bad_request_is_refused_clearly_and_changes_nothing(
    sweep: Sweep, logs: pytest.LogCaptureFixture, endpoint: str
) -> None:
    spec = SPECS[endpoint]
    client = sweep.app.test_client()
    adapter = sweep.app.url_map.bind("localhost")
    writes = bool(spec.no_input and spec.no_input.writes_store)
    problems: list[str] = []
    requests: list[tuple[Request, set[int], Answer]] = []
    # What answers a path no route has: the 404 page, or JSON below a machine endpoint's path.
    no_route = Answer.BACKCHANNEL if spec.answer is Answer.BACKCHANNEL else Answer.PAGE

    def add(request: Request, expected: set[int], answer: Answer = spec.answer) -> None:
        # Each route is asked in both languages, case after case.
        requests.append((request.speaking(LANGUAGES[len(requests) % 2]), expected, answer))

    for rule in _rules(sweep.app, endpoint):
        path = path_of(rule)
        for method in sorted(set(METHODS) - set(adapter.allowed_methods(path))):
            add(Request(method, path, case="wrong_method"), {405})
        for method in sorted({"GET", "POST"} & set(rule.methods or ())):
            for case in _battery(method, endpoint, spec):
                add(
                    case.request(method, path, spec.params), _refusals(spec, method, case, endpoint)
                )
            if method == "POST":
                body = {"x": MARK + "A" * OVERSIZED_BODY}
                add(Request(method, path, data=body, case="oversized_body"), {spec.too_large})
            unknown_id = _unknown_id(spec, method, endpoint)
            for name in sorted(rule.arguments - {"index"}):
                for value in (MARK, MARK + "x" * 1000):
                    add(
                        Request(method, path_of(rule, **{name: value}), case=f"{name}_id"),
                        unknown_id,
                    )
                cookies = CASES_BY_NAME["bad_cookies"]
                add(cookies.request(method, path_of(rule, **{name: MARK}), ()), unknown_id)
                # No id holds a control character: such a path is no route's (404).
                nul = Request(method, path_of(rule, **{name: MARK + "\x00"}), case=f"{name}_nul")
                add(nul, {404}, no_route)
        unknown = path.rstrip("/") + "/" + MARK
        if not _is_route(adapter, unknown):
            add(Request("GET", unknown, case="unknown_segment"), {404}, no_route)
    for request, expected, answer in requests:
        problems += send(
            sweep, client, request, logs, answer=answer, expected=expected, store_writes=writes
        )
    assert not problems, "\n".join(problems)


# OIDC: a request right in every other way, less one parameter the endpoint needs. The battery
# above sends every parameter garbage (or none), so it is refused at the client_id before any
# other parameter is read: a registered client and redirect URI without `scope` was a 500
# (review-bcp), which no case there reached. The client: the demo's own (Woordwijs, approved;
# the sweep's own client waits for approval). Userinfo and end_session have no parameter that
# is needed beside others (the battery's "missing" sends them none).
AUTHORIZE_NEEDS = ("response_type", "client_id", "redirect_uri", "scope", "nonce")
TOKEN_NEEDS = ("grant_type", "code", "redirect_uri", "code_verifier", "Authorization")


def _demo_client(sweep: Sweep) -> tuple[str, str]:
    """The demo client's redirect URI and secret (kept in the demo folder)."""
    service = sweep.site.registry.service_by_entity_id(OIDC_PUBLISHER_ID)
    assert service is not None and service.oidc is not None
    secret_file = sweep.site.directory / "peers" / f"{OIDC_PUBLISHER_ID}-client-secret"
    return service.oidc.redirect_uris[0], secret_file.read_text().strip()


def _authorize_less_one(redirect_uri: str) -> Iterator[Request]:
    valid = {
        "response_type": "code",
        "client_id": OIDC_PUBLISHER_ID,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": MARK,
        "nonce": "n" * 16,
    }
    for name in AUTHORIZE_NEEDS:
        less = {k: v for k, v in valid.items() if k != name}
        case = f"without_{name}"
        yield Request("GET", "/oidc/authorize", query_string=less, case=case)
        yield Request("POST", "/oidc/authorize", data=less, case=case)


def _token_less_one(redirect_uri: str, secret: str) -> Iterator[Request]:
    basic = base64.b64encode(f"{OIDC_PUBLISHER_ID}:{secret}".encode()).decode()
    valid = {
        "grant_type": "authorization_code",
        "code": MARK + "c" * 40,
        "redirect_uri": redirect_uri,
        "code_verifier": "v" * 43,
        "Authorization": f"Basic {basic}",
    }
    for name in TOKEN_NEEDS:
        less = {k: v for k, v in valid.items() if k != name}
        headers = {"Authorization": less.pop("Authorization")} if "Authorization" in less else {}
        yield Request("POST", "/oidc/token", data=less, headers=headers, case=f"without_{name}")


def test_an_oidc_request_less_one_needed_parameter_is_refused_cleanly(
    sweep: Sweep, logs: pytest.LogCaptureFixture
) -> None:
    """Authorize: the error at the registered redirect URI (the client and its URI are known)
    or, without them, the 400 page; token: the OAuth JSON error. Never a 500; nothing stored."""
    client = sweep.app.test_client()
    redirect_uri, secret = _demo_client(sweep)
    problems: list[str] = []
    for request in _authorize_less_one(redirect_uri):
        store = sweep.store_size
        response = request.send(client)
        location = response.headers.get("Location", "")
        if response.status_code in (302, 303):
            answer = parse_qs(urlsplit(location).query)
            if not location.startswith(redirect_uri + "?") or "error" not in answer:
                problems.append(f"{request} ({request.case}): redirects to {location[:80]!r}")
        elif response.status_code != 400:
            problems.append(f"{request} ({request.case}): status {response.status_code}")
        else:
            problems += check_answer(response, Answer.PAGE, request, sweep)
        if sweep.store_size != store:
            problems.append(f"{request} ({request.case}): the store changed")
    for request in _token_less_one(redirect_uri, secret):
        problems += send(sweep, client, request, logs, answer=Answer.OAUTH, expected={400, 401})
    assert not problems, "\n".join(problems)


# The portals signed in, with a valid CSRF token: what a form answers to garbage in its fields
# where that is not a refusal (400; 403 or 404 for an id in the path that is not the tenant's).
SIGNED_IN: dict[str, tuple[set[int], str]] = {
    "portal_school_receipts.find_student": (
        {200, 400},
        "a search: an identifier of at most 512 characters without receipts is answered "
        '"nothing found" (it is hashed, never kept or logged); a longer one is refused',
    ),
}
# Forms with nothing to fill in: the POST is the action (approve, withdraw, remove an account, a
# new secret, sign out); only their path ids get garbage.
ACTIONS = {
    "portal_operator.approve",
    "portal_operator.remove_admin",
    "portal_operator.withdraw_invitation",
    "portal_publisher_oidc.rotate_secret",
    "portal_sign_in.sign_out",
}
# Valid with every field empty or absent (a browser leaves unticked boxes out): no filter lists
# every receipt; a school may switch a service off and share nothing.
EMPTY_IS_VALID = {
    "portal_school_receipts.receipts",
    "portal_school_receipts.export",
    "portal_school.service",
}
# The GET pages that read a query: the receipts, only to refuse a filter there (it is POSTed:
# school_receipts.py), and the operator's lists, a search and a page number (operator_lists.py);
# the others read none (a download by GET is refused whatever it carries).
QUERY_READERS = {
    "portal_school_receipts.receipts",
    "portal_operator.schools",
    "portal_operator.services",
}
# Lists whose address without a search or page number (or with them empty) is the first page.
EMPTY_QUERY_IS_VALID = {"portal_operator.schools", "portal_operator.services"}
FORM_PAGES = {
    "operator": (
        "/portal/operator/admins",
        "/portal/operator/schools/99XX00",
        "/portal/operator/services",
    ),
    "school": (
        "/portal/school/99XX00/identity-provider",
        "/portal/school/99XX00/overview",
        "/portal/school/99XX00/receipts",
        "/portal/school/99XX00/services/leesplank",
    ),
    "publisher": (
        f"/portal/publisher/{PUBLISHER_ID}/services/new",
        f"/portal/publisher/{PUBLISHER_ID}/services/{CLIENT_ID}",
        f"/portal/publisher/{PUBLISHER_ID}/services/{CLIENT_ID}/oidc",
    ),
}
ROLE_OF = {
    "portal_operator": "operator",
    "portal_school": "school",
    "portal_publisher": "publisher",
}
# None: the fields are left out (only the CSRF token is sent).
FIELD_VALUES: dict[str, str | None] = {
    "missing": None,
    "empty": "",
    "nul_bytes": VALUES["nul_bytes"],
    "control_characters": VALUES["control_characters"],
    "long_value": VALUES["long_value"],
    "10_kb": MARK + "x" * 10_000,
}
FIELD = re.compile(r'<(?:input|select|textarea)[^>]*\sname="([^"]+)"')


@dataclass(frozen=True)
class PortalForms:
    """What a signed-in administrator's requests carry: the CSRF token, and the names of every
    field of their role's forms (a form ignores the others' fields)."""

    token: str
    fields: frozenset[str]
    args: dict[str, str]

    def filled(self, method: str, path: str, case: str, value: str | None) -> Request:
        form = {name: value for name in self.fields if value is not None}
        if method == "GET":
            return Request(method, path, query_string=form, case=case)
        return Request(method, path, data={**form, "csrf_token": self.token}, case=case)

    def invalid_utf8(self, path: str) -> Request:
        raw = b"&".join(f.encode() + b"=" + INVALID_UTF8 for f in sorted(self.fields))
        body = raw + b"&csrf_token=" + self.token.encode()
        kind = "application/x-www-form-urlencoded"
        return Request("POST", path, data=body, content_type=kind, case="invalid_utf8")

    def path(self, rule: Rule, **garbage: str) -> str:
        return path_of(rule, **{**self.args, **garbage})


def portal_forms(sweep: Sweep, role: str) -> PortalForms:
    client = sweep.signed_in[role]
    pages = [client.get(page, base_url=HTTPS).get_data(as_text=True) for page in FORM_PAGES[role]]
    fields = {name for page in pages for name in FIELD.findall(page)} - {"csrf_token"}
    args = {**SAMPLE_ARGS, "service_id": CLIENT_ID if role == "publisher" else "leesplank"}
    return PortalForms(csrf_token(pages[0]), frozenset(fields), args)


def portal_requests(
    sweep: Sweep, role: str, values: Mapping[str, str | None]
) -> Iterator[tuple[Request, set[int]]]:
    """Garbage in every field of the role's forms, and in its pages' path ids."""
    forms = portal_forms(sweep, role)
    for endpoint in sorted(e for e in SPECS if _role(e) == role):
        expected = SIGNED_IN.get(endpoint, ({400}, ""))[0]
        for rule in _rules(sweep.app, endpoint):
            path = forms.path(rule)
            for method in sorted({"GET", "POST"} & set(rule.methods or ())):
                reads = endpoint in QUERY_READERS or (method == "POST" and endpoint not in ACTIONS)
                for case, value in values.items() if reads else ():
                    if not (value or endpoint not in EMPTY_IS_VALID):
                        continue
                    if method == "GET" and not value and endpoint in EMPTY_QUERY_IS_VALID:
                        continue
                    yield forms.filled(method, path, case, value), expected
                if reads and method == "POST" and "nul_bytes" in values:
                    yield forms.invalid_utf8(path), expected
                data = {"csrf_token": forms.token} if method == "POST" else None
                for name in sorted(rule.arguments - {"index", "fmt"}):
                    for value in (MARK, MARK + "x" * 1000, MARK + "\x00"):
                        garbage = Request(method, forms.path(rule, **{name: value}), data=data)
                        yield replace(garbage, case=f"{name}_id"), {400, 403, 404}


def _role(endpoint: str) -> str | None:
    return next((r for prefix, r in ROLE_OF.items() if endpoint.startswith(prefix)), None)


@pytest.mark.parametrize("role", sorted(FORM_PAGES))
def test_portal_forms_refuse_garbage_signed_in(
    sweep: Sweep, logs: pytest.LogCaptureFixture, role: str
) -> None:
    problems: list[str] = []
    client = sweep.signed_in[role]
    for turn, (request, expected) in enumerate(portal_requests(sweep, role, FIELD_VALUES)):
        spoken = request.speaking(LANGUAGES[turn % 2]).over(HTTPS)
        problems += send(sweep, client, spoken, logs, answer=Answer.PORTAL, expected=expected)
    assert not problems, "\n".join(problems)


def nul_requests(sweep: Sweep) -> Iterator[tuple[str, Request, set[int]]]:
    """Requests whose NUL would reach the registry if nothing stopped it before: PostgreSQL can
    neither store nor compare such text (its driver raises: a 500), SQLite could."""
    nul = "\x00" + MARK
    anonymous = sweep.app.test_client()
    token = csrf_token(anonymous.get("/portal/sign-in", base_url=HTTPS).get_data(as_text=True))
    sign_in = {"csrf_token": token, "password": "x" * 20, "code": "123456"}
    # No address has a control character: answered as any unknown account (the attempt counts).
    sweep.signed_in["anonymous"] = anonymous
    yield (
        "anonymous",
        Request("POST", "/portal/sign-in", data={**sign_in, "email": f"ops@broker.example{nul}"}),
        {401},
    )
    # The receipts filter, POSTed as its form and the downloads send it.
    receipts = sweep.signed_in["school"].get("/portal/school/99XX00/receipts", base_url=HTTPS)
    filter_token = csrf_token(receipts.get_data(as_text=True))
    for export in ("/portal/school/99XX00/receipts", "/portal/school/99XX00/receipts.csv"):
        for name in ("service", "attribute", "student"):
            data = {name: nul, "csrf_token": filter_token}
            yield "school", Request("POST", export, data=data), {400}
    invite = {"email": "new@school.example", "role": "school", "tenant_id": "99XX00" + nul}
    admins = sweep.signed_in["operator"].get("/portal/operator/admins", base_url=HTTPS)
    invite["csrf_token"] = csrf_token(admins.get_data(as_text=True))
    yield "operator", Request("POST", "/portal/operator/admins/invite", data=invite), {400}


def test_a_nul_never_reaches_the_database(
    either_sweep: Sweep, logs: pytest.LogCaptureFixture
) -> None:
    sweep = either_sweep
    problems: list[str] = []
    requests = [(role, r, e) for role, r, e in nul_requests(sweep)]
    nul_only = {"nul_bytes": VALUES["nul_bytes"]}
    requests += [
        (role, r, e) for role in FORM_PAGES for r, e in portal_requests(sweep, role, nul_only)
    ]
    for turn, (role, request, expected) in enumerate(requests):
        spoken = (
            replace(request, case=request.case or "nul").speaking(LANGUAGES[turn % 2]).over(HTTPS)
        )
        # A sign-in attempt is counted before anything is checked (portal/guard.py).
        writes = request.path == "/portal/sign-in"
        problems += send(
            sweep,
            sweep.signed_in[role],
            spoken,
            logs,
            answer=Answer.PORTAL,
            expected=expected,
            store_writes=writes,
        )
    assert not problems, "\n".join(problems)
