"""CPU of the three pages of a first SAML→SAML login, rendered in process: the discovery page
(`discovery_page`, in the response to `GET /saml/idp/sso`), the information notice
(`notice_response`, in the response to `POST /saml/sp/acs`) and the auto-POST page to the
publisher (`autopost`, in the response to `POST /notice/<id>`).

Usage: python bench/page_render.py [--renders 2000] [--rounds 4] [--compare DIR]

Each page is made by the broker's own function, as its route calls it, inside a fresh request
context of that route (so what a page looks up once per request is looked up again each time),
alternating Dutch and English (Accept-Language). Only the call is timed (`time.thread_time_ns`),
not pushing the context; a round's figure is its median render. With `--compare DIR` (a checkout's `broker` folder's parent, e.g. from
`git archive <commit> broker | tar -x -C DIR`) every round runs both trees, each in a process of
its own, in the order ABBA: the machine's speed drifts within minutes, and both meet the drift.
Prints µs per page: median of the rounds, and every round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PORT = 8400  # only in URLs: nothing listens
PAGES = ("discovery", "notice", "autopost")
# The size of a signed SAMLResponse with the demo's attributes, base64: the auto-POST page escapes it.
SAML_RESPONSE_CHARS = 9000


def measure(renders: int) -> dict[str, float]:
    """µs per page in this process (the broker imported from sys.path)."""
    from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo
    from broker.core.model import UpstreamIdentity
    from broker.login.flow import LoginRecord, LoginRequest
    from broker.login.receipting import PendingRelease
    from broker.saml.front import PostMessage
    from broker.web.discovery import discovery_page
    from broker.web.login_steps import autopost, broker
    from broker.web.notice import notice_response

    with tempfile.TemporaryDirectory(prefix="kb-bench-pages-") as tmp:
        settings, apps = prepare_demo(Path(tmp), PORT)
        app = apps[settings.base_url]
        with app.app_context():
            view = broker().view
            service = next(s for s in view.services() if s.oidc is None)
            school = view.school(DEMO_SCHOOL_ID)
            assert school is not None
        record = LoginRecord("L" * 43, LoginRequest(service.id), time.time())
        identity = UpstreamIdentity(DEMO_SCHOOL_ID, "subject")
        attributes = tuple(n for n in ("given_name", "family_name", "email", "groups"))
        pending = PendingRelease(record, identity, time.time(), None, "f" * 64, attributes)
        message = PostMessage(
            "http://127.0.0.1:8402/acs/post",
            {
                "SAMLResponse": "PHNhbWxwOlJlc3BvbnNl" * (SAML_RESPONSE_CHARS // 20),
                "RelayState": "r" * 40,
            },
        )
        calls: dict[str, tuple[str, str, Callable[[], object]]] = {
            "discovery": ("/saml/idp/sso?SAMLRequest=x", "GET", lambda: discovery_page(record)),
            "notice": ("/saml/sp/acs", "POST", lambda: notice_response(pending, "N" * 43)),
            "autopost": ("/notice/" + "N" * 43, "POST", lambda: autopost(message, service.name)),
        }
        results: dict[str, float] = {}
        only = os.environ.get("KB_BENCH_PAGE")  # one page only (for a profiler)
        for page, (path, method, call) in calls.items():
            if only and page != only:
                continue
            for language in ("nl", "en", "nl"):  # warm: templates compiled, catalogues read
                with app.test_request_context(
                    path, method=method, headers={"Accept-Language": language}
                ):
                    call()
            spent: list[float] = []
            for i in range(renders):
                language = ("nl", "en")[i % 2]
                with app.test_request_context(
                    path, method=method, headers={"Accept-Language": language}
                ):
                    start = time.thread_time_ns()
                    call()
                    spent.append(time.thread_time_ns() - start)
            # The median render: a render the machine interrupted (another job, a page fault)
            # does not move it, as it would move a sum.
            results[page] = statistics.median(spent) / 1000
        return results


def child(tree: Path | None, renders: int) -> dict[str, float]:
    env = dict(os.environ)
    here = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(tree or here)
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--renders", str(renders)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tree or here,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--compare", type=Path, help="the other tree (its broker/ inside)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.renders)))
        return
    trees: dict[str, Path | None] = {"this": None}
    if args.compare is not None:
        if not (args.compare / "broker").is_dir():
            parser.error(f"--compare: no broker/ in {args.compare}")
        trees = {"before": args.compare, "this": None}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    names = list(trees)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            rounds[name].append(child(trees[name], args.renders))
    print(f"µs per page, {args.renders} renders per round, {args.rounds} rounds (ABBA)")
    for page in PAGES:
        for name in names:
            values = [f[page] for f in rounds[name]]
            each = " ".join(f"{v:6.1f}" for v in values)
            print(f"{page:<10} {name:<7} median {statistics.median(values):6.1f}   [{each}]")


if __name__ == "__main__":
    main()
