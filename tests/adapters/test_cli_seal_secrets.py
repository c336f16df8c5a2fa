"""`ketenbroker registry seal-secrets` as an operator runs it after the upgrade to revision 0020
and after a rotation of the session secret: `migrate` says it is still to do, the command seals
what older code left in clear (counts only, nothing else printed), re-seals under a new session
secret while the previous one is configured, and refuses as a whole, naming the rows by id,
when a value does not open."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.core.sealed_secrets import PREFIX
from tests.storage.test_publisher_integrity import _move
from tests.support.cli import registry_of, run

TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CLIENT_SECRET = "qzx-older-client-secret"
EMAIL = "qzxops@broker.example"
ISSUER = "https://sso.lyceum.example/realms/school"


def _broker_with_clear_secrets(tmp_path: Path) -> Path:
    """A broker whose registry holds what code before revision 0020 wrote: an operator and an
    OIDC school, their secrets in clear; at revision 0020, the next `migrate` is the upgrade."""
    assert run("init", tmp_path / "broker").exit_code == 0
    config = tmp_path / "broker" / "ketenbroker.toml"
    _move(f"sqlite:///{config.parent / 'registry.sqlite3'}", "0020", down=True)
    with closing(sqlite3.connect(config.parent / "registry.sqlite3")) as connection, connection:
        connection.execute(
            "INSERT INTO admins (email, password_hash, totp_secret, totp_last_step, role, "
            "created_at) VALUES (?, 'h', ?, -1, 'operator', ?)",
            (EMAIL, TOTP_SECRET, datetime.now(UTC).isoformat()),
        )
        connection.execute(
            "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
            "scopes, idp_metadata) VALUES ('12AB00', 'OIDC-lyceum', ?, 'sub', 0, '[]', '')",
            (ISSUER,),
        )
        connection.execute(
            "INSERT INTO school_oidc_providers (school_id, issuer, client_id, client_secret, "
            "algorithms) VALUES ('12AB00', ?, 'broker', ?, '[\"RS256\"]')",
            (ISSUER, CLIENT_SECRET),
        )
    return config


def _stored(config: Path) -> list[str]:
    with closing(sqlite3.connect(config.parent / "registry.sqlite3")) as connection:
        return [
            *(row[0] for row in connection.execute("SELECT totp_secret FROM admins")),
            *(row[0] for row in connection.execute("SELECT client_secret FROM school_oidc_providers")),
        ]  # fmt: skip


def _opened(config: Path) -> tuple[str | None, str]:
    with closing(registry_of(config)) as registry:
        found = registry.accounts.credentials(EMAIL)
        school = registry.school("12AB00")
    assert found is not None and school is not None and school.oidc is not None
    return found.totp_secret, school.oidc.client_secret


def _rotate(config: Path, new: str, *, keep_previous: bool) -> None:
    """A new session secret, the old one kept as `keys.previous_session_secret` or not."""
    keys = config.parent / "keys"
    old = (keys / "session-secret").read_text(encoding="utf-8")
    (keys / "session-secret").write_text(new, encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    line = 'previous_session_secret = "keys/previous-session-secret"\n'
    text = text.replace(line, "")
    if keep_previous:
        (keys / "previous-session-secret").write_text(old, encoding="utf-8")
        text = text.replace('session_secret = "keys/session-secret"\n', f"session_secret = \"keys/session-secret\"\n{line}")  # fmt: skip
    config.write_text(text, encoding="utf-8")


def _quiet(output: str) -> None:
    """Counts only: no secret, no stored value, no address, no school or account."""
    for hidden in (TOTP_SECRET, CLIENT_SECRET, EMAIL, "12AB00", PREFIX):
        assert hidden not in output


def test_seal_secrets_after_the_upgrade_and_after_rotations(tmp_path: Path) -> None:
    config = _broker_with_clear_secrets(tmp_path)
    migrated = run("migrate", "--config", config)
    assert migrated.exit_code == 0
    assert "2 secrets (staff TOTP, school client) still in clear" in migrated.output
    assert "ketenbroker registry seal-secrets --config" in migrated.output

    dry = run("registry", "seal-secrets", "--dry-run", "--config", config)
    assert dry.exit_code == 0, dry.output
    assert (
        "Would seal (were in clear): 1 staff TOTP secret, 0 invitation TOTP secrets, "
        "1 school client secret." in dry.output
    )
    assert "Would mark the registry as holding sealed secrets only" in dry.output
    assert "Nothing was changed (--dry-run)." in dry.output
    assert _stored(config) == [TOTP_SECRET, CLIENT_SECRET]
    # Upgraded with values in clear: read as they are, and `registry status` says so.
    status = run("registry", "status", "--config", config)
    assert status.exit_code == 0, status.output
    assert "Secrets in clear (staff TOTP, school client): 2." in status.output
    assert "Sealed secrets only: no." in status.output
    assert _opened(config) == (TOTP_SECRET, CLIENT_SECRET)

    sealed = run("registry", "seal-secrets", "--config", config)
    assert sealed.exit_code == 0, sealed.output
    assert "Sealed (were in clear): 1 staff TOTP secret, 0 invitation TOTP secrets, 1 " in (
        sealed.output
    )
    assert (
        "Marked the registry as holding sealed secrets only: a secret in clear is refused "
        "from then on." in sealed.output
    )
    _quiet(sealed.output)
    stored = _stored(config)
    assert all(value.startswith(PREFIX) for value in stored)
    assert TOTP_SECRET not in "".join(stored) and CLIENT_SECRET not in "".join(stored)
    assert _opened(config) == (TOTP_SECRET, CLIENT_SECRET)
    assert "still in clear" not in run("migrate", "--config", config).output
    sealed_status = run("registry", "status", "--config", config).output
    assert "Secrets in clear (staff TOTP, school client): 0." in sealed_status
    assert "Sealed secrets only: yes, since " in sealed_status

    # A rotation with the previous secret configured: nothing lost, everything re-sealed.
    _rotate(config, "r" * 64, keep_previous=True)
    assert _opened(config) == (TOTP_SECRET, CLIENT_SECRET)
    resealed = run("registry", "seal-secrets", "--config", config)
    assert resealed.exit_code == 0, resealed.output
    assert (
        "Re-sealed under the current key (were under the previous one): 1 staff TOTP secret, "
        "0 invitation TOTP secrets, 1 school client secret." in resealed.output
    )
    _rotate(config, "r" * 64, keep_previous=False)  # the previous one may go now
    assert _opened(config) == (TOTP_SECRET, CLIENT_SECRET)
    again = run("registry", "seal-secrets", "--config", config)
    assert "Sealed under the current key already: 1 staff TOTP secret" in again.output
    assert "Sealed secrets only: yes, since " in again.output

    # A rotation without it: the command refuses as a whole, naming the rows, and says how on.
    _rotate(config, "z" * 64, keep_previous=False)
    before = _stored(config)
    refused = run("registry", "seal-secrets", "--config", config)
    assert refused.exit_code == 1
    assert "2 secret(s) cannot be opened, so nothing was sealed" in refused.output
    assert "administrator 1" in refused.output and "school 12AB00" in refused.output
    assert "keys.previous_session_secret" in refused.output
    assert EMAIL not in refused.output and TOTP_SECRET not in refused.output
    assert _stored(config) == before
    assert _opened(config) == (None, "")
    listed = run("school", "list", "--config", config)
    assert "client secret CANNOT BE OPENED: logins refused" in listed.output


def test_expired_invitations_are_emptied_not_counted_and_never_stop_the_run(
    tmp_path: Path,
) -> None:
    """After a rotation without the previous secret, an expired invitation's value opens under
    no key, and no command lists it (the Administrators page shows open invitations only): it
    must not stop `seal-secrets` for good."""
    config = _broker_with_clear_secrets(tmp_path)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with closing(sqlite3.connect(config.parent / "registry.sqlite3")) as connection, connection:
        for token, secret in (("c" * 64, f"{PREFIX}0a1b2c3d${'A' * 60}"), ("d" * 64, TOTP_SECRET)):
            connection.execute(
                "INSERT INTO invitations (token_hash, email, role, tenant_id, totp_secret, "
                "expires_at, created_by, used) VALUES (?, ?, 'operator', NULL, ?, ?, 1, 0)",
                (token, "new@broker.example", secret, past),
            )
    # The expired clear one is no secret still to seal.
    assert "2 secrets (staff TOTP, school client) still in clear" in (
        run("migrate", "--config", config).output
    )
    sealed = run("registry", "seal-secrets", "--config", config)
    assert sealed.exit_code == 0, sealed.output
    assert "Emptied the TOTP secret of 2 used or expired invitations." in sealed.output
    _quiet(sealed.output)
    with closing(sqlite3.connect(config.parent / "registry.sqlite3")) as connection:
        assert [row[0] for row in connection.execute("SELECT totp_secret FROM invitations")] == [
            "",
            "",
        ]


def test_once_marked_a_secret_put_in_clear_is_refused_and_never_sealed(tmp_path: Path) -> None:
    """A new broker's registry holds sealed secrets only from the start (revision 0021): a
    value someone puts in clear is not used, and `seal-secrets` will not make it a secret."""
    assert run("init", tmp_path / "broker").exit_code == 0
    config = tmp_path / "broker" / "ketenbroker.toml"
    status = run("registry", "status", "--config", config).output
    assert "Sealed secrets only: yes, since " in status
    with closing(sqlite3.connect(config.parent / "registry.sqlite3")) as connection, connection:
        connection.execute(
            "INSERT INTO admins (email, password_hash, totp_secret, totp_last_step, role, "
            "created_at) VALUES (?, 'h', ?, -1, 'operator', ?)",
            (EMAIL, TOTP_SECRET, datetime.now(UTC).isoformat()),
        )
    with closing(registry_of(config)) as registry:
        found = registry.accounts.credentials(EMAIL)
    assert found is not None and found.totp_secret is None and found.totp_in_clear
    refused = run("registry", "seal-secrets", "--config", config)
    assert refused.exit_code == 1
    assert "1 secret(s) cannot be opened, so nothing was sealed" in refused.output
    assert "in clear, and the registry holds sealed secrets only" in refused.output
    assert EMAIL not in refused.output and TOTP_SECRET not in refused.output
    assert _stored(config) == [TOTP_SECRET]
