"""Times shown to people are in the broker's time zone (`broker.time_zone`), with its
abbreviation; an unknown zone stops the start with a clear error."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel import Locale

from broker.cli.instance import CONFIG_NAME, init_instance
from broker.config import Settings, load_settings, settings_from_mapping
from broker.core.errors import ConfigurationError
from broker.web.labels import shown_day, shown_time

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def test_seconds_are_shown_in_the_zone_with_its_abbreviation() -> None:
    assert shown_time(1768433400, AMSTERDAM) == "2026-01-15 00:30 CET"  # 23:30 UTC
    assert shown_time(1782945000, AMSTERDAM) == "2026-07-02 00:30 CEST"  # 22:30 UTC
    assert shown_time(1768433400, ZoneInfo("UTC")) == "2026-01-14 23:30 UTC"


def test_datetimes_without_a_zone_are_utc() -> None:
    stored = datetime(2026, 1, 14, 23, 30)  # as a registry column may hand it back
    assert shown_time(stored, AMSTERDAM) == "2026-01-15 00:30 CET"
    assert shown_time(stored.replace(tzinfo=UTC), AMSTERDAM) == "2026-01-15 00:30 CET"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    directory = tmp_path_factory.mktemp("time-zone")
    init_instance(directory, "https://broker.example", "broker.example", "Testbroker")
    return load_settings(directory / CONFIG_NAME)


def _with(instance: Settings, value: object) -> Settings:
    assert instance.source is not None
    data = tomllib.loads(instance.source.read_text(encoding="utf-8"))
    data["broker"]["time_zone"] = value
    return settings_from_mapping(data, Path(instance.source).parent, instance.source)


def test_init_writes_amsterdam_and_it_is_the_default(instance: Settings) -> None:
    assert instance.time_zone == "Europe/Amsterdam" and instance.zone == AMSTERDAM
    assert replace(instance, time_zone="UTC").zone == ZoneInfo("UTC")


@pytest.mark.parametrize("value", ["Mars/Olympus_Mons", "", "../../etc/passwd", 1, None])
def test_an_unknown_time_zone_is_refused(instance: Settings, value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"broker\.time_zone"):
        _with(instance, value)


def test_another_zone_is_accepted(instance: Settings) -> None:
    assert _with(instance, "UTC").time_zone == "UTC"


def test_a_student_reads_day_month_and_minute_and_the_year_only_when_another() -> None:
    now = 1796037780  # 2026-11-30 11:23 UTC
    dutch, english = Locale.parse("nl"), Locale.parse("en")
    assert shown_day(now, AMSTERDAM, dutch, now) == "30 november om 12:23"
    assert shown_day(now, AMSTERDAM, english, now) == "30 November at 12:23"
    # 2025-12-31 23:30 UTC is New Year's Day in Amsterdam: this year, so no year.
    assert shown_day(1767223800, AMSTERDAM, english, now) == "1 January at 00:30"
    assert shown_day(1735687800, AMSTERDAM, dutch, now) == "1 januari 2025 om 00:30"
    # Another language: its own month names, no joining word.
    assert shown_day(now, AMSTERDAM, Locale.parse("de"), now) == "30 November 12:23"
