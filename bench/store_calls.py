"""Count the broker's store calls per request of one whole login, in process.

Usage: python bench/store_calls.py [--pairing saml->saml|oidc->oidc|both]

Builds the demo as bench/login.py does and plays one fresh browser through a login (the
information notice included), recording every call the broker makes on its store
(`CountingStore`, which wraps whichever store is configured) and the kind of key it touched
(the part before the first `:`; never the rest, which is a hash of a cookie or an id). Prints the
calls per request and the total: each call is one Redis round trip in production, and one
`batch` is one round trip for several commands.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from login import DEMO_SCHOOL_ID, USERS, Browser, TimedApp, build_route, forms_of, one_login
from oidc_login import Demo, oidc_publisher_login

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID
from broker.web.metrics import CountingStore

CALLS: list[tuple[str, str]] = []
CURRENT = ["-"]


def _kind(key: str) -> str:
    return key.split(":", 1)[0]


def _record(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def recorded(self: CountingStore, *args: Any, **kwargs: Any) -> Any:
        if name == "batch":
            # Patched on the class, and a batch arrives as one call holding several commands.
            detail = ",".join(f"{op.operation}({_kind(op.key)})" for op in args[0])
            CALLS.append((CURRENT[0], f"batch[{detail}]"))
        else:
            CALLS.append((CURRENT[0], f"{name}({_kind(args[0]) if args else ''})"))
        return original(self, *args, **kwargs)

    return recorded


def instrument() -> None:
    for name in ("put", "get", "take", "add_if_absent", "delete", "ping", "batch"):
        original = getattr(CountingStore, name, None)
        if original is not None:
            setattr(CountingStore, name, _record(name, original))
    inner_call = TimedApp.__call__

    def tagged(self: TimedApp, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path.startswith("/notice/"):
            path = "/notice/<id>"
        CURRENT[0] = f"{environ['REQUEST_METHOD']} {path}"
        return inner_call(self, environ, start_response)

    TimedApp.__call__ = tagged  # type: ignore[method-assign]


def returning_login(route: Any) -> None:
    """A login, then a second one in the same browser: the SSO session answers it."""
    browser = Browser(route.clients)
    url, page = browser.follow("GET", f"{route.publisher}/login")
    url, page = browser.submit(url, page, ("school", DEMO_SCHOOL_ID))
    url, page = browser.submit(url, page, ("uid", USERS[2]))
    url, page = browser.submit(url, page)  # -> the broker's ACS
    if any("/notice/" in form.action for form in forms_of(page)):
        url, page = browser.submit(url, page)
    browser.submit(url, page)  # the publisher's ACS
    CALLS.clear()
    url, page = browser.follow("GET", f"{route.publisher}/login")  # answered from the session
    browser.submit(url, page)


def report(title: str) -> None:
    print(f"\n{title}: {len(CALLS)} store round trips")
    by_request: dict[str, list[str]] = {}
    for request, call in CALLS:
        by_request.setdefault(request, []).append(call)
    for request, calls in by_request.items():
        print(f"  {request:28} {len(calls):2}  {' '.join(calls)}")
    CALLS.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairing", choices=("saml->saml", "oidc->oidc", "both"), default="both")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    instrument()
    if args.pairing in ("saml->saml", "both"):
        with tempfile.TemporaryDirectory(prefix="kb-store-calls-") as tmp:
            route = build_route("in-process", Path(tmp), None)
            one_login(route.clients, route.publisher, USERS[0])  # warm up: the epoch exists
            CALLS.clear()
            one_login(route.clients, route.publisher, USERS[1])
            report("saml->saml, fresh browser, with the notice")
            returning_login(route)
            report("saml->saml, the same browser again (SSO session, notice seen)")
    if args.pairing in ("oidc->oidc", "both"):
        with tempfile.TemporaryDirectory(prefix="kb-store-calls-") as tmp:
            demo = Demo(Path(tmp))
            try:
                oidc_publisher_login(demo, DEMO_OIDC_SCHOOL_ID, USERS[0])
                CALLS.clear()
                oidc_publisher_login(demo, DEMO_OIDC_SCHOOL_ID, USERS[1])
                report("oidc->oidc, fresh browser, with the notice")
            finally:
                demo.close()


if __name__ == "__main__":
    main()
