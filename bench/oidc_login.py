"""Time whole OpenID Connect logins through the broker: the pairings with OIDC on either side.

Usage: python bench/oidc_login.py [--logins 200] [--warmup 5]

Builds the demo in a temporary directory and plays one fresh browser per login with Flask test
clients, as bench/login.py does. Pairings:

- `oidc->saml`: the script is the publisher's relying party (client `woordwijs`): authorize →
  discovery → the SAML demo school → the broker's ACS → redirect with a code; then the token
  request (client_secret_basic, PKCE) and userinfo, as a platform's back end makes them.
- `saml->oidc`: the demo SAML publisher Leesplank → the broker → the demo OIDC school → the
  broker's callback, where the broker redeems the code at the school's token endpoint and fetches
  its keys over real loopback HTTP (the school's provider is served on a socket for that) → the
  auto-POST to Leesplank.
- `oidc->oidc`: both.

Every login must end with the 64-hex pseudonym at the publisher. The broker's share is the time
inside the broker's WSGI app; in the pairings with an OIDC school it includes waiting for the
school's token endpoint (in this process, on loopback), which the per-request table shows under
`GET /oidc/rp/callback`. The last line is `RESULT oidc_saml_broker_ms_median=… …`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import re
import secrets
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

from bench_instance import bench_instance
from login import (
    HEX64,
    NAME_ID,
    USERS,
    Browser,
    LoginFailed,
    TimedApp,
    forms_of,
    p95,
    shows_discovery,
    summary,
)
from werkzeug.serving import make_server

from broker.cli.demo import (
    DEMO_OIDC_SCHOOL_ID,
    DEMO_SCHOOL_ID,
    OIDC_SCHOOL_PORT_OFFSET,
    prepare_demo,
)
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, OIDC_PUBLISHER_PORT_OFFSET

SUB = re.compile(r'<code id="sub">([0-9a-f]{64})</code>')


def free_port_run(count: int) -> int:
    for _ in range(100):
        base = secrets.randbelow(20000) + 30000
        try:
            for i in range(count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + i))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


class Demo:
    def __init__(self, directory: Path) -> None:
        self.port = free_port_run(7)
        bench_instance(directory, self.port)  # hundreds of logins a minute: no rate limits
        settings, apps = prepare_demo(directory, self.port)
        self.broker_url = settings.base_url
        self.school_op = f"http://localhost:{self.port + OIDC_SCHOOL_PORT_OFFSET}"
        self.rp = f"http://localhost:{self.port + OIDC_PUBLISHER_PORT_OFFSET}"
        self.leesplank = f"http://localhost:{self.port + 2}"
        # The broker calls the school's provider server to server: that one needs a socket.
        self.op_server = make_server(
            "127.0.0.1", self.port + 5, apps[self.school_op], threaded=True
        )
        threading.Thread(target=self.op_server.serve_forever, daemon=True).start()
        self.timed = TimedApp(apps[self.broker_url].wsgi_app)
        apps[self.broker_url].wsgi_app = self.timed  # type: ignore[method-assign]
        self.clients = {url: app.test_client(use_cookies=False) for url, app in apps.items()}
        secret_file = directory / "peers" / f"{OIDC_PUBLISHER_ID}-client-secret"
        self.rp_secret = secret_file.read_text(encoding="utf-8").strip()

    def close(self) -> None:
        self.op_server.shutdown()


def through_school(demo: Demo, browser: Browser, url: str, page: str, school: str, uid: str):
    """From wherever the broker sent the browser to the login's end (a page, or a redirect)."""
    if shows_discovery(page):
        url, page = browser.submit(url, page, ("school", school))
    if url.startswith(demo.school_op):
        url, page = browser.submit(url, page, ("uid", uid))
    elif "/sso" in url:  # the SAML school: pick, then its auto-POST to the broker's ACS
        url, page = browser.submit(url, page, ("uid", uid))
        url, page = browser.submit(url, page)
    if any("/notice/" in form.action for form in forms_of(page)):
        # A first visit in a session shows the notice (docs/receipts.md); the student continues.
        url, page = browser.submit(url, page)
    return url, page


def oidc_publisher_login(demo: Demo, school: str, uid: str) -> str:
    browser = Browser(demo.clients)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    redirect_uri = f"{demo.rp}/callback"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": OIDC_PUBLISHER_ID,
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
    )
    # The browser part: stop where the broker sends it back to the platform with a code.
    original = browser.follow

    def follow_until_client(method: str, url: str, data: dict[str, str] | None = None):
        for _ in range(20):
            if url.startswith(redirect_uri):
                return url, ""
            response = browser.request(method, url, data)
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["Location"])
                method, data = "GET", None
                continue
            return url, response.get_data(as_text=True)
        raise LoginFailed("redirect loop")

    browser.follow = follow_until_client  # type: ignore[method-assign]
    url, page = browser.follow("GET", f"{demo.broker_url}/oidc/authorize?{query}")
    url, page = through_school(demo, browser, url, page, school, uid)
    browser.follow = original  # type: ignore[method-assign]
    if not url.startswith(redirect_uri):
        raise LoginFailed(f"expected the redirect to the platform, got {url}\n{page[:1000]}")
    code = parse_qs(urlsplit(url).query)["code"][0]
    # The platform's back end: token and userinfo.
    broker = demo.clients[demo.broker_url]
    basic = base64.b64encode(f"{OIDC_PUBLISHER_ID}:{demo.rp_secret}".encode()).decode()
    token = broker.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    if token.status_code != 200:
        raise LoginFailed(f"token: {token.status_code} {token.get_data(as_text=True)}")
    access = token.get_json()["access_token"]
    info = broker.get("/oidc/userinfo", headers={"Authorization": f"Bearer {access}"})
    sub = info.get_json().get("sub", "")
    if not HEX64.fullmatch(sub):
        raise LoginFailed(f"userinfo without a 64-hex sub: {info.get_data(as_text=True)}")
    return str(sub)


def saml_publisher_login(demo: Demo, uid: str) -> str:
    browser = Browser(demo.clients)
    url, page = browser.follow(
        "GET", f"{demo.leesplank}/login?school={quote(demo.school_op, safe='')}"
    )
    url, page = through_school(demo, browser, url, page, DEMO_OIDC_SCHOOL_ID, uid)
    url, page = browser.submit(url, page)  # the broker's auto-POST to Leesplank
    found = NAME_ID.search(page)
    if not url.startswith(demo.leesplank) or not found or not HEX64.fullmatch(found.group(1)):
        raise LoginFailed(f"login ended at {url} without a 64-hex NameID\n{page[:1000]}")
    return found.group(1)


PAIRINGS = {
    "oidc->saml": lambda demo, uid: oidc_publisher_login(demo, DEMO_SCHOOL_ID, uid),
    "saml->oidc": saml_publisher_login,
    "oidc->oidc": lambda demo, uid: oidc_publisher_login(demo, DEMO_OIDC_SCHOOL_ID, uid),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    if args.logins < 1:
        parser.error("--logins must be at least 1")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kb-bench-oidc-") as tmp:
        demo = Demo(Path(tmp))
        try:
            for name, login in PAIRINGS.items():
                for i in range(args.warmup):
                    login(demo, USERS[i % len(USERS)])
                shares: list[float] = []
                trips: list[float] = []
                by_step: dict[str, list[float]] = {}
                subjects: set[str] = set()
                for i in range(args.logins):
                    demo.timed.reset()
                    start = time.perf_counter()
                    subjects.add(login(demo, USERS[i % len(USERS)]))
                    trips.append((time.perf_counter() - start) * 1000)
                    shares.append(demo.timed.seconds * 1000)
                    for step, seconds in demo.timed.by_step.items():
                        by_step.setdefault(step, []).append(seconds * 1000)
                if len(subjects) != min(args.logins, len(USERS)):
                    raise LoginFailed(
                        f"{name}: expected one pseudonym per user, got {len(subjects)}"
                    )
                medians[name] = statistics.median(shares)
                print(f"\n{name}: {args.logins} logins; ms per login (median, p95, mean)")
                print(f"  broker share {summary(shares)}")
                print(f"  round trip   {summary(trips)}")
                for step in sorted(by_step):
                    values = by_step[step]
                    print(f"  {step:<24} {statistics.median(values):7.2f} {p95(values):8.2f}")
        finally:
            demo.close()
    print(
        "RESULT "
        + " ".join(
            f"{name.replace('->', '_')}_broker_ms_median={value:.2f}"
            for name, value in medians.items()
        )
    )


if __name__ == "__main__":
    main()
