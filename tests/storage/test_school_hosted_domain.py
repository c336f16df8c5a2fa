"""A school's hosted domain in the registry (revision 0013), on SQLite and PostgreSQL: stored
with its OpenID provider, changed and cleared with it, imported, and kept or dropped by the
migration both ways."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import inspect

import broker.cli.school_commands
import broker.cli.school_oidc
from broker.cli.options import open_registry
from broker.config import Settings
from broker.core.errors import UnknownSchool
from broker.core.model import OidcUpstream, School
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine
from broker.registry.errors import ProviderChanged
from broker.registry.migration import model_drift
from broker.registry.snapshot import SchoolEntry, Snapshot
from tests.storage.test_school_town import _move
from tests.support.cli import run
from tests.support.sealing import TEST_SEAL

GOOGLE = "https://accounts.google.com"
GOOGLE_OIDC = OidcUpstream(GOOGLE, "broker", "secret", hosted_domain="school.nl")
SCHOOL = School("77GG00", "Google-school", GOOGLE, "sub", oidc=GOOGLE_OIDC)


def _domain(registry: SqlRegistry) -> str:
    school = registry.school(SCHOOL.id)
    assert school is not None and school.oidc is not None
    return school.oidc.hosted_domain


def _provider_columns(url: str) -> set[str]:
    engine = open_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("school_oidc_providers")}
    finally:
        engine.dispose()


def test_a_hosted_domain_is_stored_changed_and_cleared(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(SCHOOL, "")
    assert sql_registry.school(SCHOOL.id) == SCHOOL
    assert sql_registry.schools_by_idp(GOOGLE) == (SCHOOL,)
    before = sql_registry.generation()
    moved = replace(SCHOOL, oidc=replace(GOOGLE_OIDC, hosted_domain="other.nl"))
    sql_registry.update_school_idp(moved, "")
    assert sql_registry.generation() > before  # every worker's next login checks the new one
    assert _domain(sql_registry) == "other.nl"
    sql_registry.update_school_idp(replace(SCHOOL, oidc=replace(GOOGLE_OIDC, hosted_domain="")), "")
    assert _domain(sql_registry) == ""


def _provider(registry: SqlRegistry) -> OidcUpstream:
    school = registry.school(SCHOOL.id)
    assert school is not None and school.oidc is not None
    return school.oidc


@pytest.fixture
def config(registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A broker configuration (`ketenbroker init`) whose registry is `registry_url`; the
    registries the commands open are closed afterwards (PostgreSQL connections left open warn)."""
    assert run("init", tmp_path / "broker").exit_code == 0
    path = tmp_path / "broker" / "ketenbroker.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"sqlite:///registry.sqlite3"', f'"{registry_url}"'), "utf-8")
    opened: list[SqlRegistry] = []

    def open_and_keep(config_path: Path) -> tuple[Settings, SqlRegistry]:
        settings, registry = open_registry(config_path)
        opened.append(registry)
        return settings, registry

    monkeypatch.setattr(broker.cli.school_commands, "open_registry", open_and_keep)
    yield path
    for registry in opened:
        registry.close()


def _portal_edit_during_the_command(
    monkeypatch: pytest.MonkeyPatch, registry: SqlRegistry, edited: OidcUpstream
) -> None:
    """The school's portal saves `edited` while `school update` is between its read of the
    school and its write: inside the domain check, which runs in between."""
    checked = broker.cli.school_oidc.hosted_domain

    def check_then_edit(issuer: str, value: str) -> str:
        registry.update_school_idp(replace(SCHOOL, idp_entity_id=edited.issuer, oidc=edited), "")
        return checked(issuer, value)

    monkeypatch.setattr(broker.cli.school_oidc, "hosted_domain", check_then_edit)


def test_school_update_writes_the_hosted_domain_alone(
    sql_registry: SqlRegistry,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql_registry.add_school(SCHOOL, "")
    assert SCHOOL.oidc is not None
    rotated = replace(GOOGLE_OIDC, client_secret="rotated", algorithms=("ES256",))
    _portal_edit_during_the_command(monkeypatch, sql_registry, rotated)
    result = run("school", "update", "--config", config, "--id", SCHOOL.id,
                 "--hosted-domain", "Other.nl")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "hosted domain set to other.nl" in result.output
    # The portal's secret and algorithms survive; the command changed the domain only.
    assert _provider(sql_registry) == replace(rotated, hosted_domain="other.nl")


def test_school_update_refuses_when_the_issuer_changed_meanwhile(
    sql_registry: SqlRegistry,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The domain was checked against the old issuer: written under a new one it could let in
    accounts the check never allowed, so the command is refused and changes nothing."""
    keycloak = "https://login.school.nl/realms/school"
    school = replace(SCHOOL, idp_entity_id=keycloak, oidc=OidcUpstream(keycloak, "b", "s"))
    sql_registry.add_school(school, "")
    assert SCHOOL.oidc is not None
    _portal_edit_during_the_command(monkeypatch, sql_registry, SCHOOL.oidc)  # to Google
    generation = sql_registry.generation()
    result = run("school", "update", "--config", config, "--id", SCHOOL.id,
                 "--clear-hosted-domain")  # fmt: skip
    assert result.exit_code == 1
    assert "identity provider changed meanwhile; nothing was changed" in result.output
    assert _provider(sql_registry) == SCHOOL.oidc  # Google's, with its domain
    assert sql_registry.generation() == generation + 1  # the portal's write only


def test_set_school_hosted_domain_checks_the_school_and_its_issuer(
    sql_registry: SqlRegistry,
) -> None:
    sql_registry.add_school(SCHOOL, "")
    sql_registry.add_school(School("00AA", "SAML-school", "https://idp.aa.nl/saml"), "")
    generation = sql_registry.generation()
    with pytest.raises(ProviderChanged, match="77GG00: its identity provider changed"):
        sql_registry.set_school_hosted_domain(SCHOOL.id, "https://login.other.nl", "")
    with pytest.raises(ProviderChanged):
        sql_registry.set_school_hosted_domain("00AA", GOOGLE, "school.nl")  # SAML now
    with pytest.raises(UnknownSchool):
        sql_registry.set_school_hosted_domain("99ZZ", GOOGLE, "school.nl")
    assert sql_registry.generation() == generation
    assert _provider(sql_registry) == SCHOOL.oidc
    sql_registry.set_school_hosted_domain(SCHOOL.id, GOOGLE, "")
    assert _domain(sql_registry) == ""
    assert sql_registry.generation() > generation


def test_an_import_sets_and_keeps_the_hosted_domain(sql_registry: SqlRegistry) -> None:
    snapshot = Snapshot(schools=(SchoolEntry(SCHOOL, ""),))
    assert sql_registry.import_snapshot(snapshot, "cli:test").added == [f"school {SCHOOL.id}"]
    assert _domain(sql_registry) == "school.nl"
    assert sql_registry.import_snapshot(snapshot, "cli:test").unchanged == 1
    other = replace(SCHOOL, oidc=replace(GOOGLE_OIDC, hosted_domain="other.nl"))
    changed = Snapshot(schools=(SchoolEntry(other, ""),))
    assert sql_registry.import_snapshot(changed, "cli:test").changed == [f"school {SCHOOL.id}"]
    assert _domain(sql_registry) == "other.nl"
    assert sql_registry.snapshot().schools == changed.schools


def test_upgrade_to_0013_gives_existing_schools_none_and_downgrade_drops_it(
    registry_url: str,
) -> None:
    _move(registry_url, "0012")
    engine = open_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
                "scopes, town, aliases, idp_metadata) VALUES ('77GG00', 'Google-school', "
                f"'{GOOGLE}', 'sub', false, '[]', '', '[]', '')"
            )
            connection.exec_driver_sql(
                "INSERT INTO school_oidc_providers (school_id, issuer, client_id, "
                f"client_secret, algorithms) VALUES ('77GG00', '{GOOGLE}', 'broker', 'secret', "
                "'[\"RS256\"]')"
            )
    finally:
        engine.dispose()
    assert "hosted_domain" not in _provider_columns(registry_url)
    migrate(registry_url)
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url, seal=TEST_SEAL)
    try:
        # None: the login refuses this Google school until it has one (hosted_domain_missing).
        assert _domain(registry) == ""
        # The domain alone: the client secret stays as code at 0012 wrote it, in clear (a
        # sealed one would keep revision 0020 from going down, its own test says why).
        registry.set_school_hosted_domain(SCHOOL.id, GOOGLE, "school.nl")
        assert _domain(registry) == "school.nl"
    finally:
        registry.close()
    _move(registry_url, "0012", down=True)
    assert "hosted_domain" not in _provider_columns(registry_url)
    migrate(registry_url)
    registry = SqlRegistry(registry_url, seal=TEST_SEAL)
    try:
        assert _domain(registry) == ""  # the downgrade dropped it: refused again, not let in
    finally:
        registry.close()
