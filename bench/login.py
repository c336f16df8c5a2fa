"""Time whole SAML logins through the broker, in process: publisher SP -> broker -> school IdP.

Usage: python bench/login.py [--logins 200] [--warmup 5] [--route both|in-process|xmlsec1] [--cpu]
                             [--store-url redis://127.0.0.1:6379/12]
                             [--registry-url postgresql+psycopg://127.0.0.1/test]
       python bench/login.py --profile [--sort tottime] [--logins 200]

Builds the demo (`ketenbroker demo`'s apps) in a temporary directory and drives one made-up
browser through each login with Flask test clients: no sockets, cookies kept per host by this
script, redirects followed and auto-POST forms submitted. Every login must end on the publisher's
page with a 64-hex NameID; the script aborts on the first one that does not.

Per login it reports the round trip (every request of the login, this script's HTML parsing
included) and the broker's share (time inside the broker's WSGI app: SSO with the discovery
page, the school's choice, ACS, the notice). Routes: `in-process` (the broker's default signature backend) and `xmlsec1` (the
broker built with pysaml2's stock backend, which starts the `xmlsec1` program; only measured
when it is on PATH). The demo school IdP and publisher stay in process on both routes.

By default the broker runs on the demo's embedded stores (memory, SQLite): `--store-url` and
`--registry-url` put it on Redis and PostgreSQL, as in production, to show what their clients
cost; `--cpu` then counts the broker's thread CPU instead of the wall clock, which would include
waiting for those servers.

`--profile` runs the in-process route under cProfile, enabled only inside the broker's requests,
and prints the top 25 entries by cumulative time (timings under the profiler are inflated).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import saml2.sigver
from bench_instance import bench_instance
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo
from broker.cli.instance import CONFIG_NAME
from broker.config import load_settings
from broker.web import create_app
from broker.web.browser import SCHOOL_COOKIE
from broker.web.wiring import build_broker

PORT = 8400  # only used in URLs: nothing listens
USERS = ("sanne.jansen", "daan.devries", "fatima.elamrani", "marieke.bakker")
NAME_ID = re.compile(r'<code id="name-id-value">([^<]*)</code>')
HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_STEPS = 20


class LoginFailed(RuntimeError):
    pass


# --- counting the processes pysaml2 starts --------------------------------------------------

_ORIGINAL_POPEN = subprocess.Popen


class _Spawned:
    xmlsec1 = 0
    other = 0


class CountingPopen(_ORIGINAL_POPEN):  # type: ignore[misc,valid-type]
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        program = args[0] if isinstance(args, list | tuple) else str(args).split()[0]
        if os.path.basename(str(program)).startswith("xmlsec1"):
            _Spawned.xmlsec1 += 1
        else:
            _Spawned.other += 1
        super().__init__(args, *rest, **kwargs)


def count_processes() -> None:
    # pysaml2's sigver does `from subprocess import Popen`: patch its name as well.
    subprocess.Popen = CountingPopen  # type: ignore[misc]
    saml2.sigver.Popen = CountingPopen


# --- the browser -----------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        # The discovery page's link straight to the remembered school (its request made with
        # the page: broker/web/discovery.py, first_discovery_page).
        self.prepared: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "data-prepared-for" in a:
            self.prepared.append(a.get("href", ""))
        elif tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def forms_of(page: str) -> list[Form]:
    parser = FormParser()
    parser.feed(page)
    return parser.forms


def prepared_link(page: str) -> str | None:
    """The discovery page's link straight to the remembered school, if it has one."""
    parser = FormParser()
    parser.feed(page)
    return parser.prepared[0] if parser.prepared else None


def shows_discovery(page: str) -> bool:
    """The broker's discovery page, by its content: a login that arrived by GET gets it in the
    response at its own address (the SSO or authorize URL), one that arrived by POST at
    `/discovery`. Its school form POSTs a school choice to `/discovery` (the remembered
    school's may be a link to the school instead: its form carries the school as a field)."""
    return any(
        form.method == "post"
        and urlsplit(form.action).path.endswith("/discovery")
        and ("school" in form.fields or any(name == "school" for name, _ in form.buttons))
        for form in forms_of(page)
    )


class TimedApp:
    """WSGI middleware around the broker: adds up the time spent inside it, per path, on the
    wall clock or (`clock=time.thread_time`) as this thread's CPU, which leaves out the waits for
    Redis or PostgreSQL."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.app = app
        self.clock = clock
        self.seconds = 0.0
        self.by_step: dict[str, float] = defaultdict(float)
        self.xmlsec1_by_step: dict[str, int] = defaultdict(int)
        self.profiler: cProfile.Profile | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        spawned = _Spawned.xmlsec1
        start = self.clock()
        if self.profiler:
            self.profiler.enable()
        try:
            result = self.app(environ, start_response)
            try:
                body = list(result)
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        finally:
            if self.profiler:
                self.profiler.disable()
            spent = self.clock() - start
            self.seconds += spent
            # One row per route: the notice's id is different on every login.
            path = re.sub(r"^/notice/.*", "/notice/<id>", environ["PATH_INFO"])
            step = f"{environ['REQUEST_METHOD']} {path}"
            self.by_step[step] += spent
            self.xmlsec1_by_step[step] += _Spawned.xmlsec1 - spawned
        return body

    def reset(self) -> None:
        self.seconds = 0.0
        self.by_step.clear()
        self.xmlsec1_by_step.clear()


class Browser:
    """One fresh browser: cookies per host name (not per port, as browsers keep them).

    Secure cookies are sent over http here: the broker's are `SameSite=None; Secure` and
    Chromium counts loopback http as a secure context (pitfalls.md). SameSite is not modelled.
    """

    def __init__(
        self, clients: dict[str, FlaskClient], remembered: tuple[str, str] | None = None
    ) -> None:
        """`remembered`: (the broker's host name, a school id): a returning student's browser,
        whose school the broker remembers from an earlier day (no SSO session left)."""
        self.clients = clients
        self.jars: dict[str, dict[str, str]] = defaultdict(dict)
        if remembered is not None:
            self.jars[remembered[0]][SCHOOL_COOKIE] = remembered[1]

    def request(self, method: str, url: str, data: dict[str, str] | None = None) -> TestResponse:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self.clients.get(origin)
        if client is None:
            raise LoginFailed(f"no app at {origin} (for {method} {url})")
        jar = self.jars[parts.hostname or ""]
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
        response = client.open(url, method=method, data=data, headers=headers)
        for header in response.headers.getlist("Set-Cookie"):
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0":
                    jar.pop(name, None)
                else:
                    jar[name] = morsel.value
        return response

    def follow(self, method: str, url: str, data: dict[str, str] | None = None) -> tuple[str, str]:
        """Request and follow redirects; (final URL, page text) of a 200."""
        for _ in range(MAX_STEPS):
            response = self.request(method, url, data)
            if response.status_code in (301, 302, 303, 307, 308):
                url = urljoin(url, response.headers["Location"])
                method, data = "GET", None
                continue
            page = response.get_data(as_text=True)
            if response.status_code != 200:
                raise LoginFailed(f"{method} {url} -> {response.status_code}\n{page[:2000]}")
            return url, page
        raise LoginFailed("redirect loop")

    def choose(self, url: str, page: str, school_id: str) -> tuple[str, str]:
        """On the discovery page: follow the link straight to the remembered school when the
        page has one, or POST the choice of `school_id`."""
        link = prepared_link(page)
        if link is not None:
            return self.follow("GET", urljoin(url, link))
        return self.submit(url, page, ("school", school_id))

    def submit(self, url: str, page: str, button: tuple[str, str] | None = None) -> tuple[str, str]:
        forms = [f for f in forms_of(page) if f.method == "post"]
        if button:
            forms = [f for f in forms if button in f.buttons]
        if not forms:
            raise LoginFailed(f"no form to submit on {url} (button {button})\n{page[:2000]}")
        form = forms[0]
        data = dict(form.fields)
        if button:
            data[button[0]] = button[1]
        return self.follow("POST", urljoin(url, form.action), data)


def one_login(
    clients: dict[str, FlaskClient],
    publisher: str,
    uid: str,
    remembered: tuple[str, str] | None = None,
) -> str:
    """A whole login from a fresh browser (`remembered`: a returning student's, see Browser);
    returns the NameID the publisher accepted."""
    browser = Browser(clients, remembered)
    url, page = browser.follow("GET", f"{publisher}/login")  # -> broker SSO: discovery
    if not shows_discovery(page):
        raise LoginFailed(f"expected the discovery page, got {url}")
    url, page = browser.choose(url, page, DEMO_SCHOOL_ID)  # -> school IdP pick page
    url, page = browser.submit(url, page, ("uid", uid))  # auto-POST page towards the broker ACS
    url, page = browser.submit(url, page)  # broker ACS -> the information notice
    if any("/notice/" in form.action for form in forms_of(page)):
        # A first visit in a session shows the notice (docs/receipts.md); the student continues.
        url, page = browser.submit(url, page)  # -> auto-POST page towards the publisher
    url, page = browser.submit(url, page)  # publisher ACS
    if not url.startswith(publisher):
        raise LoginFailed(f"login ended at {url}, not at the publisher")
    found = NAME_ID.search(page)
    if not found or not HEX64.fullmatch(found.group(1)):
        raise LoginFailed(f"publisher page without a 64-hex NameID\n{page[:2000]}")
    return found.group(1)


# --- routes ----------------------------------------------------------------------------------


@dataclass
class Route:
    name: str
    clients: dict[str, FlaskClient]
    broker: TimedApp
    publisher: str


@dataclass
class Figures:
    round_trip: list[float] = field(default_factory=list)
    broker: list[float] = field(default_factory=list)
    by_step: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    xmlsec1_by_step: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    xmlsec1: int = 0
    other: int = 0


def build_route(
    name: str, directory: Path, backend: str | None, args: argparse.Namespace | None = None
) -> Route:
    """`args`: this script's options (store, registry, --cpu); the other scripts that build a
    route (store_calls.py, acs_breakdown.py) take the defaults: memory store, SQLite, wall clock."""
    if args is None:
        args = argparse.Namespace(store_url=None, registry_url=None, cpu=False)
    # hundreds of logins a minute: no rate limits
    bench_instance(directory, PORT, store_url=args.store_url, registry_url=args.registry_url)
    settings, apps = prepare_demo(directory, PORT)
    if backend is not None:
        # Same instance and peers; only the broker's own signing and verifying switches.
        settings = load_settings(directory / CONFIG_NAME)
        services = build_broker(settings, saml_crypto_backend=backend)
        apps[settings.base_url] = create_app(settings, services=services)
    broker_app: Flask = apps[settings.base_url]
    timed = TimedApp(broker_app.wsgi_app, time.thread_time if args.cpu else time.perf_counter)
    broker_app.wsgi_app = timed  # type: ignore[method-assign]
    clients = {url: app.test_client(use_cookies=False) for url, app in apps.items()}
    peers = [url for url in apps if url != settings.base_url]
    return Route(name, clients, timed, publisher=peers[1])  # peers[0] is the school IdP


def run(route: Route, logins: int, warmup: int) -> Figures:
    for i in range(warmup):
        one_login(route.clients, route.publisher, USERS[i % len(USERS)])
    figures = Figures()
    name_ids: set[str] = set()
    spawned = (_Spawned.xmlsec1, _Spawned.other)
    for i in range(logins):
        route.broker.reset()
        start = time.perf_counter()
        name_ids.add(one_login(route.clients, route.publisher, USERS[i % len(USERS)]))
        figures.round_trip.append((time.perf_counter() - start) * 1000)
        figures.broker.append(route.broker.seconds * 1000)
        for step, seconds in route.broker.by_step.items():
            figures.by_step[step].append(seconds * 1000)
        for step, count in route.broker.xmlsec1_by_step.items():
            figures.xmlsec1_by_step[step] += count
    figures.xmlsec1 = _Spawned.xmlsec1 - spawned[0]
    figures.other = _Spawned.other - spawned[1]
    if len(name_ids) != min(logins, len(USERS)):
        raise LoginFailed(f"expected one NameID per demo user, got {len(name_ids)}")
    return figures


# --- reporting -------------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]  # nearest rank


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} {p95(values):8.2f} {statistics.mean(values):8.2f}"


def report(results: dict[str, Figures], logins: int) -> None:
    print(f"\n{logins} logins per route; milliseconds per login (median, p95, mean)")
    print(
        f"{'route':<11} | {'broker share':^26} | {'round trip':^26} | xmlsec1 procs/login\n"
        f"{'':<11} | {'median':>8} {'p95':>8} {'mean':>8} | {'median':>8} {'p95':>8} {'mean':>8} |"
    )
    for name, f in results.items():
        print(
            f"{name:<11} | {summary(f.broker)} | {summary(f.round_trip)} | "
            f"{f.xmlsec1 / logins:6.2f}" + (f" (+{f.other / logins:.2f} other)" if f.other else "")
        )
    print("\nbroker share per request: median ms, p95 ms, xmlsec1 processes per login")
    steps = sorted({s for f in results.values() for s in f.by_step})
    print(f"{'request':<20}" + "".join(f" | {name:^24}" for name in results))
    for step in steps:
        cells = ""
        for f in results.values():
            v = f.by_step.get(step)
            procs = f.xmlsec1_by_step.get(step, 0) / logins
            cells += (
                f" | {statistics.median(v):7.2f} {p95(v):8.2f} {procs:7.2f}"
                if v
                else f" | {'-':^24}"
            )
        print(f"{step:<20}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--route", choices=("both", "in-process", "xmlsec1"), default="both")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process route")
    parser.add_argument(
        "--store-url",
        help="the broker's store instead of memory:// (e.g. redis://127.0.0.1:6379/12)",
    )
    parser.add_argument(
        "--registry-url",
        help="the registry instead of SQLite (e.g. postgresql+psycopg://127.0.0.1/test)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="the broker's share as its thread's CPU time, not the wall clock (waits left out)",
    )
    parser.add_argument(
        "--sort", default="cumulative", help="--profile's order (pstats key: cumulative, tottime)"
    )
    args = parser.parse_args()
    if args.logins < 1:
        parser.error("--logins must be at least 1")
    count_processes()

    with tempfile.TemporaryDirectory(prefix="kb-bench-login-") as tmp:
        directory = Path(tmp)
        if args.profile:
            route = build_route("in-process", directory, None, args)
            run(route, 0, args.warmup)
            profiler = cProfile.Profile()
            route.broker.profiler = profiler
            figures = run(route, args.logins, 0)
            route.broker.profiler = None
            print(
                f"{args.logins} logins under cProfile (inflated): broker share median "
                f"{statistics.median(figures.broker):.2f} ms\n"
                f"top 25 by {args.sort}, broker requests only:"
            )
            pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(25)
            return

        results: dict[str, Figures] = {}
        if args.route in ("both", "in-process"):
            results["in-process"] = run(
                build_route("in-process", directory, None, args), args.logins, args.warmup
            )
        if args.route in ("both", "xmlsec1"):
            if shutil.which("xmlsec1"):
                results["xmlsec1"] = run(
                    build_route("xmlsec1", directory, "xmlsec1", args), args.logins, args.warmup
                )
            else:
                print("skipped: xmlsec1 not installed (no xmlsec1 program on PATH)")
    report(results, args.logins)

    def median(name: str) -> str:
        return f"{statistics.median(results[name].broker):.2f}" if name in results else "skipped"

    speedup = (
        f"{statistics.median(results['xmlsec1'].broker) / statistics.median(results['in-process'].broker):.1f}"
        if "xmlsec1" in results and "in-process" in results
        else "n/a"
    )
    print(
        f"RESULT inprocess_broker_ms_median={median('in-process')} "
        f"xmlsec1_broker_ms_median={median('xmlsec1')} speedup={speedup}"
    )


if __name__ == "__main__":
    main()
