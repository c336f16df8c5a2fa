"""`ketenbroker serve`: the broker under gunicorn with two workers on a free loopback port,
answering /healthz, /readyz and /metrics, with the metrics of both workers added up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from broker.cli.instance import init_instance
from broker.registry import migrate
from broker.web.key_metrics import CERTIFICATE_EXPIRES as CERT_EXPIRES
from tests.flows.test_operations_endpoints import sample
from tests.support.live import free_ports
from tests.support.redis_topologies import REDIS_SERVER, RedisProcesses

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not installed"),
]
REQUESTS = 40
HINT = "login_hint=99XX00&student=sanne.jansen"


def _workers_with(metrics_dir: Path, kind: str) -> set[str]:
    """The pids that wrote `kind` files (counter, histogram) into the shared metrics folder."""
    return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob(f"{kind}_*.db")}


def _metrics_after_restart(url: str, seconds: float = 90) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = requests.get(f"{url}/metrics", timeout=5)
            if response.status_code == 200:
                return response.text
        except (requests.ConnectionError, requests.Timeout):
            pass
        assert time.monotonic() < deadline, "no worker answered after the kill"
        time.sleep(0.2)


def _wait_for_both_workers(metrics_dir: Path, seconds: float = 90) -> None:
    # Each worker makes its histogram file when it builds the app: then it accepts requests.
    deadline = time.monotonic() + seconds
    while len(_workers_with(metrics_dir, "histogram")) < 2:
        assert time.monotonic() < deadline, "the second worker did not boot"
        time.sleep(0.2)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    servers = RedisProcesses(tmp_path / "redis")
    port = free_ports(1)
    servers.start(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        servers.stop_all()


def _wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 90
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(encoding="utf-8")[-2000:]
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    raise AssertionError("gunicorn did not answer within a minute")


def test_serve_runs_two_workers_that_answer_and_count_together(
    tmp_path: Path, redis_url: str
) -> None:
    config = init_instance(tmp_path / "broker", "http://127.0.0.1:8000", "b.example", "Test")
    text = config.read_text(encoding="utf-8").replace('url = "memory://"', f'url = "{redis_url}"')
    config.write_text(text, encoding="utf-8")
    registry = tmp_path / "broker" / "registry.sqlite3"
    migrate(f"sqlite:///{registry}")
    port = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "metrics"
    environment = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    environment.pop("KETENBROKER_CONFIG", None)
    log = tmp_path / "gunicorn.log"
    ketenbroker = str(Path(sys.executable).parent / "ketenbroker")
    command = [ketenbroker, "serve", "--config", str(config), "--bind", f"127.0.0.1:{port}"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--workers", "2"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, process, log)
        _wait_for_both_workers(metrics_dir)
        for _ in range(4):
            assert requests.get(f"{url}/readyz", timeout=30).text == "ready\n"

        def refused(_: int) -> int:
            # A fresh connection each time, so both workers take their share.
            with requests.Session() as session:
                return session.get(f"{url}/saml/idp/sso", timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(refused, range(REQUESTS))) == {400}
        counters = _workers_with(metrics_dir, "counter")
        assert counters

        # A malformed request line (a student's login_hint in its query): gunicorn refuses it,
        # and its error log keeps the event and the error's class, not the line or the address.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(f"GET /saml/idp/sso?{HINT}\r\nHost: x\r\n\r\n".encode())
            assert raw.recv(4096).startswith(b"HTTP/1.1 400")

        # Kill every worker that counted: whoever answers /metrics now (the other worker or one
        # gunicorn started in their place) counted nothing itself, and must still show it all.
        for pid in counters:
            os.kill(int(pid), signal.SIGKILL)
        text = _metrics_after_restart(url)
        counted = sample(
            text, "ketenbroker_logins_total", pairing="saml_unknown", outcome="missing_request"
        )
        assert counted == REQUESTS
        assert sample(text, "ketenbroker_login_step_seconds_count", step="saml_request") == REQUESTS
        # The key gauges come from the worker that answers, once: not added up over workers.
        (expiry,) = [f for f in text_string_to_metric_families(text) if f.name == CERT_EXPIRES]
        assert len(expiry.samples) == 1 and expiry.samples[0].value > 365 * 86400
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    written = log.read_text(encoding="utf-8")
    assert "Invalid request: InvalidRequestLine" in written, written[-3000:]
    assert HINT not in written and "ip=" not in written
