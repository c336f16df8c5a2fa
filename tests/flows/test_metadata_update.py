"""A school's IdP rolls its signing key while the broker runs: its answers signed with the new
key are refused until the operator loads the new metadata with `ketenbroker school update`
(run as the operator runs it, against the demo's configuration), and accepted right after,
without a restart; the old key is then no longer trusted.

Two broker workers take requests in turn, each with its own cached registry view and pysaml2
entities, as two gunicorn workers have: both must use the new metadata. A demo of its own: the
demo school's key changes here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from lxml import etree

from broker.certificates import write_pair
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.main import main
from broker.registry.cached import MAX_STALENESS_SECONDS
from broker.saml.entities import SP_METADATA_PATH
from broker.web.wiring import Broker
from tests.flows.test_federation_metadata import RoundRobin
from tests.security.test_saml_attacks import accepted_for
from tests.security.test_saml_refusals import PendingLogin, deliver, forged, start_login
from tests.support.client import Page
from tests.support.forge import SchoolForger
from tests.support.live import LiveDemo, running_demo
from tests.support.saml_workers import demo_school_forger

DS = "http://www.w3.org/2000/09/xmldsig#"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("metadata-update-demo")) as live:
        yield live


def _body(cert_file: Path) -> str:
    pem = cert_file.read_text(encoding="ascii")
    return "".join(line for line in pem.splitlines() if "-----" not in line)


def _rolled(metadata: str, old_cert: Path, new_cert: Path) -> str:
    """The school's metadata with its certificate replaced by the new one, wherever it stands."""
    root = etree.fromstring(metadata.encode())
    old, replaced = _body(old_cert), 0
    for element in root.iter(f"{{{DS}}}X509Certificate"):
        if "".join((element.text or "").split()) == old:
            element.text = _body(new_cert)
            replaced += 1
    assert replaced, "the demo school publishes its certificate"
    text = etree.tostring(root, encoding="unicode")
    assert isinstance(text, str)
    return text


def _answered_by_each_worker(
    demo: LiveDemo, forger: SchoolForger
) -> list[tuple[PendingLogin, Page]]:
    """The school's answer (signed by `forger`) to one login at each worker's ACS."""
    robin = demo.servers[0].app
    assert isinstance(robin, RoundRobin)
    answers = []
    for worker in range(len(robin.apps)):
        login = start_login(demo)
        # The round robin's next turn is the count of requests so far; a cheap request moves it.
        while sum(robin.served) % len(robin.apps) != worker:
            requests.get(f"{demo.broker_url}{SP_METADATA_PATH}", timeout=5).raise_for_status()
        served = robin.served[worker]
        answers.append((login, deliver(demo, login, forged(demo, forger, login))))
        assert robin.served[worker] == served + 1, "the answer reached the worker meant"
    return answers


def _each_worker_refuses(demo: LiveDemo, forger: SchoolForger) -> None:
    for _, page in _answered_by_each_worker(demo, forger):
        assert page.status == 400, page.text[:300]


def test_a_rolled_school_key_is_trusted_after_school_update_without_restart(
    demo: LiveDemo, workers: list[Broker], tmp_path: Path
) -> None:
    current = demo_school_forger(demo)
    key, cert = tmp_path / "school-next.key", tmp_path / "school-next.crt"
    write_pair(key, cert, "demo school, next key")
    rolled = SchoolForger(demo.school_entity_id, key, cert, demo.broker.saml_entities.sp_metadata())
    _each_worker_refuses(demo, rolled)
    generation = demo.registry.generation()

    registered = demo.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    metadata = tmp_path / "school-rolled.xml"
    metadata.write_text(_rolled(registered, demo.directory / "peers" / "school.crt", cert))
    config = demo.directory / "ketenbroker.toml"
    result = CliRunner().invoke(
        main,
        ["school", "update", "--config", str(config), "--id", DEMO_SCHOOL_ID,
         "--saml-metadata", str(metadata)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "signing certificate added: SHA-256 " in result.output
    assert "signing certificate removed: SHA-256 " in result.output
    assert demo.registry.generation() > generation

    # Every worker looks at the generation at most a second later: no restart.
    time.sleep(MAX_STALENESS_SECONDS + 0.2)
    for login, page in _answered_by_each_worker(demo, rolled):
        accepted_for(demo, login, page)
    _each_worker_refuses(demo, current)
