"""`ketenbroker school add --oidc-issuer`: a school with an OpenID provider, checked before it is
written. The provider is the test forge (tests/support/oidc_forge.py) on a loopback port.

Every refusal checks a message that says what is wrong, a non-zero exit, no traceback, and a
registry that is byte-for-byte what it was before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from broker.core.model import OidcUpstream, School
from tests.support.cli import registry_of, run
from tests.support.live import free_ports, serve_app
from tests.support.oidc_forge import ForgeProvider

SECRET = "the-client-secret-at-the-school"


@pytest.fixture(scope="module")
def provider() -> Iterator[ForgeProvider]:
    base_url = f"http://localhost:{free_ports(1)}"
    forge = ForgeProvider(base_url, "broker", SECRET, "http://127.0.0.1:8000/oidc/rp/callback")
    server = serve_app(base_url, forge.app())
    yield forge
    server.shutdown()
    server.server_close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    assert run("init", tmp_path / "broker").exit_code == 0
    return tmp_path / "broker" / "ketenbroker.toml"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


def registry_dump(config: Path) -> list[str]:
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        return list(connection.iterdump())


@pytest.fixture
def unchanged(config: Path) -> Iterator[Path]:
    run("migrate", "--config", config)
    before = registry_dump(config)
    yield config
    assert registry_dump(config) == before


def add(config: Path, *extra: str | Path) -> Result:
    return run(
        "school", "add", "--config", config, "--id", "99ZZ00", "--name", "OIDC-school", *extra
    )


def test_an_oidc_school_is_checked_and_registered(
    config: Path, provider: ForgeProvider, secret_file: Path
) -> None:
    result = add(
        config, "--oidc-issuer", provider.issuer, "--client-id", "broker",
        "--client-secret-file", secret_file, "--subject", "oid", "--alg", "RS256",
        "--scope", "school.example",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    # The URIs to register at the school's provider: redirect, post-logout and back-channel.
    assert "/oidc/rp/callback/99ZZ00" in result.output
    assert "/oidc/rp/logout/99ZZ00" in result.output
    assert "Back-channel logout URI to register there: " in result.output
    assert "/oidc/rp/backchannel-logout/99ZZ00" in result.output
    registry = registry_of(config)
    try:
        expected = School(
            "99ZZ00",
            "OIDC-school",
            provider.issuer,
            subject_attribute="oid",
            scopes=("school.example",),
            oidc=OidcUpstream(provider.issuer, "broker", SECRET, ("RS256",)),
        )
        assert registry.school("99ZZ00") == expected
        assert registry.schools_by_idp(provider.issuer) == (expected,)
    finally:
        registry.close()


def expect_refusal(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert "Traceback" not in result.output


def test_saml_and_oidc_exclude_each_other(
    unchanged: Path, provider: ForgeProvider, secret_file: Path, tmp_path: Path
) -> None:
    xml = tmp_path / "idp.xml"
    xml.write_text("<x/>")
    result = add(
        unchanged, "--saml-metadata", xml, "--oidc-issuer", provider.issuer,
        "--client-id", "broker", "--client-secret-file", secret_file,
    )  # fmt: skip
    expect_refusal(result, "either --saml-metadata or --oidc-issuer")
    expect_refusal(add(unchanged), "either --saml-metadata or --oidc-issuer")
    result = add(unchanged, "--saml-metadata", xml, "--client-id", "broker")
    expect_refusal(result, "go with --oidc-issuer")


def test_the_secret_comes_from_a_file(
    unchanged: Path, provider: ForgeProvider, tmp_path: Path
) -> None:
    result = add(unchanged, "--oidc-issuer", provider.issuer, "--client-id", "broker")
    expect_refusal(result, "--client-secret-file")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    result = add(
        unchanged, "--oidc-issuer", provider.issuer, "--client-id", "broker",
        "--client-secret-file", empty,
    )  # fmt: skip
    expect_refusal(result, "one line")
    result = add(
        unchanged, "--oidc-issuer", provider.issuer, "--client-id", "broker",
        "--client-secret-file", tmp_path / "absent.txt",
    )  # fmt: skip
    expect_refusal(result, "cannot read")


@pytest.mark.parametrize(
    ("issuer_suffix", "extra", "message"),
    [
        ("/other", (), "answered HTTP 404"),  # no discovery document there
        ("", ("--alg", "HS256"), "HS256 not allowed"),
        ("", ("--alg", "none"), "none not allowed"),
        ("", ("--alg", "ES256"), "signs ID tokens with RS256"),
        ("", ("--subject", "affiliation"), "cannot identify a student"),
        ("", ("--subject", "username"), "--scope"),  # no realm: no user name is passed on
    ],
)
def test_bad_providers_and_options_are_refused(
    unchanged: Path,
    provider: ForgeProvider,
    secret_file: Path,
    issuer_suffix: str,
    extra: tuple[str, ...],
    message: str,
) -> None:
    result = add(
        unchanged, "--oidc-issuer", provider.issuer + issuer_suffix, "--client-id", "broker",
        "--client-secret-file", secret_file, *extra,
    )  # fmt: skip
    expect_refusal(result, message)


def test_an_issuer_that_differs_from_the_document_is_refused(
    unchanged: Path, provider: ForgeProvider, secret_file: Path
) -> None:
    # Same host, but registered with a trailing slash: the document names another issuer.
    result = add(
        unchanged, "--oidc-issuer", provider.issuer + "/", "--client-id", "broker",
        "--client-secret-file", secret_file,
    )  # fmt: skip
    expect_refusal(result, "issuer differs")


def test_plain_http_to_a_public_host_is_refused(unchanged: Path, secret_file: Path) -> None:
    result = add(
        unchanged, "--oidc-issuer", "http://op.school.example", "--client-id", "broker",
        "--client-secret-file", secret_file,
    )  # fmt: skip
    expect_refusal(result, "https")
