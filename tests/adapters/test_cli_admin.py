"""`ketenbroker admin create`: the first operator, with the TOTP key printed once."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from broker.accounts import totp
from broker.accounts.passwords import verify_password
from broker.cli.instance import init_instance
from broker.cli.main import main
from broker.config import load_settings
from broker.core.admins import AdminRole
from broker.registry import SqlRegistry

PASSWORD = "a long password 1"


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
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        found = registry.accounts.credentials("ops@example.nl")
        assert found is not None and found.admin.role is AdminRole.OPERATOR
        assert found.totp_secret == secret.group(1)
        assert verify_password(found.password_hash, PASSWORD)
        assert PASSWORD not in found.password_hash
        assert totp.verify(found.totp_secret, totp.code_at(found.totp_secret, totp.current_step()))
        # A second account with that address, or a short password: refused, nothing written.
        assert _create(config, "ops@example.nl", PASSWORD)[0] == 1
        assert _create(config, "new@example.nl", "short")[0] == 1
        assert [a.email for a in registry.accounts.admins()] == ["ops@example.nl"]
    finally:
        registry.close()
