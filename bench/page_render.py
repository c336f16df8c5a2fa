"""CPU of the three pages of a first SAML→SAML login, rendered in process: the discovery page
(`discovery_page`, in the response to `GET /saml/idp/sso`), the information notice
(`notice_response`, in the response to `POST /saml/sp/acs`) and the auto-POST page to the
publisher (`autopost`, in the response to `POST /notice/<id>`).

Usage: python bench/page_render.py [--renders 2000] [--rounds 4] [--compare DIR] [--schools N]
                                   [--aliases K]
       python bench/page_render.py --dump OUT [--tree DIR]

Each page is made by the broker's own function, as its route calls it, inside a fresh request
context of that route (so what a page looks up once per request is looked up again each time),
with a Dutch and an English browser's Accept-Language alternately. Only the call is timed
(`time.thread_time_ns`), not pushing the context; a round's figure is its median render. With
`--compare DIR` (a tree with `broker/` in it, e.g. from `git archive <commit> broker | tar -x -C
DIR`) every round runs both trees, each in a process of its own, in the order ABBA: the
machine's speed drifts within minutes, and both meet the drift. Prints µs per page: the median
of the rounds, and every round.

`--schools N` registers N more schools first (OpenID Connect ones, each on a host of its own:
eight common names in forty towns, so most names are many schools'), with their towns where the
tree knows towns, and adds two searches: `discovery_name` ("gymnasium": more matches than a page
shows) and `discovery_town` ("gymnasium leiden": a tree without towns finds none). `--aliases K`
gives every K-th of them a former name (where the tree knows aliases) and adds `discovery_alias`
("het baken": a former name of many schools, each shown with "also known as"; a tree without
aliases finds none).

`--dump OUT` writes instead every case's response (headers, body) under several language rules
(Accept-Language, `?lang=`, `ui_locales`), with names and fields that must be escaped and at a
mount point, one file each: `diff -r` two trees' dumps (`--tree DIR`: the broker from DIR, not
this checkout) to see that a change kept every page.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tree_rounds import alternating, child_output, run_child, trees

if TYPE_CHECKING:
    from flask import Flask

PORT = 8400  # only in URLs: nothing listens
# The size of a signed SAMLResponse with the demo's attributes, base64: the auto-POST page escapes it.
SAML_RESPONSE_CHARS = 9000


# Browsers' headers: a Dutch and an English one, alternately.
ACCEPT_LANGUAGES = ("nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7", "en-GB,en;q=0.9")
Call = tuple[str, str, Callable[[], Any]]
# --schools: names many schools share, and the towns that tell them apart.
NAMESAKES = (
    "Stedelijk Gymnasium",
    "Christelijk Lyceum",
    "Het College",
    "Openbare Basisschool De Linde",
    "Sint-Bonifatiuscollege",
    "Montessori Lyceum",
    "Scholengemeenschap Noord",
    "Da Vinci College",
)
TOWNS = (
    "Leiden", "Utrecht", "Amsterdam", "Rotterdam", "Den Haag", "Eindhoven", "Groningen",
    "Tilburg", "Almere", "Breda", "Nijmegen", "Apeldoorn", "Haarlem", "Arnhem", "Enschede",
    "Amersfoort", "Zaanstad", "'s-Hertogenbosch", "Haarlemmermeer", "Zwolle", "Zoetermeer",
    "Leeuwarden", "Maastricht", "Dordrecht", "Ede", "Alphen aan den Rijn", "Westland", "Alkmaar",
    "Emmen", "Delft", "Venlo", "Deventer", "Sittard-Geleen", "Helmond", "Oss", "Amstelveen",
    "Hilversum", "Sint-Michielsgestel", "Heerlen", "Súdwest-Fryslân",
)  # fmt: skip
# --aliases: former names many merged schools share.
FORMER_NAMES = ("Het Baken", "De Regenboog", "Het Mozaïek", "Locatie Zuid")


def add_schools(app: Flask, count: int, alias_every: int = 0) -> None:
    """`count` OpenID Connect schools in one import (towns, and a former name for every
    `alias_every`-th, only where the tree has them)."""
    from dataclasses import fields

    from broker.core.model import OidcUpstream, School
    from broker.registry.snapshot import SchoolEntry, Snapshot
    from broker.web.wiring import broker

    known = {f.name for f in fields(School)}
    has_towns, has_aliases = "town" in known, "aliases" in known and alias_every > 0
    entries = []
    for n in range(count):
        issuer = f"https://login.school{n}.example"
        # Only the fields the tree's School has.
        known_here: dict[str, object] = {}
        if has_towns:
            known_here["town"] = TOWNS[(n // len(NAMESAKES)) % len(TOWNS)]
        if has_aliases and n % alias_every == 0:
            known_here["aliases"] = (FORMER_NAMES[(n // alias_every) % len(FORMER_NAMES)],)
        school = School(
            f"B{n:05d}",
            NAMESAKES[n % len(NAMESAKES)],
            issuer,
            subject_attribute="sub",
            oidc=OidcUpstream(issuer, f"client-{n}", "secret"),
            **known_here,  # type: ignore[arg-type]
        )
        entries.append(SchoolEntry(school, ""))
    with app.app_context():
        broker().registry.import_snapshot(Snapshot(schools=tuple(entries)), "bench")


def pages(
    tmp: Path, *, hostile: bool = False, schools: int = 0, aliases: int = 0
) -> tuple[Flask, dict[str, Call]]:
    """The demo broker and, per case, (path, method, the broker's call that makes the page).
    `hostile`: names and fields that must be escaped, and more cases (for `--dump`);
    `schools`: that many more schools, and two searches among them (three with `aliases`:
    every `aliases`-th school has a former name)."""
    from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo
    from broker.core.model import UpstreamIdentity
    from broker.login.login_model import LoginRecord, LoginRequest
    from broker.login.post_message import PostMessage
    from broker.login.receipting import PendingRelease
    from broker.web.discovery import discovery_page
    from broker.web.notice import notice_response
    from broker.web.service_answers import autopost
    from broker.web.wiring import broker

    settings, apps = prepare_demo(tmp, PORT)
    app = apps[settings.base_url]
    if schools:
        add_schools(app, schools, aliases)
    with app.app_context():
        service = next(s for s in broker().view.services() if s.oidc is None)
    record = LoginRecord("L" * 43, LoginRequest(service.id), 1.0)
    identity = UpstreamIdentity(DEMO_SCHOOL_ID, "subject")
    attributes = ("given_name", "family_name", "email", "groups")
    response = "PHNhbWxwOlJlc3BvbnNl" * (SAML_RESPONSE_CHARS // 20)
    name = service.name
    if hostile:
        attributes += ("not_in_the_table",)
        response, name = "PHNh<&>\"'" * 10, 'Lees & "plank" <b>'
    pending = PendingRelease(record, identity, 1.0, None, "f" * 64, attributes)
    message = PostMessage(
        "http://127.0.0.1:8402/acs/post", {"SAMLResponse": response, "RelayState": "r&r"}
    )
    notice_id = "N" * 43
    calls: dict[str, Call] = {
        "discovery": ("/saml/idp/sso?SAMLRequest=x", "GET", lambda: discovery_page(record)),
        "notice": ("/saml/sp/acs", "POST", lambda: notice_response(pending, notice_id)),
        "autopost": (f"/notice/{notice_id}", "POST", lambda: autopost(message, name)),
    }
    if schools:
        searches = [("discovery_name", "gymnasium"), ("discovery_town", "gymnasium leiden")]
        if aliases:
            searches.append(("discovery_alias", "het baken"))
        for case, query in searches:
            calls[case] = (
                f"/discovery?login=x&q={query.replace(' ', '+')}",
                "GET",
                lambda query=query: discovery_page(record, query),
            )
    if hostile:
        calls["discovery_query"] = (
            "/discovery?login=x&q=%3Cb%3E",
            "GET",
            lambda: discovery_page(record, '"><b>Demo'),
        )
        calls["discovery_ui_locales"] = (
            "/saml/idp/sso?SAMLRequest=x",
            "GET",
            lambda: discovery_page(record, language="en"),
        )
        calls["notice_get"] = (f"/notice/{notice_id}", "GET", calls["notice"][2])
    return app, calls


def measure(renders: int, schools: int = 0, aliases: int = 0) -> dict[str, float]:
    """µs per page in this process (the broker imported from sys.path)."""
    with tempfile.TemporaryDirectory(prefix="kb-bench-pages-") as tmp:
        app, calls = pages(Path(tmp), schools=schools, aliases=aliases)
        results: dict[str, float] = {}
        only = os.environ.get("KB_BENCH_PAGE")  # one page only (for a profiler)
        for page, (path, method, call) in calls.items():
            if only and page != only:
                continue
            for language in ACCEPT_LANGUAGES * 2:  # warm: templates compiled, catalogues read
                with app.test_request_context(
                    path, method=method, headers={"Accept-Language": language}
                ):
                    call()
            spent: list[float] = []
            for i in range(renders):
                language = ACCEPT_LANGUAGES[i % 2]
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


EXPIRES = re.compile(r"Expires=[^;]*; ")


def dump(out: Path) -> int:
    """Every case's response (headers but the clock's, and body) under every language rule,
    one file each, to compare two trees with `diff -r`."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    with tempfile.TemporaryDirectory(prefix="kb-bench-pages-") as tmp:
        app, calls = pages(Path(tmp), hostile=True)
        for header in (*ACCEPT_LANGUAGES, "nl", "en", "de", ""):
            for query in ("", "lang=en", "lang=nl", "lang=xx"):
                for page, (path, method, call) in calls.items():
                    url = path + ("&" if "?" in path else "?") + query if query else path
                    # The notice at another mount point too: its links are built per mount.
                    base = (
                        "http://localhost/mount/" if page == "notice_get" else "http://localhost/"
                    )
                    with app.test_request_context(
                        url, method=method, headers={"Accept-Language": header}, base_url=base
                    ):
                        response = app.process_response(call())
                        headers = sorted(
                            (k, EXPIRES.sub("", v)) for k, v in response.headers.items()
                        )
                        text = "\n".join(f"{k}: {v}" for k, v in headers)
                        name = f"{page}-{header.split(',')[0] or 'none'}-{query or 'none'}.txt"
                        (out / name).write_text(f"{text}\n\n{response.get_data(as_text=True)}")
                        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--compare", type=Path, help="the other tree (its broker/ inside)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--dump",
        type=Path,
        help="write every case's response into this folder instead (diff -r two trees' dumps)",
    )
    parser.add_argument("--tree", type=Path, help="with --dump: the broker from this tree")
    parser.add_argument(
        "--schools", type=int, default=0, help="register this many more schools first"
    )
    parser.add_argument(
        "--aliases", type=int, default=0, help="with --schools: every K-th has a former name"
    )
    args = parser.parse_args()
    if args.dump:
        # Before the broker is first imported: this checkout's, or --tree's (not the venv's).
        sys.path.insert(0, str(args.tree or Path(__file__).resolve().parent.parent))
        written = dump(args.dump)
        import broker

        print(f"{written} responses in {args.dump} (broker from {Path(broker.__file__).parent})")
        return
    if args.child:
        print(child_output(measure(args.renders, args.schools, args.aliases)))
        return
    named = trees(parser, args.compare)
    extra = ["--renders", str(args.renders), "--schools", str(args.schools)]
    extra += ["--aliases", str(args.aliases)]
    rounds = alternating(named, args.rounds, lambda tree: run_child(__file__, tree, extra))
    names = list(named)
    more = f", {args.schools} more schools" if args.schools else ""
    more += f", every {args.aliases}th with a former name" if args.schools and args.aliases else ""
    print(f"µs per page, {args.renders} renders per round, {args.rounds} rounds (ABBA){more}")
    for page in rounds[names[0]][0]:
        for name in names:
            values = [f[page] for f in rounds[name]]
            each = " ".join(f"{v:6.1f}" for v in values)
            print(f"{page:<14} {name:<7} median {statistics.median(values):6.1f}   [{each}]")


if __name__ == "__main__":
    main()
