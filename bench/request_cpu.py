"""The broker's own CPU per request, through gunicorn, one browser at a time.

Usage: python bench/request_cpu.py [--logins 100] [--pairing saml->saml] [--returning]
       [--broker-src CHECKOUT] [--compare OTHER_CHECKOUT] [--rate-limits]
       [--registry-url postgresql+psycopg://...] [--accept-language "nl-NL,nl;q=0.9,en;q=0.8"]

Starts the same federation as throughput.py (gunicorn with the production configuration, the
peers in their own processes, login state in Redis), then plays one browser at a time and reads
the CPU time of every broker process (gunicorn master and workers, every thread) from
/proc/<pid>/task/*/schedstat (nanoseconds, not 10 ms ticks) before and after each request to
the broker. With one request in flight, the difference is that request's CPU in the broker:
gunicorn's HTTP handling, Flask, the login step, the Redis and SQL client work. It prints, per
request kind, the median and mean CPU, and `GET /healthz` for comparison: what any request costs
before the broker does anything. `--accept-language` sends a browser's language header with
every request (without it the broker answers in Dutch without parsing one).
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
from throughput import PAIRINGS, HttpClient, HttpResponse, Proc, notice_once, prepare, start

VARIABLE = re.compile(r"/[0-9A-Za-z_-]{16,}")  # ids in paths: /notice/<id>, /logout/<run>


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


class MeteredClient(HttpClient):
    """The broker's origin: each request's broker CPU goes into `spent`, by request kind."""

    def __init__(self, origin: str, broker: Proc, spent: dict[str, list[float]]) -> None:
        super().__init__(origin)
        self.broker = broker
        self.spent = spent

    def open(self, url: str, method: str = "GET", **kwargs: Any) -> HttpResponse:
        pids = self.broker.pids()
        before = on_cpu_ns(pids)
        response = super().open(url, method, **kwargs)
        # The worker may still be closing the connection: give it a moment to finish.
        time.sleep(0.002)
        spent = (on_cpu_ns(pids) - before) / 1e6
        self.spent[f"{method} {VARIABLE.sub('/<id>', urlsplit(url).path)}"].append(spent)
        return response


class Federation:
    """One demo federation with its broker under gunicorn, and the CPU its requests took."""

    def __init__(self, args: argparse.Namespace, broker_src: Path | None, redis_url: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="kb-bench-requests-"))
        self.procs: list[Proc] = []
        self.spent: dict[str, list[float]] = defaultdict(list)
        self.demo = prepare(
            self.directory, free_port_run(7), redis_url, args.registry_url, args.rate_limits
        )
        if args.returning:
            notice_once(self.directory)
        self.procs = start(self.demo, args.workers, broker_src)

    def login(self, pairing: str, user: str, metered: bool) -> None:
        clients: dict[str, Any] = {origin: HttpClient(origin) for origin in self.demo.origins}
        if metered:
            clients[self.demo.broker] = MeteredClient(self.demo.broker, self.procs[0], self.spent)
        PAIRINGS[pairing](self.demo, clients, user)

    def health(self) -> None:
        MeteredClient(self.demo.broker, self.procs[0], self.spent).open(
            f"{self.demo.broker}/healthz"
        )

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


def report(title: str, spent: dict[str, list[float]], logins: int) -> float:
    print(f"\n{title}")
    print(f"{'request':32} {'count':>6} {'median':>8} {'mean':>8} {'per login':>10}")
    per_login = 0.0
    for kind, values in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
        share = sum(values) / logins
        if kind != "GET /healthz":
            per_login += share
        print(
            f"{kind:32} {len(values):6} {statistics.median(values):8.2f} "
            f"{statistics.fmean(values):8.2f} {share:10.2f}"
        )
    print(f"{'login, all requests':32} {'':6} {'':8} {'':8} {per_login:10.2f}")
    return per_login


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--pairing", choices=tuple(PAIRINGS), default="saml->saml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--registry-url", help="registry database (default SQLite in the folder)")
    parser.add_argument("--returning", action="store_true", help="no information notice")
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
        "--accept-language",
        help="send this Accept-Language header with every request, as a browser does",
    )
    args = parser.parse_args()
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
            # ABBA: neither broker always goes first (a warm cache, a core just woken up).
            for _, federation in runs if n % 2 == 0 else runs[::-1]:
                federation.login(args.pairing, USERS[n % len(USERS)], n >= args.warmup)
        for _ in range(args.logins):
            for _, federation in runs:
                federation.health()
    finally:
        for _, federation in runs:
            federation.stop()

    totals = [
        report(
            f"broker CPU per request, ms ({args.pairing}, {args.logins} logins, one at a time; "
            f"broker: {name})",
            federation.spent,
            args.logins,
        )
        for name, federation in runs
    ]
    if len(totals) == 2:
        print(
            f"\nA/B: {runs[0][0]} {totals[0]:.2f} ms per login against {runs[1][0]} "
            f"{totals[1]:.2f} ms ({100 * (totals[0] / max(totals[1], 1e-9) - 1):+.1f} %)"
        )


if __name__ == "__main__":
    main()
