"""`ketenbroker admin create|list|remove`: the first operator, with the TOTP key printed once;
every account listed; one account removed, after saying who would go (exit code 3, nothing
changed), and unknown addresses and the last operator refused (exit code 1, nothing changed)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.accounts import totp
from broker.accounts.passwords import hash_password, verify_password
from broker.cli.instance import init_instance
from broker.cli.main import main
from broker.config import load_settings
from broker.core.admins import AdminRole, Publisher
from broker.registry import SqlRegistry, migrate_first
from tests.support.cli import registry_of, run

PASSWORD = "a long password 1"
CONFIRMATION_NEEDED = 3


def _create(config: Path, email: str, password: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["admin", "create", "--config", str(config), "--email", email],
        input=f"{password}\n{password}\n",
    )
    return result.exit_code, result.output


def test_admin_create_makes_an_operator_and_prints_the_key_once(tmp_path: Path) -> None:
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    code, output = _create(config, "Ops@Example.nl", PASSWORD)
    assert code == 0, output
    secret = re.search(r"key: ([A-Z2-7]+)", output)
    assert secret and "otpauth://totp/" in output
    registry = registry_of(config)
    try:
        found = registry.accounts.credentials("ops@example.nl")
        assert found is not None and found.admin.role is AdminRole.OPERATOR
        assert found.totp_secret == secret.group(1)
        assert verify_password(found.password_hash, PASSWORD)
        assert PASSWORD not in found.password_hash
        assert found.totp_secret is not None
        assert totp.verify(found.totp_secret, totp.code_at(found.totp_secret, totp.current_step()))
        # A second account with that address, or a short password: refused, nothing written.
        assert _create(config, "ops@example.nl", PASSWORD)[0] == 1
        assert _create(config, "new@example.nl", "short")[0] == 1
        assert [a.email for a in registry.accounts.admins()] == ["ops@example.nl"]
    finally:
        registry.close()


@pytest.fixture
def broker_with_staff(tmp_path: Path) -> Iterator[tuple[Path, SqlRegistry]]:
    """A broker with two operators and a publisher's administrator."""
    config = init_instance(tmp_path / "kb", "http://127.0.0.1:8000", "kb.example", "KB")
    migrate_first(load_settings(config).registry_url)
    registry = registry_of(config)
    accounts = registry.accounts
    accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
    for email, role, tenant in (
        ("ops@example.nl", AdminRole.OPERATOR, None),
        ("zed@example.nl", AdminRole.OPERATOR, None),
        ("dev@uitgever.example", AdminRole.PUBLISHER, "uitgever-a"),
    ):
        accounts.add_admin(email, hash_password(PASSWORD), totp.new_secret(), role, tenant)
    try:
        yield config, registry
    finally:
        registry.close()


def test_admin_list_names_every_account(broker_with_staff: tuple[Path, SqlRegistry]) -> None:
    config, _ = broker_with_staff
    table = run("admin", "list", "--config", config)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["ID", "E-MAIL", "ROLE", "TENANT"]
    assert lines[1].split() == ["1", "ops@example.nl", "operator", "-"]
    assert lines[3].split() == ["3", "dev@uitgever.example", "publisher", "uitgever-a"]
    assert lines[-1] == "3 administrators."
    entries = [
        json.loads(x)
        for x in run("admin", "list", "--json", "--config", config).output.splitlines()
    ]
    assert entries[0] == {"id": 1, "e-mail": "ops@example.nl", "role": "operator", "tenant": None}
    assert entries[2]["tenant"] == "uitgever-a"


def test_admin_remove_says_first_then_removes(broker_with_staff: tuple[Path, SqlRegistry]) -> None:
    config, registry = broker_with_staff
    before = registry.accounts.admins()
    asked = run("admin", "remove", "Dev@Uitgever.example", "--config", config)
    assert asked.exit_code == CONFIRMATION_NEEDED, asked.output
    assert asked.output.startswith(
        "Publisher administrator 3 (dev@uitgever.example, publisher uitgever-a) would be removed."
    )
    assert '"removed administrator"' in asked.output and "receipts, unaffected" in asked.output
    assert "run again with --yes" in asked.output
    assert registry.accounts.admins() == before

    done = run("admin", "remove", "dev@uitgever.example", "--yes", "--config", config)
    assert done.exit_code == 0, done.output
    assert "would be" not in done.output and "removed." in done.output.splitlines()[0]
    assert registry.accounts.credentials("dev@uitgever.example") is None
    assert registry.accounts.admins() == before[:2]


def test_admin_remove_refuses_unknown_addresses_and_the_last_operator(
    broker_with_staff: tuple[Path, SqlRegistry],
) -> None:
    config, registry = broker_with_staff
    unknown = run("admin", "remove", "nobody@example.nl", "--yes", "--config", config)
    assert unknown.exit_code == 1
    assert unknown.output == "Error: no administrator with the e-mail address 'nobody@example.nl'\n"
    assert run("admin", "remove", "zed@example.nl", "--yes", "--config", config).exit_code == 0
    before = registry.accounts.admins()
    for confirmed in ((), ("--yes",)):
        last = run("admin", "remove", "ops@example.nl", *confirmed, "--config", config)
        assert last.exit_code == 1
        assert last.output.startswith("Error: administrator 1 is the last operator")
        assert "nothing was changed" in last.output
    assert registry.accounts.admins() == before
