"""Operations settings: who may read /metrics ([metrics]), and passwords for the registry and
the store from files (container secrets), validated at start-up with the key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.config import settings_from_mapping
from broker.core.errors import ConfigurationError

TOKEN = "t" * 40


@pytest.fixture(autouse=True)
def _secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETENBROKER_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("KETENBROKER_PSEUDONYM_KEYS", f'current = 1\n[keys]\n"1" = "{"ab" * 32}"\n')
    monkeypatch.setenv("KETENBROKER_RECEIPT_KEY", "cd" * 32)
    monkeypatch.delenv("KETENBROKER_METRICS_TOKEN", raising=False)


def config(
    registry: dict[str, str] | None = None, store: dict[str, str] | None = None, **metrics: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "broker": {"base_url": "https://broker.example", "scope": "broker.example"},
        "keys": {"saml_signing_key": "k.pem", "saml_signing_cert": "k.crt"},
        "registry": registry or {"url": "sqlite:///r.sqlite3"},
        "store": store or {"url": "memory://"},
    }
    if metrics:
        data["metrics"] = metrics
    return data


def test_default_is_loopback_only_without_a_token(tmp_path: Path) -> None:
    metrics = settings_from_mapping(config(), tmp_path, None).metrics
    assert metrics.allow_loopback is True
    assert metrics.token is None


def test_token_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "metrics-token").write_text(TOKEN + "\n", encoding="utf-8")
    metrics = settings_from_mapping(
        config(token_file="metrics-token", allow_loopback=False), tmp_path, None
    ).metrics
    assert metrics.token == TOKEN
    assert metrics.allow_loopback is False
    assert TOKEN not in repr(metrics)


def test_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETENBROKER_METRICS_TOKEN", TOKEN)
    assert settings_from_mapping(config(), tmp_path, None).metrics.token == TOKEN


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"allow_loopback": "yes"}, r"metrics\.allow_loopback must be true or false"),
        ({"token_file": ""}, r"metrics\.token_file must be a non-empty string"),
        ({"token_file": "missing"}, r"metrics\.token_file: cannot read"),
        ({"token_file": "short"}, r"metrics\.token_file must hold at least 32 characters"),
    ],
)
def test_bad_metrics_settings_name_the_key(
    tmp_path: Path, metrics: dict[str, Any], message: str
) -> None:
    (tmp_path / "short").write_text("abc", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        settings_from_mapping(config(**metrics), tmp_path, None)


def test_passwords_from_files_go_into_the_urls(tmp_path: Path) -> None:
    (tmp_path / "pg").write_text("p@ss/word\n", encoding="utf-8")
    (tmp_path / "redis").write_text("r:pw", encoding="utf-8")
    settings = settings_from_mapping(
        config(
            registry={"url": "postgresql+psycopg://kb@db:5432/kb", "password_file": "pg"},
            store={"url": "redis+sentinel://s1:26379,s2/kb/0", "password_file": "redis"},
        ),
        tmp_path,
        None,
    )
    assert settings.registry_url == "postgresql+psycopg://kb:p%40ss%2Fword@db:5432/kb"
    assert settings.store_url == "redis+sentinel://:r%3Apw@s1:26379,s2/kb/0"
    assert "p@ss" not in repr(settings)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"url": "redis://:inline@r/0", "password_file": "pw"}, "in the URL or in password_file"),
        ({"url": "redis://r/0", "password_file": "missing"}, r"store\.password_file: cannot read"),
        ({"url": "redis://r/0", "password_file": "empty"}, r"store\.password_file: .* is empty"),
        ({"url": "redis://r/0", "password_file": ""}, r"store\.password_file must be"),
    ],
)
def test_bad_password_files_name_the_key(
    tmp_path: Path, section: dict[str, str], message: str
) -> None:
    (tmp_path / "pw").write_text("secret", encoding="utf-8")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as raised:
        settings_from_mapping(config(store=section), tmp_path, None)
    assert "inline" not in str(raised.value)
