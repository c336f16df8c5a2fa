"""The [metrics] section: who may read /metrics, validated at start-up with the key named."""

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
    monkeypatch.delenv("KETENBROKER_METRICS_TOKEN", raising=False)


def config(**metrics: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "broker": {"base_url": "https://broker.example", "scope": "broker.example"},
        "keys": {"saml_signing_key": "k.pem", "saml_signing_cert": "k.crt"},
        "registry": {"url": "sqlite:///r.sqlite3"},
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
