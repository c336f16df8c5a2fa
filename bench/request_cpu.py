"""The broker's own CPU per request, through gunicorn, one browser at a time.

Usage: python bench/request_cpu.py [--logins 100] [--pairing saml->saml ...] [--returning]
       [--broker-src CHECKOUT] [--compare OTHER_CHECKOUT] [--rate-limits]
       [--registry-url postgresql+psycopg://...] [--accept-language "nl-NL,nl;q=0.9,en;q=0.8"]
       [--split]

Starts the same federation as throughput.py (gunicorn with the production configuration, the
peers in their own processes, login state in Redis), then plays one browser at a time and reads
the CPU time of every broker process (gunicorn master and workers, every thread) from
/proc/<pid>/task/*/schedstat (nanoseconds, not 10 ms ticks) before and after each request to
the broker. With one request in flight, the difference is that request's CPU in the broker:
gunicorn's HTTP handling, Flask, the login step, the Redis and SQL client work. It prints, per
request kind, the median and mean CPU, and `GET /healthz` for comparison: what any request costs
before the broker does anything. `--accept-language` sends a browser's language header with
every request (without it the broker answers in Dutch without parsing one). `--split` adds the
CPU inside each request's handler and the rest, the server's own (bench/handler_cpu_conf.py).

The browser's requests to the peers are metered the same way: while the browser waits on the
publisher's OIDC callback, the relying party calls the broker's token endpoint and userinfo
server to server, and that CPU is the broker's share of the login too. A peer request kind whose
mean is at least PEER_FLOOR_MS appears as its own row (`publisher GET /callback (token,
userinfo)`) and counts in the login's sum; the others (the broker idle while a page of the
school or the publisher is served) are left out of both, so the SAML→SAML table means what it
did before and the OIDC→OIDC table sums to the whole login.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from login import USERS
from oidc_login import free_port_run
from throughput import (
    PAIRINGS,
    Demo,
    HttpClient,
    HttpResponse,
    Proc,
    notice_once,
    prepare,
    start,
)

from broker.cli.demo import OIDC_SCHOOL_PORT_OFFSET
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_PORT_OFFSET

VARIABLE = re.compile(r"/[0-9A-Za-z_-]{16,}")  # ids in paths: /notice/<id>, /logout/<run>
# A browser request to a peer during which the broker spends at least this much CPU on average
# has work of the broker behind it (server-to-server calls); below it is the idle broker's noise.
PEER_FLOOR_MS = 0.1
PEER_ROLES = {1: "school", 2: "publisher", OIDC_SCHOOL_PORT_OFFSET: "school"}
PEER_ROLES[OIDC_PUBLISHER_PORT_OFFSET] = "publisher"
SETTLE_POLLS = 30  # at most ~30 ms more, in 1 ms steps
# What the broker does during a peer's request, for the row's name.
SERVER_TO_SERVER = {"publisher GET /callback": "token, userinfo"}


def on_cpu_ns(pids: list[int]) -> int:
    """Every thread's: /proc/<pid>/schedstat is the main thread's only, and a gthread worker
    serves requests on its pool threads."""
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
                total += int((task / "schedstat").read_text().split()[0])
    return total


def settled_cpu_ns(pids: list[int]) -> int:
    """The broker's CPU once it stops rising. The worker may still be finishing the response
    after the client has it (closing or keeping the connection, its metrics): on a busy machine
    that took longer than a fixed 2 ms wait, and landed on the next request, a peer's."""
    time.sleep(0.002)
    last = on_cpu_ns(pids)
    for _ in range(SETTLE_POLLS):
        time.sleep(0.001)
        now = on_cpu_ns(pids)
        if now == last:
            break
        last = now
    return last


class MeteredClient(HttpClient):
    """One origin: the broker's CPU during each request goes into `spent`, by request kind
    (`GET /path` for the broker's own origin, `publisher GET /path` for a peer's)."""

    def __init__(
        self,
        origin: str,
        broker: Proc,
        spent: dict[str, list[float]],
        role: str = "",
        log: HandlerLog | None = None,
        handled: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__(origin)
        self.broker = broker
        self.spent = spent
        self.prefix = f"{role} " if role else ""
        self.log = log
        self.handled = handled

    def open(self, url: str, method: str = "GET", **kwargs: Any) -> HttpResponse:
        pids = self.broker.pids()
        before = on_cpu_ns(pids)
        response = super().open(url, method, **kwargs)
        spent = (settled_cpu_ns(pids) - before) / 1e6
        kind = f"{self.prefix}{method} {VARIABLE.sub('/<id>', urlsplit(url).path)}"
        if kind in SERVER_TO_SERVER:
            kind = f"{kind} ({SERVER_TO_SERVER[kind]})"
        self.spent[kind].append(spent)
        if self.log is not None and self.handled is not None:
            self.handled[kind].append(self.log.take())
        return response


class HandlerLog:
    """`--split`: the CPU (ms) the broker's handlers logged (bench/handler_cpu_conf.py) since
    the last request. Server-to-server requests made during a browser's request (the relying
    party's token and userinfo calls) count for that request, as they do in the /proc figure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read = 0
        path.touch()

    def take(self) -> float:
        with open(self.path, "rb") as log:
            log.seek(self.read)
            lines = log.read().splitlines()
        self.read += sum(len(line) + 1 for line in lines)
        return sum(int(line) for line in lines) / 1e6


def peer_role(demo: Demo, origin: str) -> str:
    return PEER_ROLES[(urlsplit(origin).port or 80) - demo.port]


class Federation:
    """One demo federation with its broker under gunicorn, and the CPU its requests took."""

    def __init__(self, args: argparse.Namespace, broker_src: Path | None, redis_url: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="kb-bench-requests-"))
        self.procs: list[Proc] = []
        # Per pairing: per request kind (the broker's origin and the peers'), CPU ms.
        self.spent: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.health_spent: dict[str, list[float]] = defaultdict(list)
        # --split: the CPU inside the handlers, per pairing and request kind, as `spent`.
        self.log = HandlerLog(self.directory / "handler-cpu.log") if args.split else None
        self.handled: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.demo = prepare(
            self.directory, free_port_run(7), redis_url, args.registry_url, args.rate_limits
        )
        if args.returning:
            notice_once(self.directory)
            self.demo.returning = True
        self.procs = start(self.demo, args.workers, broker_src, self.log.path if self.log else None)

    def login(self, pairing: str, user: str, metered: bool) -> None:
        clients: dict[str, Any] = {origin: HttpClient(origin) for origin in self.demo.origins}
        if metered:
            broker = self.procs[0]
            clients = {
                origin: MeteredClient(
                    origin,
                    broker,
                    self.spent[pairing],
                    "" if origin == self.demo.broker else peer_role(self.demo, origin),
                    self.log,
                    self.handled[pairing],
                )
                for origin in self.demo.origins
            }
        PAIRINGS[pairing](self.demo, clients, user)

    def health(self) -> None:
        MeteredClient(
            self.demo.broker, self.procs[0], self.health_spent, "", self.log, self.handled[""]
        ).open(f"{self.demo.broker}/healthz")

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def other_database(args: argparse.Namespace) -> str:
    """The second federation's Redis URL: the first's with the next database number, so the
    two brokers never share an epoch or a generation key."""
    parts = urlsplit(args.redis_url)
    path = parts.path.strip("/") or "0"
    if parts.query or not path.isdigit():
        raise SystemExit("--compare needs a --redis-url of the form redis://host:port/N")
    return urlunsplit(parts._replace(path=f"/{int(path) + 1}"))


def report(
    title: str,
    spent: dict[str, list[float]],
    logins: int,
    handled: dict[str, list[float]] | None = None,
) -> float:
    """Prints the table; returns the broker's CPU per login: its own requests and the peer
    requests with work of the broker behind them. With `handled` (--split), two more columns:
    the mean CPU inside the handler, and the rest (the server's own work around it)."""
    print(f"\n{title}")
    split = f" {'handler':>8} {'server':>8}" if handled is not None else ""
    print(f"{'request':44} {'count':>6} {'median':>8} {'mean':>8} {'per login':>10}{split}")
    in_handlers = 0.0
    per_login = 0.0
    idle: list[float] = []  # peer requests with no work of the broker behind them
    for kind, values in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
        if not kind.startswith(("GET ", "POST ")) and statistics.fmean(values) < PEER_FLOOR_MS:
            idle.extend(values)
            continue
        share = sum(values) / logins
        columns = ""
        if handled is not None:
            inside = statistics.fmean(handled[kind])
            columns = f" {inside:8.2f} {statistics.fmean(values) - inside:8.2f}"
            if kind != "GET /healthz":
                in_handlers += sum(handled[kind]) / logins
        if kind != "GET /healthz":
            per_login += share
        print(
            f"{kind:44} {len(values):6} {statistics.median(values):8.2f} "
            f"{statistics.fmean(values):8.2f} {share:10.2f}{columns}"
        )
    if handled is not None:
        split = f" {in_handlers:8.2f} {per_login - in_handlers:8.2f}"
    print(f"{'login, all requests':44} {'':6} {'':8} {'':8} {per_login:10.2f}{split}")
    if idle:
        print(
            f"(not counted: {len(idle)} browser requests to the peers, the broker idle: "
            f"mean {statistics.fmean(idle):.3f} ms)"
        )
    return per_login


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument(
        "--pairing",
        choices=tuple(PAIRINGS),
        action="append",
        help="saml->saml (default) or oidc->oidc; given twice, logins of the two alternate one "
        "by one on the same broker (interleaved), so their per-login figures compare",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--registry-url", help="registry database (default SQLite in the folder)")
    parser.add_argument(
        "--returning",
        action="store_true",
        help="returning students: no information notice, the school remembered (throughput.py)",
    )
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="the production rate limiter on, with limits it cannot reach (counted in Redis)",
    )
    parser.add_argument("--broker-src", type=Path, help="run the broker from this checkout")
    parser.add_argument(
        "--compare",
        type=Path,
        help="also run the broker from this checkout, logins interleaved one by one with the "
        "first (A/B): a machine whose speed drifts slows both alike",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="also the CPU inside each request's handler (bench/handler_cpu_conf.py) and the "
        "rest, the server's own work around it",
    )
    parser.add_argument(
        "--accept-language",
        help="send this Accept-Language header with every request, as a browser does",
    )
    args = parser.parse_args()
    pairings: list[str] = list(dict.fromkeys(args.pairing or ["saml->saml"]))
    if args.accept_language:
        HttpClient.default_headers = {"Accept-Language": args.accept_language}
    if args.compare and args.registry_url:
        # Two demo federations would register themselves in the one database.
        parser.error("--compare runs each broker on its own SQLite registry: no --registry-url")

    runs: list[tuple[str, Federation]] = []
    try:
        runs.append(
            (
                str(args.broker_src or "this checkout"),
                Federation(args, args.broker_src, args.redis_url),
            )
        )
        if args.compare:
            runs.append((str(args.compare), Federation(args, args.compare, other_database(args))))
        for n in range(args.warmup + args.logins):
            # ABBA: neither broker (nor pairing) always goes first (a warm cache, a core just
            # woken up).
            order = [(f, p) for _, f in runs for p in pairings]
            for federation, pairing in order if n % 2 == 0 else order[::-1]:
                federation.login(pairing, USERS[n % len(USERS)], n >= args.warmup)
        for _ in range(args.logins):
            for _, federation in runs:
                federation.health()
    finally:
        for _, federation in runs:
            federation.stop()

    totals: dict[tuple[str, str], float] = {}
    for name, federation in runs:
        for pairing in pairings:
            totals[(name, pairing)] = report(
                f"broker CPU per request, ms ({pairing}, {args.logins} logins, one at a time; "
                f"broker: {name})",
                {**federation.spent[pairing], **federation.health_spent},
                args.logins,
                {**federation.handled[pairing], **federation.handled[""]}
                if federation.log
                else None,
            )
    for pairing in pairings if len(runs) == 2 else []:
        first, second = totals[(runs[0][0], pairing)], totals[(runs[1][0], pairing)]
        print(
            f"\nA/B ({pairing}): {runs[0][0]} {first:.2f} ms per login against {runs[1][0]} "
            f"{second:.2f} ms ({100 * (first / max(second, 1e-9) - 1):+.1f} %)"
        )
    for name, _ in runs if len(pairings) == 2 else []:
        first, second = totals[(name, pairings[0])], totals[(name, pairings[1])]
        print(
            f"\n{pairings[0]} against {pairings[1]} (broker: {name}): {first:.2f} against "
            f"{second:.2f} ms per login ({100 * (first / max(second, 1e-9) - 1):+.1f} %)"
        )


if __name__ == "__main__":
    main()
