"""Shared by the adapter tests: none reads the broker's settings from the environment of the
machine that runs them (a developer's shell may set them)."""

from __future__ import annotations

import pytest

_SETTINGS_FROM_THE_ENVIRONMENT = (
    "KETENBROKER_CONFIG",
    "KETENBROKER_SECRET_KEY",
    "KETENBROKER_PSEUDONYM_KEYS",
    "KETENBROKER_RECEIPT_KEY",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SETTINGS_FROM_THE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
