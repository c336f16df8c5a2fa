"""Pseudonym key rotation per chain, end to end (pseudonyms.md, "Keys and rotation").

The demo runs with two workers on one registry and one store (a second app instance built before
the rotation, as a second gunicorn worker would be), and `ketenbroker pseudonym-key` runs as the
operator runs it. Real clients log in: the demo's pysaml2 publishers (SAML, signatures checked)
and its authlib relying party (OIDC, ID token checked). Every expected value is derived here
from the key set file with the derivation function, independently of the broker's choice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from click.testing import CliRunner, Result

from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, OIDC_PUBLISHER_PORT_OFFSET
from broker.cli.main import main
from broker.core.pseudonym import PseudonymKeys, derive_chain_pseudonym
from broker.core.pseudonym_rotation import PREVIOUS_PSEUDONYM_RECEIPT_NAME, ChainKeyVersion
from broker.pseudonym_key_file import key_set_text, read_key_set
from broker.registry.receipts import ReceiptQuery
from broker.web import create_app
from broker.web.health import failed_checks
from broker.web.wiring import Broker, build_broker
from tests.flows.test_offboarding import refresh, userinfo
from tests.flows.test_oidc_provider_checks import id_token_claims
from tests.flows.test_oidc_provider_checks import register as checks_client
from tests.support.client import Browser
from tests.support.live import (
    PAIRWISE_ID,
    SCHOOL_NAMESPACE,
    LiveDemo,
    OidcPublisher,
    attributes_by_name,
    running_demo,
)
from tests.support.pysaml2_publisher import OwnSp, documented_attribute_map, documented_settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

PREVIOUS_PSEUDONYM = "urn:ketenbroker:previous-pseudonym"
CHAIN = "leermiddelen"
UID = "sanne.jansen"


class PinnedWorkers:
    """A WSGI app that hands every request to the worker `to` names."""

    def __init__(self, apps: list[WSGIApplication]) -> None:
        self.apps = apps
        self.to = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.apps[self.to](environ, start_response)


@dataclass
class Rotation:
    demo: LiveDemo
    workers: PinnedWorkers
    brokers: list[Broker]

    def cli(self, *args: str) -> Result:
        config = self.demo.directory / "ketenbroker.toml"
        return CliRunner().invoke(
            main, ["pseudonym-key", args[0], "--config", str(config), *args[1:]]
        )

    def expected(self, chain: str, version: int, uid: str = UID) -> str:
        key = read_key_set(self.demo.directory / "keys" / "pseudonym-keys.toml").keys[version]
        return derive_chain_pseudonym(key, chain, SCHOOL_NAMESPACE, self.demo.school_subject(uid))

    def saml(self, publisher: str, uid: str = UID) -> tuple[str, str | None]:
        """(NameID, previous pseudonym or None) a SAML publisher received in a fresh login."""
        browser = Browser()
        login = self.demo.login(browser, publisher, uid)
        assert login.final.status == 200, login.final.text
        received = self.demo.received(browser, publisher)
        name_id: str = received["name_id"]["value"]
        attributes = attributes_by_name(received)
        assert attributes[PAIRWISE_ID]["values"] == [f"{name_id}@{self.demo.settings.scope}"]
        previous = attributes.get(PREVIOUS_PSEUDONYM)
        if previous is None:
            return name_id, None
        assert len(previous["values"]) == 1
        return name_id, previous["values"][0]

    def oidc(self, uid: str = UID) -> tuple[str, str | None]:
        """(sub, previous_sub or None) the OIDC publisher received, the same in the ID token
        and at userinfo."""
        browser = Browser()
        login = self.demo.login(browser, OIDC_PUBLISHER_ID, uid)
        assert login.final.status == 200, login.final.text
        received = self.demo.received(browser, OIDC_PUBLISHER_ID)
        token, userinfo = received["id_token"], received["userinfo"]
        assert token["sub"] == userinfo["sub"] == received["sub"]
        assert token.get("previous_sub") == userinfo.get("previous_sub")
        return received["sub"], token.get("previous_sub")

    def wait_for_workers(self, chain: str, record: ChainKeyVersion | None) -> None:
        """Every worker's cached view has the record (it looks at most once a second)."""
        deadline = time.monotonic() + 10
        for broker in self.brokers:
            while broker.view.pseudonym_key_version(chain) != record:
                assert time.monotonic() < deadline, "a worker did not see the rotation"
                time.sleep(0.1)

    def latest_receipt_names(self, service_id: str) -> tuple[str, ...]:
        found = self.demo.broker.receipts.find(ReceiptQuery("99XX00", service_id=service_id))
        return max(found, key=lambda r: r.seq).content.attributes


@pytest.fixture(scope="module")
def rotation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotation]:
    with running_demo(tmp_path_factory.mktemp("rotation-demo")) as demo:
        base_url = f"http://localhost:{demo.port + OIDC_PUBLISHER_PORT_OFFSET}"
        demo.publishers[OIDC_PUBLISHER_ID] = OidcPublisher(OIDC_PUBLISHER_ID, base_url, CHAIN)
        first = demo.broker
        # A second worker: its own registry connection, cached view and key set in memory.
        second = build_broker(demo.settings, store=first.store)
        workers = PinnedWorkers([demo.servers[0].app, create_app(demo.settings, services=second)])
        demo.servers[0].app = workers
        try:
            yield Rotation(demo, workers, [first, second])
        finally:
            second.registry.close()


def test_a_chains_rotation_before_during_and_after_its_window(rotation: Rotation) -> None:
    demo = rotation.demo
    old = rotation.expected(CHAIN, 1)
    other_chain = rotation.expected("toetsen", 1)

    # Before: the old pseudonym alone, on both workers (both warm: version 1 in memory).
    for worker in (0, 1):
        rotation.workers.to = worker
        assert rotation.saml("leesplank") == (old, None)
        assert rotation.oidc() == (old, None)
        assert rotation.saml("toetsplein") == (other_chain, None)

    # The operator rotates the chain; no worker restarts.
    result = rotation.cli("rotate", "--chain", CHAIN, "--window", "30")
    assert result.exit_code == 0, result.output
    record = demo.registry.pseudonym_key_version(CHAIN)
    assert record is not None and record.current_version == 2
    rotation.wait_for_workers(CHAIN, record)
    new = rotation.expected(CHAIN, 2)
    assert new != old

    # During the window: the new pseudonym as NameID / pairwise-id / sub, the old one beside
    # it, from the second worker (which must read key version 2 from the file) and the first.
    for worker in (1, 0):
        rotation.workers.to = worker
        assert rotation.saml("leesplank") == (new, old)
        assert rotation.saml("rekenroute") == (new, old)
        assert rotation.oidc() == (new, old)
        assert rotation.saml("toetsplein") == (other_chain, None)
    # Another student gets their own pair.
    assert rotation.saml("leesplank", "daan.devries") == (
        rotation.expected(CHAIN, 2, "daan.devries"),
        rotation.expected(CHAIN, 1, "daan.devries"),
    )
    # The receipt names the previous pseudonym (no value); the other chain's does not.
    assert PREVIOUS_PSEUDONYM_RECEIPT_NAME in rotation.latest_receipt_names("leesplank")
    assert PREVIOUS_PSEUDONYM_RECEIPT_NAME not in rotation.latest_receipt_names("toetsplein")

    # A second rotation while the window is open is refused and changes nothing.
    again = rotation.cli("rotate", "--chain", CHAIN, "--window", "10")
    assert again.exit_code != 0
    assert f"chain {CHAIN} is in a migration window until" in again.output
    assert demo.registry.pseudonym_key_version(CHAIN) == record

    # After finish: the new pseudonym alone, everywhere.
    finish = rotation.cli("finish", "--chain", CHAIN)
    assert finish.exit_code == 0, finish.output
    done = ChainKeyVersion(CHAIN, 2)
    rotation.wait_for_workers(CHAIN, done)
    for worker in (0, 1):
        rotation.workers.to = worker
        assert rotation.saml("leesplank") == (new, None)
        assert rotation.oidc() == (new, None)
        assert rotation.saml("toetsplein") == (other_chain, None)
    assert PREVIOUS_PSEUDONYM_RECEIPT_NAME not in rotation.latest_receipt_names("leesplank")
    # Nothing personal at rest: neither pseudonym is anywhere in the registry database.
    for path in demo.directory.glob("registry.sqlite3*"):
        content = path.read_bytes()
        assert old.encode() not in content and new.encode() not in content, path.name


def test_discovery_announces_previous_sub(rotation: Rotation) -> None:
    url = f"{rotation.demo.broker_url}/.well-known/openid-configuration"
    assert "previous_sub" in requests.get(url, timeout=5).json()["claims_supported"]


def test_a_chain_of_its_own_is_rotated_and_its_window_ends_by_itself(rotation: Rotation) -> None:
    demo = rotation.demo
    demo.add_publisher("eigen-pad", None, ())
    chain = "service:eigen-pad"
    old = rotation.expected(chain, 1)
    assert rotation.saml("eigen-pad") == (old, None)
    result = rotation.cli("rotate", "--service", "eigen-pad", "--window", "1")
    assert result.exit_code == 0, result.output
    record = demo.registry.pseudonym_key_version(chain)
    assert record is not None
    rotation.wait_for_workers(chain, record)
    new = rotation.expected(chain, record.current_version)
    assert rotation.saml("eigen-pad") == (new, old)
    # The window's end passes (moved into the past here): no finish, yet the old one stops.
    ended = ChainKeyVersion(
        chain, record.current_version, 1, datetime.now(UTC) - timedelta(seconds=1)
    )
    demo.registry.pseudonym_keys.replace(record, ended, "test")
    rotation.wait_for_workers(chain, ended)
    for worker in (0, 1):
        rotation.workers.to = worker
        assert rotation.saml("eigen-pad") == (new, None)
    # A chain whose window ended may be rotated again.
    assert rotation.cli("rotate", "--service", "eigen-pad", "--window", "1").exit_code == 0


@pytest.mark.usefixtures("collect_pysaml2_temp_files")
def test_pysaml2_as_documented_hands_the_platform_the_previous_pseudonym(
    rotation: Rotation, tmp_path: Path
) -> None:
    """pysaml2 with its defaults drops `urn:ketenbroker:previous-pseudonym` (no map has a rule
    for it), so a platform would never re-key; with the settings docs/publishers.md gives, or
    its attribute map, the platform is handed it."""
    demo = rotation.demo
    sp = OwnSp(demo, "pysaml2-pad", chain=None)
    chain = "service:pysaml2-pad"
    assert rotation.cli("rotate", "--service", "pysaml2-pad", "--window", "1").exit_code == 0
    record = demo.registry.pseudonym_key_version(chain)
    assert record is not None
    rotation.wait_for_workers(chain, record)
    old, new = rotation.expected(chain, 1), rotation.expected(chain, record.current_version)

    answer = sp.login({})
    by_default = sp.ava(answer, {})
    assert by_default["pairwise-id"] == [f"{new}@{demo.settings.scope}"]
    assert PREVIOUS_PSEUDONYM not in by_default and "previous-pseudonym" not in by_default
    assert sp.ava(answer, documented_settings())[PREVIOUS_PSEUDONYM] == [old]
    mapped = sp.ava(answer, {"attribute_map_dir": str(documented_attribute_map(tmp_path))})
    assert mapped["previous-pseudonym"] == [old]
    assert mapped["pairwise-id"] == by_default["pairwise-id"]


def test_a_refresh_family_stops_sending_previous_sub_when_its_window_is_over(
    rotation: Rotation,
) -> None:
    """Codes and tokens outlive a login (a refresh family up to 30 days), each use applies the
    login's rule again: previous_sub goes out only while the window it came from is open."""
    demo = rotation.demo
    client = checks_client(demo, "rotation-rp", refresh_tokens=True)  # in CHAIN
    record = demo.registry.pseudonym_key_version(CHAIN)
    if record is not None and record.window_open(datetime.now(UTC)):
        assert rotation.cli("finish", "--chain", CHAIN).exit_code == 0
    assert rotation.cli("rotate", "--chain", CHAIN, "--window", "30").exit_code == 0
    record = demo.registry.pseudonym_key_version(CHAIN)
    assert record is not None and record.previous_version is not None
    rotation.wait_for_workers(CHAIN, record)
    rotation.workers.to = 1  # the worker built before the rotation
    token, claims = client.login(Browser())
    sub, previous = claims["sub"], claims["previous_sub"]
    assert previous != sub
    params = client.params()
    code = client.redirect(Browser(), params)["code"]  # issued in the window, redeemed after
    refreshed = refresh(client, token)
    assert refreshed.status_code == 200, refreshed.text
    # A refresh answers without an ID token: previous_sub is read at userinfo
    # (pseudonym-rotation-for-publishers.md).
    assert "id_token" not in refreshed.json()
    during = userinfo(client, refreshed.json()).json()
    assert (during["sub"], during["previous_sub"]) == (sub, previous)

    # The window's end passes (moved into the past here, as the clock would).
    ended = dataclasses.replace(record, window_ends=datetime.now(UTC) - timedelta(seconds=1))
    demo.registry.pseudonym_keys.replace(record, ended, "test")
    rotation.wait_for_workers(CHAIN, ended)
    for worker in (0, 1):
        rotation.workers.to = worker
        answer = userinfo(client, token).json()
        assert answer["sub"] == sub and "previous_sub" not in answer
    again = refresh(client, refreshed.json())
    assert again.status_code == 200, again.text
    answer = userinfo(client, again.json()).json()
    assert answer["sub"] == sub and "previous_sub" not in answer
    redeemed = client.redeem(code, params["_verifier"])
    assert redeemed.status_code == 200, redeemed.text
    late = id_token_claims(demo, redeemed.json()["id_token"], client.client_id)
    assert late["sub"] == sub and "previous_sub" not in late

    # The chain's next rotation opens another window, for other versions: the login's old
    # previous_sub (still in its first access token's record) stays out.
    assert rotation.cli("rotate", "--chain", CHAIN, "--window", "30").exit_code == 0
    next_window = demo.registry.pseudonym_key_version(CHAIN)
    assert next_window is not None and next_window.window_open(datetime.now(UTC))
    rotation.wait_for_workers(CHAIN, next_window)
    answer = userinfo(client, token).json()
    assert answer["sub"] == sub and "previous_sub" not in answer
    _, fresh_claims = client.login(Browser())  # a new login gets the new window's pair
    assert fresh_claims["previous_sub"] == sub != fresh_claims["sub"]
    assert rotation.cli("finish", "--chain", CHAIN).exit_code == 0


def test_a_host_whose_key_set_lacks_a_chains_version_is_not_ready(
    rotation: Rotation, tmp_path: Path
) -> None:
    """A worker on a host where the key set file was not copied after a rotation: /readyz
    names `pseudonym_keys`, so the load balancer sends it no students."""
    demo = rotation.demo
    if demo.registry.pseudonym_key_version(CHAIN) is None:
        assert rotation.cli("rotate", "--chain", CHAIN, "--window", "3").exit_code == 0
    stale = tmp_path / "pseudonym-keys.toml"
    version_1 = read_key_set(stale_source(demo)).keys[1]
    stale.write_text(key_set_text(PseudonymKeys(1, {1: version_1})), encoding="utf-8")
    settings = dataclasses.replace(
        demo.settings, pseudonym_keys=read_key_set(stale), pseudonym_keys_file=stale
    )
    lagging = build_broker(settings, store=demo.broker.store)
    try:
        assert "pseudonym_keys" in failed_checks(lagging)
        assert "pseudonym_keys" not in failed_checks(demo.broker)
        # Once the file is copied, the same worker is ready without a restart.
        stale.write_bytes(stale_source(demo).read_bytes())
        assert "pseudonym_keys" not in failed_checks(lagging)
    finally:
        lagging.registry.close()


def stale_source(demo: LiveDemo) -> Path:
    return demo.directory / "keys" / "pseudonym-keys.toml"
