"""Whole logins through gunicorn at concurrency 1, 2 and 4: latency, logins/s, CPU per login.

Usage: python bench/throughput.py [--quick] [--logins N] [--workers 4] [--broker-src DIR]

Builds a demo instance in a temporary folder (login state in Redis, registry in SQLite unless
--registry-url), then starts three kinds of process on 127.0.0.1 (free ports, loopback only):

- the broker: gunicorn `broker.web.app:create_app()` with N workers, under the production
  configuration `broker/cli/gunicorn_conf.py` (gthread, 4 threads, keep-alive; each worker
  warmed up before its first request, metrics in Prometheus multiprocess mode);
- the school (bench/peers.py school): the demo SAML IdP and OpenID provider;
- the publisher (bench/peers.py publisher): the demo SAML SP (pysaml2, checks every response
  fully) and OIDC relying party (authlib + joserfc, checks the ID token fully).

This process plays the browsers: one fresh browser (cookie jar) per login, `--concurrency`
threads at a time, over real HTTP. Pairings: SAML→SAML (Leesplank → broker → SAML school) and
OIDC→OIDC (Woordwijs → broker → OIDC school; the broker redeems the school's code server to
server). Every login must end at the publisher with a 64-hex pseudonym, or the run aborts.

Per run it reports median and p95 latency of a whole login, logins per second, and CPU per
login from /proc/<pid>/stat (utime + stime; gunicorn master and workers together for the broker,
the peers separately). The crypto floor (bench/crypto_floor.py) is measured in this process with
the broker's own in-process library. The last line is
`RESULT saml_saml_c4_logins_per_s=… broker_cpu_ms_per_login=… crypto_floor_ms=…`, where the CPU
figure is the broker's per SAML→SAML login at concurrency 4.

`--broker-src DIR` runs the broker (only the broker) from another checkout, for before/after
comparisons in one run of this script: the peers and this driver stay the same.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from bench_instance import bench_instance
from crypto_floor import Floor, measure_floor
from crypto_floor import report as floor_report
from login import HEX64, USERS, Browser, LoginFailed, forms_of, one_login, p95, shows_discovery
from oidc_login import free_port_run

from broker.cli.demo import (
    DEMO_OIDC_SCHOOL_ID,
    DEMO_SCHOOL_ID,
    OIDC_SCHOOL_PORT_OFFSET,
    prepare_demo,
)
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_PORT_OFFSET
from broker.cli.instance import CONFIG_NAME

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SUB = re.compile(r'<code id="sub">([0-9a-f]{64})</code>')
CONCURRENCY = (1, 2, 4)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 180.0  # a busy machine; --quick itself stays well below


# --- ports and processes ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads, live and ended), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        return [self.popen.pid, *children_of(self.popen.pid)]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def wait_listening(port: int, proc: Proc, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not listen on {port} within {START_TIMEOUT:.0f} s")


# --- the browser over real HTTP --------------------------------------------------------------


class HttpResponse:
    """What login.Browser reads of a response (the Flask test client's names)."""

    def __init__(self, raw: urllib3.BaseHTTPResponse) -> None:
        self.status_code = raw.status
        self.headers = raw.headers
        self.body = raw.data

    def get_data(self, as_text: bool = False) -> Any:
        return self.body.decode() if as_text else self.body


class HttpClient:
    """One origin over a kept-alive loopback connection pool. `localhost` origins are dialled
    at 127.0.0.1 (their servers listen there), with the original Host header."""

    # Sent with every request (request_cpu.py --accept-language: a browser's language header).
    default_headers: dict[str, str] = {}

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        self.host_header = parts.netloc
        self.pool = urllib3.HTTPConnectionPool("127.0.0.1", parts.port, maxsize=1, retries=False)

    def open(
        self,
        url: str,
        method: str = "GET",
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {"Host": self.host_header, **self.default_headers, **(headers or {})}
        if data is not None:
            raw = self.pool.request(
                method,
                path,
                fields=data,
                encode_multipart=False,
                headers=all_headers,
                redirect=False,
                timeout=30,
            )
        else:
            raw = self.pool.request(method, path, headers=all_headers, redirect=False, timeout=30)
        return HttpResponse(raw)


@dataclass
class Demo:
    directory: Path
    port: int
    redis_url: str
    # --returning: every browser is a returning student's (see `remembered`).
    returning: bool = False

    def remembered(self, school_id: str) -> tuple[str, str] | None:
        """A returning student's browser remembers its school at the broker (the cookie of an
        earlier day's login; no SSO session left), so the discovery page offers it first."""
        return (urlsplit(self.broker).hostname or "", school_id) if self.returning else None

    @property
    def broker(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origins(self) -> list[str]:
        peers = [1, 2, OIDC_SCHOOL_PORT_OFFSET, OIDC_PUBLISHER_PORT_OFFSET]
        return [self.broker, *(f"http://localhost:{self.port + p}" for p in peers)]

    @property
    def leesplank(self) -> str:
        return f"http://localhost:{self.port + 2}"

    @property
    def woordwijs(self) -> str:
        return f"http://localhost:{self.port + OIDC_PUBLISHER_PORT_OFFSET}"


def saml_saml(demo: Demo, clients: dict[str, Any], uid: str) -> str:
    return one_login(clients, demo.leesplank, uid, demo.remembered(DEMO_SCHOOL_ID))


def oidc_oidc(demo: Demo, clients: dict[str, Any], uid: str) -> str:
    browser = Browser(clients, demo.remembered(DEMO_OIDC_SCHOOL_ID))
    # A first login names the school (login_hint: no discovery page). A returning student's
    # platform does not know the school: the broker's page offers the remembered one, as on
    # the SAML→SAML path.
    hint = "" if demo.returning else f"?school={DEMO_OIDC_SCHOOL_ID}"
    url, page = browser.follow("GET", f"{demo.woordwijs}/login{hint}")
    if shows_discovery(page):
        url, page = browser.choose(url, page, DEMO_OIDC_SCHOOL_ID)
    url, page = browser.submit(url, page, ("uid", uid))  # the school's pick page → … → the RP
    if any("/notice/" in form.action for form in forms_of(page)):
        # A first visit in a session shows the notice (docs/receipts.md); the student continues.
        url, page = browser.submit(url, page)
    found = SUB.search(page)
    if not url.startswith(demo.woordwijs) or not found or not HEX64.fullmatch(found.group(1)):
        raise LoginFailed(f"OIDC login ended at {url} without a 64-hex sub\n{page[:1500]}")
    return found.group(1)


PAIRINGS: dict[str, Callable[[Demo, dict[str, Any], str], str]] = {
    "saml->saml": saml_saml,
    "oidc->oidc": oidc_oidc,
}


# --- runs ------------------------------------------------------------------------------------


@dataclass
class Run:
    pairing: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group
    subjects: set[str] = field(default_factory=set)

    @property
    def logins(self) -> int:
        return len(self.latencies)

    def cpu_ms_per_login(self, name: str) -> float:
        return self.cpu[name] * 1000 / self.logins


def run_logins(
    demo: Demo, procs: list[Proc], pairing: str, concurrency: int, logins: int, warmup: int
) -> Run:
    login = PAIRINGS[pairing]
    lock = threading.Lock()
    counter = iter(range(logins))
    run = Run(pairing, concurrency)
    errors: list[BaseException] = []

    warmed = threading.Barrier(concurrency + 1)  # every browser warmed up, and the driver
    go = threading.Event()

    def worker(index: int) -> None:
        clients = {origin: HttpClient(origin) for origin in demo.origins}
        try:
            for i in range(warmup):
                login(demo, clients, USERS[(index + i) % len(USERS)])
            warmed.wait()
            go.wait()
            while not errors:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                start = time.perf_counter()
                subject = login(demo, clients, USERS[n % len(USERS)])
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    run.latencies.append(elapsed)
                    run.subjects.add(subject)
        except threading.BrokenBarrierError:
            return
        except BaseException as error:
            errors.append(error)
            warmed.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    # The clock and the CPU counters start once every warm-up login is done.
    with contextlib.suppress(threading.BrokenBarrierError):
        warmed.wait()
    before = {p.name: p.cpu() for p in procs}
    start = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - start
    run.cpu = {p.name: p.cpu() - before[p.name] for p in procs}
    if errors:
        raise errors[0]
    if len(run.subjects) != min(logins, len(USERS)):
        raise LoginFailed(f"{pairing}: expected one pseudonym per user, got {len(run.subjects)}")
    return run


# --- setup -----------------------------------------------------------------------------------


def prepare(
    directory: Path, port: int, redis_url: str, registry_url: str | None, rate_limits: bool
) -> Demo:
    # The benchmark is one client address sending hundreds of logins a minute: no rate limits,
    # or (--rate-limits) the production limiter with limits it cannot reach, to measure its cost.
    bench_instance(
        directory,
        port,
        store_url=redis_url,
        registry_url=registry_url,
        rate_limits=rate_limits,
    )
    prepare_demo(directory, port)  # registers the demo federation; the processes reuse it
    return Demo(directory, port, redis_url)


def notice_once(directory: Path) -> None:
    """Every demo school shows the notice for every service on a student's first visit only."""
    from broker.config import load_settings
    from broker.registry import SqlRegistry

    settings = load_settings(directory / CONFIG_NAME)
    registry = SqlRegistry(settings.registry_url, seal=settings.secret_seal())
    try:
        book = registry.receipt_book(settings.receipts.keys)
        for school in registry.schools():
            for service in registry.services():
                book.set_notice_mode(school.id, service.id, "changes")
    finally:
        registry.close()


def start(
    demo: Demo, workers: int, broker_src: Path | None, handler_cpu_log: Path | None = None
) -> list[Proc]:
    """`handler_cpu_log`: run the broker under bench/handler_cpu_conf.py (the production
    configuration plus each request's CPU inside its handler, written to that file)."""
    env = dict(os.environ, KETENBROKER_CONFIG=str(demo.directory / CONFIG_NAME))
    python = sys.executable
    peers_env = dict(env, PYTHONPATH=os.pathsep.join([str(ROOT), str(BENCH)]))
    broker_env = dict(env, PYTHONPATH=str(broker_src or ROOT))
    config = "python:broker.cli.gunicorn_conf"
    if handler_cpu_log is not None:
        broker_env["PYTHONPATH"] += os.pathsep + str(BENCH)
        broker_env["KB_HANDLER_CPU_LOG"] = str(handler_cpu_log)
        config = "python:handler_cpu_conf"
    gunicorn = [
        python,
        "-m",
        "gunicorn",
        # The production configuration, worker class and threads included (gthread, 4 threads,
        # keep-alive: the client here keeps connections alive as browsers do; docs/performance.md,
        # "The fixed cost of every request"); the options below override bind and worker count.
        # Sync workers were used while a cold gthread worker could refuse concurrent first OIDC
        # logins; rp_discovery.py now lets them wait on the one fetch.
        "-c",
        config,
        "--bind",
        f"127.0.0.1:{demo.port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--chdir",
        str(broker_src or ROOT),
        "broker.web.app:create_app()",
    ]
    procs = [
        # cwd matters: `python -m` puts the working directory first on sys.path, before
        # PYTHONPATH, so the broker's checkout must be the working directory too.
        Proc("broker", subprocess.Popen(gunicorn, env=broker_env, cwd=broker_src or ROOT)),
        *(
            Proc(
                role,
                subprocess.Popen(
                    [python, str(BENCH / "peers.py"), str(demo.directory), str(demo.port), role],
                    env=peers_env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                ),
            )
            for role in ("school", "publisher")
        ),
    ]
    deadline = time.monotonic() + START_TIMEOUT
    ports = {"broker": [0], "school": [1, 5], "publisher": [2, 6]}
    try:
        for proc in procs:
            for offset in ports[proc.name]:
                wait_listening(demo.port + offset, proc, deadline)
        # Every gunicorn worker up (each builds the app on its own).
        while len(children_of(procs[0].popen.pid)) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn workers did not start")
            time.sleep(0.1)
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs


# --- report ----------------------------------------------------------------------------------


def table(runs: list[Run]) -> None:
    print(
        f"\n{'pairing':<11} {'conc':>4} {'logins':>6} {'median ms':>9} {'p95 ms':>8} "
        f"{'logins/s':>8} | CPU ms per login: {'broker':>6} {'school':>6} {'publisher':>9}"
    )
    for run in runs:
        print(
            f"{run.pairing:<11} {run.concurrency:>4} {run.logins:>6} "
            f"{statistics.median(run.latencies):>9.1f} {p95(run.latencies):>8.1f} "
            f"{run.logins / run.seconds:>8.1f} | {'':>17} "
            f"{run.cpu_ms_per_login('broker'):>6.1f} {run.cpu_ms_per_login('school'):>6.1f} "
            f"{run.cpu_ms_per_login('publisher'):>9.1f}"
        )


def broker_cpu(runs: list[Run], pairing: str) -> float:
    """The broker's CPU per login over every run of a pairing (more logins, less tick noise)."""
    chosen = [r for r in runs if r.pairing == pairing]
    return sum(r.cpu["broker"] for r in chosen) * 1000 / sum(r.logins for r in chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few logins: done within 60 s")
    parser.add_argument("--logins", type=int, help="logins per run (default 200, quick 16)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up logins per browser")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("KETENBROKER_BENCH_REDIS", "redis://127.0.0.1:6379/12"),
    )
    parser.add_argument("--registry-url", help="registry database (default SQLite in the folder)")
    parser.add_argument("--broker-src", type=Path, help="run the broker from this checkout")
    parser.add_argument("--floor-rounds", type=int, default=None)
    parser.add_argument("--pairing", choices=(*PAIRINGS, "both"), default="both")
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="keep the rate limiter on (limits too high to reach), to measure what it costs",
    )
    parser.add_argument(
        "--returning",
        action="store_true",
        help="returning students: schools show the notice only on a student's first visit "
        "(`changes` mode), and every browser remembers its school at the broker (the discovery "
        "page offers it first; the OIDC publisher names no school): after warm-up the "
        "measured logins are those of returning students, without the notice",
    )
    args = parser.parse_args()
    logins = args.logins or (16 if args.quick else 200)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    floor_rounds = args.floor_rounds or (50 if args.quick else 300)
    pairings = list(PAIRINGS) if args.pairing == "both" else [args.pairing]
    began = time.monotonic()

    floor: Floor = measure_floor(floor_rounds)
    print(floor_report(floor), flush=True)
    directory = Path(tempfile.mkdtemp(prefix="kb-bench-throughput-"))
    procs: list[Proc] = []
    runs: list[Run] = []
    try:
        demo = prepare(
            directory, free_port_run(7), args.redis_url, args.registry_url, args.rate_limits
        )
        if args.returning:
            notice_once(directory)
            demo.returning = True
        procs = start(demo, args.workers, args.broker_src)
        source = f" from {args.broker_src}" if args.broker_src else ""
        print(
            f"broker: gunicorn, {args.workers} gthread workers{source}; peers in 2 processes; "
            f"ready after {time.monotonic() - began:.1f} s",
            flush=True,
        )
        for pairing in pairings:
            for concurrency in CONCURRENCY:
                run = run_logins(demo, procs, pairing, concurrency, logins, warmup)
                runs.append(run)
                print(
                    f"  {pairing} c{concurrency}: {run.logins} logins in {run.seconds:.1f} s",
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(directory, ignore_errors=True)
    table(runs)
    print(
        "\nbroker CPU per login over all concurrencies: "
        + ", ".join(f"{p} {broker_cpu(runs, p):.1f} ms" for p in pairings)
        + f"; crypto floor {floor.login_ms:.2f} ms; total {time.monotonic() - began:.0f} s"
    )
    c4 = next((r for r in runs if r.pairing == "saml->saml" and r.concurrency == 4), None)
    if c4 is None:
        print("RESULT (saml->saml not measured)")
        return
    print(
        f"RESULT saml_saml_c4_logins_per_s={c4.logins / c4.seconds:.1f} "
        f"broker_cpu_ms_per_login={c4.cpu_ms_per_login('broker'):.1f} "
        f"crypto_floor_ms={floor.login_ms:.2f}"
    )


if __name__ == "__main__":
    main()
