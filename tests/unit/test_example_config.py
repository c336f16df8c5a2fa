"""config/ketenbroker.example.toml stays loadable and in step with what `ketenbroker init` writes.

The example is documentation; these tests make it fail the build the day it drifts from the
loader (broker/config.py) or from the generated configuration (broker/cli/instance.py).
"""

from __future__ import annotations

import functools
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from broker.certificates import self_signed_pair
from broker.cli.instance import CONFIG_TEMPLATE, pseudonym_key_set
from broker.config import settings_from_mapping
from broker.core.receipts import ReceiptKeys
from broker.store import MemoryStore, RedisStore, open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "ketenbroker.example.toml"


def _example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def _key_paths(data: Mapping[str, Any], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict):
            paths |= _key_paths(value, f"{prefix}{key}.")
        else:
            paths.add(f"{prefix}{key}")
    return paths


@functools.cache
def _signing_pair() -> tuple[bytes, bytes]:
    """One RSA key pair for the whole module: key generation is the slow part here."""
    return self_signed_pair("broker.example.org")


def _write_key_files(base: Path, data: Mapping[str, Any]) -> None:
    """Real files where the example's [keys] paths point, relative to `base`."""
    keys = data["keys"]
    key_pem, cert_pem = _signing_pair()
    for name, content in (
        ("saml_signing_key", key_pem),
        ("saml_signing_cert", cert_pem),
        ("pseudonym_keys", pseudonym_key_set()),
        ("session_secret", secrets.token_urlsafe(48).encode()),
        ("receipt_key", secrets.token_hex(32).encode()),
    ):
        path = base / keys[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


@pytest.fixture(autouse=True)
def _no_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KETENBROKER_SECRET_KEY", raising=False)
    monkeypatch.delenv("KETENBROKER_PSEUDONYM_KEYS", raising=False)
    monkeypatch.delenv("KETENBROKER_RECEIPT_KEY", raising=False)


def test_example_has_the_keys_init_writes() -> None:
    generated = tomllib.loads(
        CONFIG_TEMPLATE.format(base_url="https://b.example", scope="b.example", organization="B")
    )
    assert _key_paths(_example()) == _key_paths(generated)


def test_example_loads_with_key_files(tmp_path: Path) -> None:
    data = _example()
    _write_key_files(tmp_path, data)

    settings = settings_from_mapping(data, tmp_path, tmp_path / "ketenbroker.toml")

    assert settings.base_url == data["broker"]["base_url"]
    assert settings.scope == data["broker"]["scope"]
    assert settings.saml.signing_key == tmp_path / data["keys"]["saml_signing_key"]
    assert settings.saml.signing_key.is_file()
    assert settings.saml.signing_cert.is_file()
    assert settings.pseudonym_keys.current_version == 1
    # A relative SQLite path resolves against the configuration's folder.
    assert settings.registry_url == f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    assert settings.store_url == data["store"]["url"]
    assert settings.saml.clock_skew_seconds == data["saml"]["clock_skew_seconds"]
    assert settings.saml.assertion_lifetime_seconds == data["saml"]["assertion_lifetime_seconds"]
    assert settings.login_ttl_seconds == data["login"]["ttl_seconds"]
    assert settings.sso_session_seconds == data["login"]["sso_session_seconds"]
    assert settings.organization.name == data["organization"]["name"]
    assert settings.organization.contact_email == data["organization"]["contact_email"]


def test_example_loads_with_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _example()
    key_pem, cert_pem = _signing_pair()
    (tmp_path / "keys").mkdir()
    (tmp_path / data["keys"]["saml_signing_key"]).write_bytes(key_pem)
    (tmp_path / data["keys"]["saml_signing_cert"]).write_bytes(cert_pem)
    key = bytes(range(32))
    monkeypatch.setenv("KETENBROKER_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("KETENBROKER_PSEUDONYM_KEYS", f'current = 1\n[keys]\n"1" = "{key.hex()}"\n')
    monkeypatch.setenv("KETENBROKER_RECEIPT_KEY", "cd" * 32)

    # The secret files named in [keys] do not exist: the environment must be enough.
    settings = settings_from_mapping(data, tmp_path, None)

    assert settings.secret_key == b"s" * 40
    assert settings.pseudonym_keys.current == key
    assert settings.receipts.keys == ReceiptKeys.from_key(bytes.fromhex("cd" * 32))


def _commented_alternatives(section: str) -> list[str]:
    """The `url = "..."` values shown as comments under [section] in the example."""
    text = EXAMPLE.read_text(encoding="utf-8")
    body = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
    return re.findall(r'^#.*\burl = "([^"]+)"', body, flags=re.MULTILINE)


def test_commented_store_alternatives_open_a_redis_store() -> None:
    alternatives = _commented_alternatives("store")
    assert len(alternatives) == 5
    for url in alternatives:
        # open_store connects to nothing; it only picks and configures the implementation.
        assert isinstance(open_store(url), RedisStore)
    assert isinstance(open_store(_example()["store"]["url"]), MemoryStore)


def test_commented_registry_alternative_is_postgresql(tmp_path: Path) -> None:
    (alternative,) = _commented_alternatives("registry")
    assert alternative.startswith("postgresql+psycopg://")
    data = _example()
    data["registry"]["url"] = alternative
    _write_key_files(tmp_path, data)
    assert settings_from_mapping(data, tmp_path, None).registry_url == alternative


@pytest.mark.parametrize(
    ("key", "field", "default"),
    [
        ("statement_timeout_seconds", "registry_statement_timeout_seconds", 2),
        ("portal_statement_timeout_seconds", "registry_portal_statement_timeout_seconds", 30),
    ],
)
def test_the_commented_registry_timeouts_load(
    tmp_path: Path, key: str, field: str, default: int
) -> None:
    """Each statement timeout, shown as a comment under [registry] with its default,
    uncommented, is that default; without it the web workers get the same."""
    text = EXAMPLE.read_text(encoding="utf-8")
    body = text.split("[registry]", 1)[1].split("\n[", 1)[0]
    (line,) = re.findall(rf"^# ({key} = \d+)$", body, flags=re.MULTILINE)
    data = _example()
    _write_key_files(tmp_path, data)
    unset = getattr(settings_from_mapping(data, tmp_path, None), field)
    data["registry"].update(tomllib.loads(line))
    written = getattr(settings_from_mapping(data, tmp_path, None), field)
    assert written == unset == default


def test_the_commented_metadata_source_loads(tmp_path: Path) -> None:
    """The `[[metadata.sources]]` block shown as comments, uncommented, is a valid source."""
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text.split("# [[metadata.sources]]\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.removeprefix("# ") for line in block.splitlines() if "=" in line]
    source = tomllib.loads("\n".join(lines))
    data = _example()
    data["metadata"] = {"sources": [source]}
    _write_key_files(tmp_path, data)
    (loaded,) = settings_from_mapping(data, tmp_path, None).metadata.sources
    assert loaded.name == "federation"
    assert loaded.registration_authorities == ("https://www.federation.example/",)


def test_the_commented_ui_keys_load(tmp_path: Path) -> None:
    """The metadata UIInfo keys shown as comments under [organization], uncommented, load as
    the organization's display names, pages and logo."""
    text = EXAMPLE.read_text(encoding="utf-8")
    body = text.split("[organization]", 1)[1].split("\n[", 1)[0]
    keys = ("display_name_", "information_url", "privacy_statement_url", "logo_")
    lines = re.findall(rf"^# ((?:{'|'.join(keys)})\w* = .+)$", body, flags=re.MULTILINE)
    assert len(lines) == 7
    data = _example()
    data["organization"].update(tomllib.loads("\n".join(lines)))
    _write_key_files(tmp_path, data)
    org = settings_from_mapping(data, tmp_path, None).organization
    assert (org.display_name("nl"), org.display_name("en")) == (
        "Ketenbroker van Voorbeeld",
        "Example Ketenbroker",
    )
    assert org.information_url == "https://www.example.org/ketenbroker"
    assert org.privacy_statement_url == "https://www.example.org/privacy"
    assert org.logo is not None and (org.logo.width, org.logo.height) == (80, 60)
