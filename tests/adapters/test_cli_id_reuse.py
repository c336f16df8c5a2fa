"""`publisher add` and `registry import` under a removed service's id (registry/id_reuse.py):
refused without a flag (exit code 1, registry byte-for-byte the same); `--reuse-removed-id`
for the same publisher organisation as before; for another one, or one the removal record does
not name, only with `--pseudonyms-carry-over` besides; that flag alone is a usage error."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.demo_oidc_publisher import OIDC_PUBLISHER_ID, oidc_publisher
from broker.config import load_settings
from broker.core.admins import Publisher
from broker.core.errors import ConfigurationError
from broker.core.model import ClientAuthMethod, OidcClient, Protocol, Service
from broker.registry.id_reuse import IdReuse

# The demo's registry (a module fixture) is test_cli_registry's.
from tests.adapters.test_cli_registry import (
    demo,  # noqa: F401  # a fixture
    export,
)
from tests.adapters.test_cli_registry import registry_dump as dump
from tests.support.cli import registry_of, run

NOORD = Publisher("uitgeverij-noord", "Uitgeverij Noord")
NOORD_SERVICE = "noord-app"
REUSE, CARRY_OVER = "--reuse-removed-id", "--pseudonyms-carry-over"


@pytest.fixture
def config(demo: Path, tmp_path: Path) -> Path:  # noqa: F811 - the imported fixture
    """A copy of the demo broker of its own, with a publisher organisation's service removed
    and the demo's own OIDC client (no organisation) removed."""
    folder = shutil.copytree(demo, tmp_path / "broker")
    config = folder / "ketenbroker.toml"
    registry = registry_of(config)
    try:
        registry.accounts.add_publisher(NOORD)
        client = OidcClient(("https://noord.example/cb",), ClientAuthMethod.SECRET_BASIC, "0" * 64)
        service = Service(
            NOORD_SERVICE,
            "Noord App",
            NOORD_SERVICE,
            None,
            protocol=Protocol.OIDC,
            oidc=client,
            publisher_id=NOORD.id,
        )
        registry.add_service(service, None)
    finally:
        registry.close()
    for service_id in (NOORD_SERVICE, OIDC_PUBLISHER_ID):
        assert run("publisher", "remove", service_id, "--yes", "--config", config).exit_code == 0
    return config


def _add(config: Path, service_id: str, *flags: str) -> tuple[int, str]:
    result = run(
        "publisher", "add", "--config", config, "--id", service_id, "--name", "Weer",
        "--oidc-redirect-uri", "https://weer.example/cb", *flags,
    )  # fmt: skip
    return result.exit_code, result.output


def _publisher_of(config: Path, service_id: str) -> str | None:
    registry = registry_of(config)
    try:
        found = registry.any_service(service_id)
        assert found is not None
        return found.publisher_id
    finally:
        registry.close()


def test_a_removed_id_is_refused_without_the_flag_and_nothing_changes(config: Path) -> None:
    before = dump(config)
    for service_id in (NOORD_SERVICE, OIDC_PUBLISHER_ID):
        status, output = _add(config, service_id)
        assert status == 1
        assert f"service id {service_id!r} was used before" in output
        # The command that refused names itself with the flag that would take the id.
        assert f"`ketenbroker publisher add {REUSE}`" in output and "nothing was added" in output
    assert dump(config) == before


def test_the_flag_takes_the_id_for_the_same_publisher_as_before(config: Path) -> None:
    # The demo's client had no publisher organisation, as `publisher add` registers it again.
    status, output = _add(config, OIDC_PUBLISHER_ID, REUSE)
    assert status == 0, output
    assert _publisher_of(config, OIDC_PUBLISHER_ID) is None


def test_another_publishers_id_needs_the_pseudonyms_acknowledged(config: Path) -> None:
    before = dump(config)
    status, output = _add(config, NOORD_SERVICE, REUSE)
    assert status == 1
    # The operator's command names whose it was and what would allow it.
    assert f"a service of {NOORD.id}, not of no publisher organisation" in output
    assert f"`ketenbroker publisher add {REUSE} {CARRY_OVER}`" in output
    assert dump(config) == before
    status, output = _add(config, NOORD_SERVICE, REUSE, CARRY_OVER)
    assert status == 0, output
    assert _publisher_of(config, NOORD_SERVICE) is None


def test_a_removal_recorded_without_its_publisher_needs_the_acknowledgement(config: Path) -> None:
    """A removal from before revision 0024 does not say whose the service was."""
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        connection.execute(
            "UPDATE removals SET publisher_id = NULL WHERE entry_id = ?", (OIDC_PUBLISHER_ID,)
        )
    before = dump(config)
    status, output = _add(config, OIDC_PUBLISHER_ID, REUSE)
    assert status == 1 and "a publisher the registry did not record" in output
    assert dump(config) == before
    assert _add(config, OIDC_PUBLISHER_ID, REUSE, CARRY_OVER)[0] == 0


def test_the_acknowledgement_alone_is_a_usage_error(config: Path) -> None:
    before = dump(config)
    status, output = _add(config, NOORD_SERVICE, CARRY_OVER)
    assert status == 2 and "--pseudonyms-carry-over goes with --reuse-removed-id" in output
    assert dump(config) == before


def test_an_import_creating_a_removed_id_follows_the_same_rule(
    demo: Path,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    folder = shutil.copytree(demo, tmp_path / "broker")
    config = folder / "ketenbroker.toml"
    file = export(folder, tmp_path / "registry.toml")
    assert run("publisher", "remove", OIDC_PUBLISHER_ID, "--yes", "--config", config).exit_code == 0
    before = dump(config)
    for dry_run in ((), ("--dry-run",)):
        refused = run("registry", "import", "--config", config, file, *dry_run)
        assert refused.exit_code == 1
        assert f"service id {OIDC_PUBLISHER_ID!r} was used before" in refused.output
        assert f"`ketenbroker registry import {REUSE}`" in refused.output
        assert "publisher add" not in refused.output
        assert dump(config) == before
    imported = run("registry", "import", "--config", config, file, REUSE)
    assert imported.exit_code == 0, imported.output
    assert f"added    service {OIDC_PUBLISHER_ID}" in imported.output


@pytest.mark.parametrize("command", [("publisher", "add"), ("registry", "import")])
def test_the_flags_help_says_what_the_flag_requires(command: tuple[str, ...]) -> None:
    """`publisher add` registers a service for no organisation: the flag alone takes only an
    id of a service no organisation managed there, which its help says."""
    shown = " ".join(run(*command, "--help").output.split())
    assert "for the same publisher organisation" not in shown
    assert "of the organisation this one is registered for (none, for `publisher add`)" in shown
    assert "not removed since" in shown


def test_the_demo_registers_its_own_removed_client_again(config: Path) -> None:
    """The demo's OIDC client, removed, comes back at the next start under its own id (no
    organisation's, as before); given to an organisation since, the demo says so and adds
    nothing."""
    settings = load_settings(config)
    registry = registry_of(config)
    try:
        oidc_publisher(config.parent, 18006, settings, registry, [DEMO_SCHOOL_ID])
        found = registry.any_service(OIDC_PUBLISHER_ID)
        assert found is not None and found.publisher_id is None
        registry.remove_service(OIDC_PUBLISHER_ID, apply=True, removed_by="cli:ops")
        with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
            connection.execute(
                "UPDATE removals SET publisher_id = ? WHERE entry_id = ?",
                (NOORD.id, OIDC_PUBLISHER_ID),
            )
        with pytest.raises(ConfigurationError) as refused:
            oidc_publisher(config.parent, 18006, settings, registry, [DEMO_SCHOOL_ID])
        assert f"a service of {NOORD.id}" in refused.value.detail
        assert "start the demo in a new folder" in refused.value.detail
        assert registry.any_service(OIDC_PUBLISHER_ID) is None
    finally:
        registry.close()


def _secret_file(config: Path) -> Path:
    return config.parent / "peers" / f"{OIDC_PUBLISHER_ID}-client-secret"


@pytest.mark.parametrize("publisher", [NOORD.id, None])
def test_the_demo_touches_no_service_under_its_id_that_is_not_its_own(
    config: Path, publisher: str | None
) -> None:
    """The id given since to an organisation's service, or a client the operator registered
    under it (its secret not the one the demo keeps): the demo refuses to start, says why, and
    neither writes its secret file nor adds logout URIs to that client."""
    client = OidcClient(("https://weer.example/cb",), ClientAuthMethod.SECRET_BASIC, "1" * 64)
    other = Service(OIDC_PUBLISHER_ID, "Weer", OIDC_PUBLISHER_ID, None, protocol=Protocol.OIDC,
                    oidc=client, publisher_id=publisher)  # fmt: skip
    settings = load_settings(config)
    registry = registry_of(config)
    try:
        registry.add_service(other, None, reuse=IdReuse.CARRIED_OVER)
        secret_before = _secret_file(config).read_bytes()
        before = dump(config)
        with pytest.raises(ConfigurationError) as refused:
            oidc_publisher(config.parent, 18006, settings, registry, [DEMO_SCHOOL_ID])
        why = (
            f"it is a service of publisher organisation {NOORD.id}"
            if publisher
            else "its client secret is not the one the demo keeps in "
        )
        assert refused.value.detail.startswith(
            f"the registry's service {OIDC_PUBLISHER_ID!r} is not the demo's OIDC publisher: {why}"
        )
        assert refused.value.detail.endswith(
            "the demo changes nothing of it: start the demo in a new folder (--dir)"
        )
        held = registry.any_service(OIDC_PUBLISHER_ID)
        assert held is not None and held.oidc == client and held.publisher_id == publisher
    finally:
        registry.close()
    assert dump(config) == before
    assert _secret_file(config).read_bytes() == secret_before


def test_a_refused_registration_writes_no_secret_file(config: Path) -> None:
    """The removed id recorded as an organisation's: refused before the demo's secret file is
    replaced (the file stays as it was, here the one of the earlier registration)."""
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        connection.execute(
            "UPDATE removals SET publisher_id = ? WHERE entry_id = ?", (NOORD.id, OIDC_PUBLISHER_ID)
        )
    secret_before = _secret_file(config).read_bytes()
    settings = load_settings(config)
    registry = registry_of(config)
    try:
        with pytest.raises(ConfigurationError, match="cannot be registered again"):
            oidc_publisher(config.parent, 18006, settings, registry, [DEMO_SCHOOL_ID])
    finally:
        registry.close()
    assert _secret_file(config).read_bytes() == secret_before


def test_the_demos_own_client_from_before_logout_gets_its_logout_uris(config: Path) -> None:
    """Its own client (no organisation, the secret it keeps) is the one it may update."""
    settings = load_settings(config)
    registry = registry_of(config)
    try:
        oidc_publisher(config.parent, 18006, settings, registry, [DEMO_SCHOOL_ID])
        held = registry.any_service(OIDC_PUBLISHER_ID)
        assert held is not None and held.oidc is not None
        registry.update_oidc_client(
            OIDC_PUBLISHER_ID,
            replace(held.oidc, backchannel_logout_uri=None, post_logout_redirect_uris=()),
        )
        oidc_publisher(config.parent, 18006, settings, registry, [DEMO_SCHOOL_ID])
        again = registry.any_service(OIDC_PUBLISHER_ID)
        assert again is not None and again.oidc is not None
        assert again.oidc.backchannel_logout_uri == "http://localhost:18006/backchannel-logout"
    finally:
        registry.close()
