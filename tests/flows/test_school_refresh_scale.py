"""`ketenbroker metadata refresh` for a federation of many schools given by URL, run as the
operator's timer runs it against a server on 127.0.0.1: the downloads run 8 at a time
(url_refresh.py `FETCHES_AT_ONCE`), so school hosts that hang cost about the fetch's deadline
x ceil(hanging / 8), not the deadline each; the others are refreshed, a board's IdP shared by
several schools is fetched once, and the output is in school id order. Every outcome is kept
with the school (revision 0028): a school whose copy has not been refreshed for 3 days is listed
on the operator's "Needs attention" page and by `registry problems`, and counted by the
`ketenbroker_school_metadata_not_refreshed` gauge, until a refresh succeeds again."""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.main import main
from broker.cli.url_refresh import FETCHES_AT_ONCE
from broker.core.model import School
from broker.registry import SqlRegistry
from broker.saml import metadata_fetch
from broker.web.metadata_metrics import NOT_REFRESHED
from tests.security.test_portal_attention import _section
from tests.support.feed import Feed
from tests.support.live import free_ports
from tests.support.portal import HTTPS, PortalSite, portal_site

HANGING = 12  # two rounds of the pool
ANSWERING = 5
STEP_SECONDS = 1.5  # the fetch's timeout per step in this test (twice that in all)


class Hosts:
    """Schools' metadata servers on one loopback port: /hang/... accepts and never answers
    (until the test ends), /ok/NAME serves the copy set for NAME; requests counted by path."""

    def __init__(self) -> None:
        self.copies: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.release = threading.Event()
        hosts = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hosts.requests[self.path] += 1
                if self.path.startswith("/hang/"):
                    hosts.release.wait(30)
                    return
                body = hosts.copies[self.path.removeprefix("/ok/")]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.port = free_ports(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[PortalSite]:
    with portal_site(tmp_path, 8863) as built:
        yield built


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with contextlib.closing(Hosts()) as served:
        yield served


def _refresh(site: PortalSite) -> Result:
    config = str(site.directory / "ketenbroker.toml")
    return CliRunner().invoke(main, ["metadata", "refresh", "--config", config])


def _demo_entity_id(registry: SqlRegistry) -> str:
    (school,) = [s for s in registry.schools() if s.id == DEMO_SCHOOL_ID]
    return school.idp_entity_id


def test_hanging_hosts_cost_a_bounded_time_and_the_others_are_refreshed(
    site: PortalSite, hosts: Hosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = site.registry
    registered = registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    demo_entity = _demo_entity_id(registry)

    def add(school_id: str, entity: str, path: str) -> None:
        xml = registered.replace(demo_entity, f"https://{entity}.example/adfs")
        hosts.copies[entity] = xml.encode()
        registry.add_school(
            School(school_id, school_id, f"https://{entity}.example/adfs"), xml, hosts.url(path)
        )

    # Interleaved by id: a hanging school ahead of one that answers must not hold it up.
    for n in range(HANGING):
        add(f"{n:02d}HA", f"hang{n}", f"/hang/{n}")
    for n in range(ANSWERING):
        add(f"{n:02d}OK", f"ok{n}", f"/ok/ok{n}")
    add("50BB", "board", "/ok/board")  # a board's IdP: two schools, one download
    registry.add_school(
        School("51BB", "51BB", "https://board.example/adfs"),
        registry.registered_metadata("idp", "50BB"),
        hosts.url("/ok/board"),
    )
    hosts.copies["board"] += b"\n"  # a new copy for the board: written to both schools

    monkeypatch.setattr(metadata_fetch, "FETCH_TIMEOUT_SECONDS", STEP_SECONDS)
    started = time.monotonic()
    result = _refresh(site)
    took = time.monotonic() - started

    # Each hanging download ends at its deadline (2 x the step at most); 8 run at once.
    bound = 2 * STEP_SECONDS * math.ceil(HANGING / FETCHES_AT_ONCE)
    assert took < bound + 2.0, (took, result.output)
    assert took < HANGING * STEP_SECONDS  # one after another would take at least this
    assert result.exit_code == 1, result.output  # the hanging ones are refused

    said = re.findall(r"^school (\S+) \(IdP [^)]*\): (\w+)", result.output, re.M)
    assert [school for school, _ in said] == sorted(school for school, _ in said)
    outcome = dict(said)
    assert "51BB" not in outcome and outcome["50BB"] == "updated"
    assert "also for school(s) 51BB" in result.output
    assert hosts.requests["/ok/board"] == 1
    for n in range(ANSWERING):
        assert outcome[f"{n:02d}OK"] == "unchanged"
    for n in range(HANGING):
        assert outcome[f"{n:02d}HA"] == "refused"
        assert hosts.requests[f"/hang/{n}"] == 1
    assert result.output.count("the server answered too slowly") == HANGING

    records = registry.refresh_records("idp")
    assert records["00OK"].refreshed_at is not None and records["00OK"].failed_at is None
    assert records["51BB"] == records["50BB"] and records["51BB"].failure is None
    hung = records["00HA"]
    assert hung.failure == "metadata_invalid" and hung.failed_at is not None


def _gauge(site: PortalSite) -> float:
    scraped = site.client().get("/metrics").get_data(as_text=True)
    (value,) = re.findall(rf"^{NOT_REFRESHED} (\S+)$", scraped, re.M)
    return float(value)


def test_a_school_not_refreshed_for_days_is_listed_counted_and_clears(
    site: PortalSite, tmp_path: Path
) -> None:
    registry = site.registry
    registered = registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    feed = Feed()
    try:
        feed.body = registered.encode()
        config = str(site.directory / "ketenbroker.toml")
        given = CliRunner().invoke(
            main,
            [
                "school",
                "update",
                "--config",
                config,
                "--id",
                DEMO_SCHOOL_ID,
                "--saml-metadata",
                feed.url,
            ],
        )
        assert given.exit_code == 0, given.output
        assert _gauge(site) == 0.0  # given by URL just now: a refresh

        # The last copy accepted four days ago; since then the school's server fails.
        four_days_ago = datetime.now(UTC) - timedelta(days=4)
        earlier = SqlRegistry(site.settings.registry_url, clock=lambda: four_days_ago)
        earlier.record_refresh("idp", [DEMO_SCHOOL_ID], None)
        earlier.close()
        feed.mode = "error"
        failed = _refresh(site)
        assert failed.exit_code == 1, failed.output

        day, today = four_days_ago.date().isoformat(), datetime.now(UTC).date().isoformat()
        detail = f"not refreshed since {day}; last refused {today} (metadata_invalid)"
        operator = site.sign_in("operator")  # a code is accepted once: one sign-in
        page = operator.get("/portal/operator/attention?lang=en", base_url=HTTPS)
        section = _section(page.get_data(as_text=True), "schools_metadata_not_refreshed")
        assert f"/portal/operator/schools/{DEMO_SCHOOL_ID}" in section
        assert detail in section
        assert "Run ketenbroker metadata refresh and read the school" in section
        problems = CliRunner().invoke(main, ["registry", "problems", "--config", config])
        assert detail in problems.output, problems.output
        assert _gauge(site) == 1.0

        # The server mends: the next run accepts the copy and the school leaves the list.
        feed.mode = "ok"
        again = _refresh(site)
        assert again.exit_code == 0, again.output
        assert _gauge(site) == 0.0
        page = operator.get("/portal/operator/attention?lang=en", base_url=HTTPS)
        assert "attention-schools_metadata_not_refreshed" not in page.get_data(as_text=True)
    finally:
        feed.stop()
