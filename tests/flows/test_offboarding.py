"""Offboarding while the broker runs: after `ketenbroker publisher remove --yes` or `school remove
--yes` (run as the operator runs it, against the demo's configuration), both workers of the
broker stop serving the entry: new logins, codes, refresh and access tokens of a removed
service are refused; a removed school leaves discovery, its IdP's answers are refused at the
ACS, and tokens its students got earlier stop working.

A demo of its own: removing the demo school would break every other flow test. The school's
removal comes last in this module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import pytest
import requests
from click.testing import CliRunner

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.main import main
from broker.core.model import Declaration
from broker.web.wiring import Broker
from tests.flows.test_federation_metadata import entity_known_to
from tests.flows.test_oidc_provider_checks import Client, register
from tests.support.client import Browser
from tests.support.live import LiveDemo, running_demo

UID = "sanne.jansen"
T = TypeVar("T")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("offboarding-demo")) as live:
        yield live


def on_each_worker(ask: Callable[[], T]) -> list[T]:
    """The same request twice in a row: the round robin gives one to each worker."""
    return [ask(), ask()]


def remove(demo: LiveDemo, kind: str, entry_id: str) -> None:
    config = Path(demo.directory) / "ketenbroker.toml"
    result = CliRunner().invoke(main, [kind, "remove", entry_id, "--yes", "--config", str(config)])
    assert result.exit_code == 0, result.output


def userinfo(client: Client, token: dict[str, str]) -> requests.Response:
    return requests.get(
        f"{client.demo.broker_url}/oidc/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    )


def refresh(client: Client, token: dict[str, str]) -> requests.Response:
    return requests.post(
        client.token_url,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(client.client_id, client.secret or ""),
        timeout=5,
    )


def test_a_removed_oidc_service_loses_logins_codes_and_tokens(
    demo: LiveDemo, workers: list[Broker]
) -> None:
    client = register(demo, "offboarded-rp", refresh_tokens=True)
    token, _ = client.login(Browser())
    params = client.params()
    code = client.redirect(Browser(), params)["code"]  # issued, not yet redeemed
    assert all(r.status_code == 200 for r in on_each_worker(lambda: userinfo(client, token)))

    remove(demo, "publisher", "offboarded-rp")

    for answer in on_each_worker(lambda: userinfo(client, token)):
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
    for refused in on_each_worker(lambda: refresh(client, token)):
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    for redeemed in on_each_worker(lambda: client.redeem(code, params["_verifier"])):
        assert redeemed.status_code == 401 and redeemed.json()["error"] == "invalid_client"
    # A new login gets the page for an unknown client, never a redirect to it.
    new_login = f"{client.authorize_url}?{urlencode(client.params())}"
    for page in on_each_worker(lambda: Browser().get(new_login)):
        assert page.status == 400 and page.location is None


def test_a_removed_saml_service_is_refused_and_untrusted_on_every_worker(
    demo: LiveDemo, workers: list[Broker], caplog: pytest.LogCaptureFixture
) -> None:
    publisher = demo.add_publisher(
        "offboarded-sp", None, (Declaration("given_name", "To greet the student."),)
    )
    before = demo.login(Browser(), "offboarded-sp", UID).final
    assert before.status == 200 and before.url == publisher.acs_url  # delivered

    remove(demo, "publisher", "offboarded-sp")

    for login in on_each_worker(lambda: demo.login(Browser(), "offboarded-sp", UID)):
        assert login.final.status == 400 and "SAMLResponse" not in login.final.text
    assert "refused code=unknown_service " in caplog.text
    for worker in workers:
        assert not entity_known_to(worker, publisher.entity_id)


def test_a_removed_school_leaves_discovery_and_its_answers_and_tokens_are_refused(
    demo: LiveDemo, workers: list[Broker], caplog: pytest.LogCaptureFixture
) -> None:
    client = register(demo, "school-leaver-rp", refresh_tokens=True)
    token, _ = client.login(Browser())
    # The school's signed answers, made before the removal and delivered after it.
    browsers = [Browser(), Browser()]
    answers = [demo.school_response(b, "leesplank", UID) for b in browsers]

    remove(demo, "school", DEMO_SCHOOL_ID)

    start = f"{demo.publishers['leesplank'].base_url}/login"
    for discovery in on_each_worker(lambda: Browser().get(start)):
        assert demo.shows_discovery(discovery), discovery.text[:300]
        assert not any(("school", DEMO_SCHOOL_ID) in f.buttons for f in discovery.forms)
    for browser, answer in zip(browsers, answers, strict=True):
        page = browser.post(demo.acs_url, answer)
        assert page.status == 400 and not demo.answers_publisher(page), page.text[:300]
    assert caplog.text.count("refused code=unknown_school ") == len(answers)
    for worker in workers:
        assert not entity_known_to(worker, demo.school_entity_id)
    for reply in on_each_worker(lambda: userinfo(client, token)):
        assert reply.status_code == 401
    for refused in on_each_worker(lambda: refresh(client, token)):
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
