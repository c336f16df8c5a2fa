"""`ketenbroker school list|remove` and `publisher list|organisations|remove|remove-organisation`
on the demo's registry: what an operator reads, a removal that only says what would go (exit code
3, registry byte-for-byte the same), the removal itself, and unknown ids or a publisher that still
has services (exit code 1, nothing changed)."""

from __future__ import annotations

import getpass
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID
from broker.core.admins import AdminRole, Publisher
from broker.core.model import ClientAuthMethod, OidcClient, Protocol, Service

# The demo's registry (a module fixture) is test_cli_registry's.
from tests.adapters.test_cli_registry import demo  # noqa: F401  # a fixture
from tests.adapters.test_cli_registry import registry_dump as dump
from tests.support.cli import registry_of, run

CONFIRMATION_NEEDED = 3


@pytest.fixture
def config(demo: Path, tmp_path: Path) -> Path:  # noqa: F811 - the imported fixture
    """A copy of the demo broker of its own: removals change it."""
    folder = shutil.copytree(demo, tmp_path / "broker")
    return folder / "ketenbroker.toml"


def test_school_list_is_one_line_a_school_without_secrets(config: Path) -> None:
    result = run("school", "list", "--config", config)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = ["ID", "NAME", "TOWN", "ALIASES", "PROTOCOL", "IDENTITY", "PROVIDER", "REGISTRATION"]
    assert lines[0].split() == header
    assert lines[1].startswith(f"{DEMO_SCHOOL_ID}  Demo Lyceum")
    assert DEMO_SCHOOL_TOWN in lines[1]
    assert "SAML" in lines[1] and "metadata from registration" in lines[1]
    assert lines[2].startswith(DEMO_OIDC_SCHOOL_ID) and "broker's client id ketenbroker" in lines[2]
    assert lines[3] == "2 schools."
    assert "demo-secret" not in result.output
    as_json = run("school", "list", "--config", config, "--json")
    entries = [json.loads(line) for line in as_json.output.splitlines()]
    assert [e["id"] for e in entries] == [DEMO_SCHOOL_ID, DEMO_OIDC_SCHOOL_ID]
    assert entries[1]["protocol"] == "OIDC" and "demo-secret" not in as_json.output


def test_publisher_list_shows_every_service_with_its_chain(config: Path) -> None:
    result = run("publisher", "list", "--config", config)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    ids = [line.split()[0] for line in lines[1:-1]]
    assert ids == sorted(ids) and OIDC_PUBLISHER_ID in ids
    woordwijs = next(line for line in lines if line.startswith(OIDC_PUBLISHER_ID))
    assert "OIDC" in woordwijs and "leermiddelen" in woordwijs and "approved" in woordwijs
    assert lines[-1] == f"{len(ids)} services."
    entries = [
        json.loads(x)
        for x in run("publisher", "list", "--config", config, "--json").output.splitlines()
    ]
    assert {e["publisher"] for e in entries} == {None}


def test_without_yes_a_removal_says_what_would_go_and_changes_nothing(config: Path) -> None:
    before = dump(config)
    school = run("school", "remove", DEMO_SCHOOL_ID, "--config", config)
    assert school.exit_code == CONFIRMATION_NEEDED
    assert f"School {DEMO_SCHOOL_ID} (Demo Lyceum) would be removed." in school.output
    assert "release polic" in school.output and "Stays:" in school.output
    assert "run again with --yes" in school.output
    service = run("publisher", "remove", OIDC_PUBLISHER_ID, "--config", config)
    assert service.exit_code == CONFIRMATION_NEEDED
    assert f"the OpenID Connect client {OIDC_PUBLISHER_ID}" in service.output
    assert dump(config) == before


def test_with_yes_the_entry_is_gone_from_the_lists(config: Path) -> None:
    removed = run("publisher", "remove", OIDC_PUBLISHER_ID, "--yes", "--config", config)
    assert removed.exit_code == 0, removed.output
    assert f"Service {OIDC_PUBLISHER_ID} (" in removed.output and "removed." in removed.output
    assert "Kept:" in removed.output
    assert OIDC_PUBLISHER_ID not in run("publisher", "list", "--config", config).output
    school = run("school", "remove", DEMO_OIDC_SCHOOL_ID, "--yes", "--config", config)
    assert school.exit_code == 0, school.output
    listed = run("school", "list", "--config", config).output
    assert DEMO_OIDC_SCHOOL_ID not in listed and listed.endswith("1 school.\n")


def test_unknown_ids_exit_1_and_change_nothing(config: Path) -> None:
    before = dump(config)
    school = run("school", "remove", "00XX99", "--yes", "--config", config)
    assert school.exit_code == 1 and "no school with id '00XX99'" in school.output
    service = run("publisher", "remove", "nope", "--config", config)
    assert service.exit_code == 1 and "no service with id 'nope'" in service.output
    assert dump(config) == before


PUBLISHER = Publisher("uitgeverij-noord", "Uitgeverij Noord")
NOORD_SERVICE = Service(
    "noord-app",
    "Noord App",
    "noord-app",
    None,
    protocol=Protocol.OIDC,
    oidc=OidcClient(("https://noord.example/cb",), ClientAuthMethod.SECRET_BASIC, "0" * 64),
    publisher_id=PUBLISHER.id,
)


@pytest.fixture
def publisher(config: Path) -> Path:
    """The demo broker with a publisher organisation: one service, an administrator, an
    invitation."""
    registry = registry_of(config)
    try:
        registry.accounts.add_publisher(PUBLISHER)
        registry.add_service(NOORD_SERVICE, None)
        accounts = registry.accounts
        accounts.add_admin("dev@noord.example", "h", "S", AdminRole.PUBLISHER, PUBLISHER.id)
        expires = datetime.now(UTC) + timedelta(days=1)
        accounts.add_invitation(
            "e" * 64, "new@noord.example", AdminRole.PUBLISHER, PUBLISHER.id, expires, 1
        )
    finally:
        registry.close()
    return config


def test_a_publisher_with_services_is_refused_in_one_line(publisher: Path) -> None:
    before = dump(publisher)
    for confirm in ((), ("--yes",)):
        refused = run(
            "publisher", "remove-organisation", PUBLISHER.id, *confirm, "--config", publisher
        )
        assert refused.exit_code == 1
        assert refused.output == (
            f"Error: publisher {PUBLISHER.id} still has services noord-app: remove each first "
            "with `ketenbroker publisher remove SERVICE --yes`; nothing was changed\n"
        )
    assert dump(publisher) == before


def test_a_publisher_without_services_is_removed_with_its_accounts(publisher: Path) -> None:
    assert run("publisher", "remove", "noord-app", "--yes", "--config", publisher).exit_code == 0
    before = dump(publisher)
    plan = run("publisher", "remove-organisation", PUBLISHER.id, "--config", publisher)
    assert plan.exit_code == CONFIRMATION_NEEDED, plan.output
    assert plan.output.startswith(f"Publisher {PUBLISHER.id} (Uitgeverij Noord) would be removed.")
    assert "1 publisher administrator account and 1 invitation" in plan.output
    assert "run again with --yes" in plan.output and dump(publisher) == before

    removed = run("publisher", "remove-organisation", PUBLISHER.id, "--yes", "--config", publisher)
    assert removed.exit_code == 0, removed.output
    assert f"Publisher {PUBLISHER.id} (Uitgeverij Noord) removed." in removed.output
    assert "signed out of the portal" in removed.output
    registry = registry_of(publisher)
    try:
        assert registry.accounts.publisher(PUBLISHER.id) is None
        assert registry.accounts.credentials("dev@noord.example") is None
        assert registry.accounts.open_invitations() == []
    finally:
        registry.close()
    # Recorded as a school's or a service's removal is: kind, id, name, when, by whom.
    with sqlite3.connect(publisher.parent / "registry.sqlite3") as connection:
        recorded = connection.execute(
            "SELECT kind, name, removed_by FROM removals WHERE entry_id = ?", (PUBLISHER.id,)
        ).fetchall()
    assert recorded == [("publisher", "Uitgeverij Noord", f"cli:{getpass.getuser()}")]
    listed = run("publisher", "organisations", "--config", publisher)
    assert listed.output.endswith("0 publisher organisations.\n")
    again = run("publisher", "remove-organisation", PUBLISHER.id, "--yes", "--config", publisher)
    assert again.exit_code == 1 and f"no publisher with id '{PUBLISHER.id}'" in again.output


def test_publisher_organisations_lists_each_with_its_services_and_administrators(
    publisher: Path,
) -> None:
    registry = registry_of(publisher)
    try:
        registry.accounts.add_publisher(Publisher("uitgeverij-zuid", "Uitgeverij Zuid"))
    finally:
        registry.close()
    before = dump(publisher)
    listed = run("publisher", "organisations", "--config", publisher)
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "ID                NAME              SERVICES  ADMINISTRATORS",
        "uitgeverij-noord  Uitgeverij Noord  1         1",
        "uitgeverij-zuid   Uitgeverij Zuid   0         0",
        "2 publisher organisations.",
    ]
    as_json = run("publisher", "organisations", "--config", publisher, "--json")
    assert [json.loads(line) for line in as_json.output.splitlines()] == [
        {
            "id": "uitgeverij-noord",
            "name": "Uitgeverij Noord",
            "services": 1,
            "administrators": 1,
        },
        {
            "id": "uitgeverij-zuid",
            "name": "Uitgeverij Zuid",
            "services": 0,
            "administrators": 0,
        },
    ]
    assert "new@noord.example" not in listed.output + as_json.output
    assert dump(publisher) == before
