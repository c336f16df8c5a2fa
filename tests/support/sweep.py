"""The checks of tests/security/test_bad_input_sweep.py: the broker it sweeps (the demo federation
with an administrator per role) and what every answer to a bad request must be.

`send` makes one request and checks its answer: below 500 (a SOAP route's fault excepted: 500
is how the binding refuses) and without a trace of the code, the expected status, in the
route's own format (a page in the requested language whose error code is
in the log, OAuth or Back-Channel Logout JSON, the MDQ 404), a log line of the broker's own that
quotes nothing the request sent (every garbage value carries `MARK`), the store and the
registry unchanged.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, text
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from broker.config import RateLimits
from broker.core.catalogue import CATALOGUE
from broker.registry.database import open_engine
from broker.web import create_app
from broker.web.health import READY_PROBE_KEY
from broker.web.i18n import TRANSLATIONS_DIR
from tests.support.bad_input import MARK, SAMPLE_ARGS, Answer, Request
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, csrf_token

OFF = RateLimits(sso="", acs="", token="", discovery="", student_lookup="")
# A Python exception's name or a traceback in what a user or client is shown.
LEAK = re.compile(r"Traceback|File \"|\b[A-Z][A-Za-z]+(?:Error|Exception)\b|werkzeug|sqlalchemy")
ERROR_CODE_LABEL = {"nl": "Foutcode:", "en": "Error code:"}
# Says nothing about what was wrong: never the answer to a bad request.
GENERIC = ("Something went wrong", "Something went wrong on this website.")
FOUR_XX = set(range(400, 500))
JSON_ANSWERS = (Answer.OAUTH, Answer.BACKCHANNEL, Answer.JSON_DOCUMENT)
_STANDARD_RECORD = set(vars(logging.makeLogRecord({})))
CLIENT_ID = "sweep-app"  # the publisher's own OIDC client (registered by the fixture)


@dataclass
class Sweep:
    site: PortalSite
    app: Flask
    signed_in: dict[str, FlaskClient]
    # English msgid → Dutch msgstr: a page in one language must not show the other's text.
    dutch: dict[str, str]

    @property
    def store_size(self) -> int:
        """The store's keys but /readyz's own probe (a write of its own key, short-lived, that
        shows the store takes writes: health.py), which every readiness check writes."""
        store = self.site.broker.store.inner  # type: ignore[attr-defined]
        return len(store) - int(store.get(READY_PROBE_KEY) is not None)

    def registry_rows(self) -> dict[str, int]:
        engine = open_engine(self.site.settings.registry_url)
        try:
            with engine.connect() as connection:
                tables = inspect(engine).get_table_names()
                count = 'SELECT count(*) FROM "{}"'
                return {t: connection.execute(text(count.format(t))).scalar_one() for t in tables}
        finally:
            engine.dispose()


def _catalogue() -> dict[str, str]:
    with (TRANSLATIONS_DIR / "nl" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalogue = read_po(po)
    return {
        m.id: m.string
        for m in catalogue
        if isinstance(m.id, str) and isinstance(m.string, str) and m.string
    }


def _own_client(client: FlaskClient) -> None:
    """A client of the publisher's own, so its service pages are reached, not only refused."""
    form = f"/portal/publisher/{PUBLISHER_ID}/services/new-oidc"
    token = csrf_token(client.get(form, base_url=HTTPS).get_data(as_text=True))
    fields = {
        **{f"need_{name}": "" for name in CATALOGUE},  # a browser sends every select
        "csrf_token": token,
        "service_id": CLIENT_ID,
        "name": "Sweep app",
        "redirect_uris": "https://app.sweep.example/cb",
        "auth_method": "client_secret_basic",
        "id_token_alg": "RS256",
    }
    registered = client.post(form, base_url=HTTPS, data=fields)
    assert registered.status_code == 200, registered.get_data(as_text=True)


def build_sweep(directory: Path, port: int) -> Sweep:
    site = PortalSite(directory, port)
    demo_start = site.app.blueprints["demo_start"]
    app = create_app(replace(site.settings, rate_limits=OFF), services=site.broker)
    app.register_blueprint(demo_start)  # the demo's start page, as `ketenbroker demo` serves it
    site.app = app
    signed_in = {role: site.sign_in(role) for role in ("operator", "school", "publisher")}
    _own_client(signed_in["publisher"])
    return Sweep(site, app, signed_in, _catalogue())


def path_of(rule: Rule, **garbage: str) -> str:
    path = rule.rule
    for name in rule.arguments:
        value = garbage.get(name, SAMPLE_ARGS[name])
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", lambda _m: value, path)
    return path


def _shown(pattern: str, page: str) -> str:
    found = re.search(pattern, page, re.S)
    return html.unescape(re.sub(r"<[^>]+>|\s+", " ", found.group(1))).strip() if found else ""


def check_page(page: str, language: str, path: str, dutch: dict[str, str]) -> list[str]:
    """A refusal page: `<html lang>`, its heading and message in `language` (an error page's
    both from the catalogue's side of that language, so an untranslated one is found), specific
    (not "something went wrong"), and in a portal one for administrators."""
    problems = [] if f'<html lang="{language}">' in page else [f"page not lang={language}"]
    error_page = 'class="error-code"' in page
    shown = [_shown(r"<h1>(.*?)</h1>", page), _shown(r'role="alert">\s*<p>(.*?)</p>', page)]
    english = {dutch_text: msgid for msgid, dutch_text in dutch.items()}
    for text_shown in filter(None, shown):
        if language == "nl" and (text_shown in dutch or (error_page and text_shown not in english)):
            problems.append(f"not Dutch on a Dutch page: {text_shown!r}")
        if language == "en" and (text_shown in english or (error_page and text_shown not in dutch)):
            problems.append(f"not English on an English page: {text_shown!r}")
        if english.get(text_shown, text_shown) in GENERIC:
            problems.append(f"says only {text_shown!r}")
    if error_page and ERROR_CODE_LABEL[language] not in page:
        problems.append(f"no {ERROR_CODE_LABEL[language]!r} on the error page")
    if path.startswith("/portal/") and error_page and 'href="/portal/"' not in page:
        problems.append("a portal error page that does not lead back to the portal")
    return problems


def check_logs(records: list[logging.LogRecord], response: TestResponse) -> list[str]:
    """A refusal writes a line of the broker's own; no line quotes what the request sent; a page's
    error code is in a line (so a student's report finds it)."""
    problems = []
    for record in records:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD}
        if MARK in record.getMessage() or MARK in repr(extras):
            problems.append(f"log line quotes the input: {record.getMessage()[:120]!r}")
    own = [r for r in records if r.name.startswith("broker")]
    if response.status_code >= 400 and not own:
        problems.append("refused without a log line")
    shown = re.search(r"<code>([0-9a-f]{8})</code>", response.get_data(as_text=True))
    if shown and not any(shown.group(1) in r.getMessage() for r in own):
        problems.append(f"error code {shown.group(1)} shown but in no log line")
    return problems


def check_answer(
    response: TestResponse, answer: Answer, request: Request, sweep: Sweep
) -> list[str]:
    """The answer in the route's own format, without a trace of the code behind it."""
    body = response.get_data(as_text=True)
    status, kind = response.status_code, response.mimetype
    leak = LEAK.search(body) if kind != "application/octet-stream" else None
    problems = [f"shows {leak.group(0)!r}"] if leak else []
    location = response.headers.get("Location", "")
    if location.startswith(("http:", "https:", "//")) or (
        MARK in location and not location.startswith(request.path.split("\x00")[0])
    ):
        problems.append(f"redirects to {location[:80]!r}")
    if status == 405 and not response.headers.get("Allow"):
        problems.append("405 without an Allow header")
    if answer is Answer.SOAP and status >= 400:
        # Every error of the SOAP route is a fault (405 and 413 keep their status).
        fault = "<soap11:Fault><faultcode>soap11:"
        if kind != "text/xml" or fault not in body:
            problems.append(f"{status} answered as {kind}, not a SOAP fault: {body[:80]}")
        return [*problems, "the SOAP fault quotes the input"] if MARK in body else problems
    if status >= 500 or 300 <= status < 400 or status == 204:
        return problems
    if answer in JSON_ANSWERS:
        if kind != "application/json":
            return [*problems, f"{status} answered as {kind}, not JSON"]
        error = json.loads(body).get("error")
        challenge = status == 401 and response.headers.get("WWW-Authenticate") == "Bearer"
        if status >= 400 and not (isinstance(error, str) or challenge):
            problems.append(f"JSON refusal without an error: {body[:80]}")
        if MARK in body:
            problems.append("the JSON error quotes the input")
    elif answer is Answer.MDQ and status == 404:
        if kind != "text/plain":
            problems.append(f"the MDQ 404 answered as {kind}")
    elif status >= 400:
        if kind != "text/html":
            return [*problems, f"{status} answered as {kind}"]
        problems += check_page(body, request.language, request.path, sweep.dutch)
    return problems


def send(
    sweep: Sweep,
    client: FlaskClient,
    request: Request,
    logs: pytest.LogCaptureFixture,
    *,
    answer: Answer,
    expected: set[int],
    store_writes: bool = False,
) -> list[str]:
    """One request and every check of its answer: the problems, each naming the request."""
    store, generation, first = sweep.store_size, sweep.site.registry.generation(), len(logs.records)
    response = request.send(client)
    problems = check_answer(response, answer, request, sweep)
    if response.status_code not in expected:
        wanted = "4xx" if expected == FOUR_XX else sorted(expected)
        problems.append(f"status {response.status_code}, expected {wanted}")
    problems += check_logs(logs.records[first:], response)
    response.close()  # a static file's handle
    if sweep.store_size != store and not store_writes:
        problems.append(f"the store changed ({sweep.store_size - store:+d} keys)")
    if sweep.site.registry.generation() != generation:
        problems.append("the registry changed")
    unhandled = [r.getMessage() for r in logs.records[first:] if r.levelno >= logging.ERROR]
    return [f"{request} ({request.case}): {p} {unhandled or ''}" for p in problems]
