"""A school's hosted domain from the command line and the registry file (core/hosted_domain.py):
required for Google's shared issuer, checked before anything is written, and travelling with an
export. Google's issuer is never fetched here: its refusals come before any provider check, and
its schools are put in the registry directly, as a school registered before the rule was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.core.model import OidcUpstream, School
from tests.adapters.test_cli_oidc_school import SECRET, provider, secret_file
from tests.support.cli import registry_of, run
from tests.support.oidc_forge import ForgeProvider

# The forge provider and the secret file are test_cli_oidc_school's fixtures.
__all__ = ["provider", "secret_file"]
GOOGLE = "https://accounts.google.com"
GOOGLE_SCHOOL = School(
    "77GG00", "Google-school", GOOGLE, "sub", oidc=OidcUpstream(GOOGLE, "broker", SECRET)
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    assert run("init", tmp_path / "broker").exit_code == 0
    path = tmp_path / "broker" / "ketenbroker.toml"
    assert run("migrate", "--config", path).exit_code == 0
    return path


def dump(config: Path) -> list[str]:
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        return list(connection.iterdump())


def with_google_school(config: Path) -> None:
    registry = registry_of(config)
    try:
        registry.add_school(GOOGLE_SCHOOL, "")
    finally:
        registry.close()


def hosted_domain_of(config: Path, school_id: str) -> str:
    registry = registry_of(config)
    try:
        school = registry.school(school_id)
        assert school is not None and school.oidc is not None
        return school.oidc.hosted_domain
    finally:
        registry.close()


def add_oidc(config: Path, issuer: str, secret_file: Path, *extra: str) -> tuple[int, str]:
    result = run(
        "school", "add", "--config", config, "--id", "99ZZ00", "--name", "OIDC-school",
        "--oidc-issuer", issuer, "--client-id", "broker", "--client-secret-file", secret_file,
        *extra,
    )  # fmt: skip
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_a_google_school_is_not_added_without_its_hosted_domain(
    config: Path, secret_file: Path
) -> None:
    before = dump(config)
    code, output = add_oidc(config, GOOGLE, secret_file)
    assert code != 0
    assert "--hosted-domain" in output and "Google Workspace" in output
    code, output = add_oidc(config, GOOGLE + "/", secret_file, "--hosted-domain", "it@school.nl")
    assert code != 0 and "not an e-mail address" in output
    assert dump(config) == before


def test_a_hosted_domain_is_checked_and_stored_lower_cased(
    config: Path, secret_file: Path, provider: ForgeProvider
) -> None:
    code, output = add_oidc(config, provider.issuer, secret_file, "--hosted-domain", "School.NL")
    assert code == 0, output
    assert "hosted domain school.nl" in output
    assert hosted_domain_of(config, "99ZZ00") == "school.nl"
    listed = run("school", "list", "--config", config)
    assert "hosted domain school.nl" in listed.output
    # Its own issuer: the domain may go again.
    cleared = run("school", "update", "--config", config, "--id", "99ZZ00", "--clear-hosted-domain")
    assert cleared.exit_code == 0, cleared.output
    assert "hosted domain cleared" in cleared.output
    assert hosted_domain_of(config, "99ZZ00") == ""


def test_a_saml_school_has_no_hosted_domain(config: Path, tmp_path: Path) -> None:
    xml = tmp_path / "idp.xml"
    xml.write_text("<x/>")
    result = run(
        "school", "add", "--config", config, "--id", "10AA00", "--name", "SAML-school",
        "--saml-metadata", xml, "--hosted-domain", "school.nl",
    )  # fmt: skip
    assert result.exit_code != 0 and "--hosted-domain go with --oidc-issuer" in result.output


def test_a_google_school_without_one_is_told_the_fix_and_given_one(config: Path) -> None:
    with_google_school(config)
    listed = run("school", "list", "--config", config)
    assert "NO hosted domain: logins refused" in listed.output
    # Another change goes ahead (a new name makes no login less safe), with the warning.
    renamed = run("school", "update", "--config", config, "--id", "77GG00", "--name", "Nieuw")
    assert renamed.exit_code == 0, renamed.output
    assert "Give --hosted-domain with the school's Google Workspace domain" in renamed.output
    before = dump(config)
    wrong = run("school", "update", "--config", config, "--id", "77GG00", "--hosted-domain", "nl")
    assert wrong.exit_code != 0 and "not a domain name" in wrong.output
    both = run(
        "school", "update", "--config", config, "--id", "77GG00",
        "--hosted-domain", "school.nl", "--clear-hosted-domain",
    )  # fmt: skip
    assert both.exit_code != 0 and "not both" in both.output
    assert dump(config) == before

    given = run(
        "school", "update", "--config", config, "--id", "77GG00",
        "--hosted-domain", "school.nl", "--name", "Nieuw",
    )  # fmt: skip
    assert given.exit_code == 0, given.output
    assert "hosted domain set to school.nl" in given.output
    assert hosted_domain_of(config, "77GG00") == "school.nl"
    cleared = run("school", "update", "--config", config, "--id", "77GG00", "--clear-hosted-domain")
    assert cleared.exit_code != 0 and "--hosted-domain" in cleared.output
    assert hosted_domain_of(config, "77GG00") == "school.nl"


def test_the_registry_file_carries_the_hosted_domain_and_requires_it_for_google(
    config: Path, tmp_path: Path
) -> None:
    with_google_school(config)
    file = tmp_path / "export" / "registry.toml"
    file.parent.mkdir()
    assert run("registry", "export", "--config", config, file).exit_code == 0
    (file.parent / "77GG00.client-secret").write_text(SECRET + "\n")
    assert run("init", tmp_path / "fresh").exit_code == 0
    fresh = tmp_path / "fresh" / "ketenbroker.toml"
    assert run("migrate", "--config", fresh).exit_code == 0
    before = dump(fresh)
    refused = run("registry", "import", "--config", fresh, file)
    assert refused.exit_code != 0
    assert "hosted_domain" in refused.output and "Google Workspace" in refused.output
    assert dump(fresh) == before

    text = file.read_text(encoding="utf-8")
    file.write_text(text.replace("[schools.oidc]\n", '[schools.oidc]\nhosted_domain = "X.nl"\n'))
    imported = run("registry", "import", "--config", fresh, file)
    assert imported.exit_code == 0, imported.output
    assert hosted_domain_of(fresh, "77GG00") == "x.nl"
    again = tmp_path / "again.toml"
    assert run("registry", "export", "--config", fresh, again).exit_code == 0
    assert 'hosted_domain = "x.nl"' in again.read_text(encoding="utf-8")
