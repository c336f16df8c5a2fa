"""`ketenbroker keys` (broker/cli/key_commands.py) and the key set on disk (broker/keys): what
the operator reads, what a refused command leaves behind (nothing), and how a worker follows the
manifest (every few seconds, keeping the last good one when it breaks)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.cli.instance import init_instance
from broker.cli.key_commands import status_lines
from broker.cli.main import main
from broker.config import Settings, load_settings
from broker.core.errors import ConfigurationError
from broker.keys import rotation
from broker.keys.live import LiveKeySet
from broker.keys.manifest import generations_of, parse_manifest, read_manifest, render_manifest


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return init_instance(tmp_path / "broker", "https://broker.example", "x.example", "Test")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_status_of_a_fresh_instance_says_one_key_and_nothing_to_do(config: Path) -> None:
    code, out = run("keys", "status", "--config", str(config))
    assert code == 0, out
    assert "One key, the one the configuration names" in out
    assert "Signs now: key 1" in out and "SAML certificate SHA-256 fingerprint" in out
    assert "OIDC key id (RS256)" in out and "OIDC key id (ES256)" in out
    assert "keys rotate" in out and "Next key" not in out


def test_rotate_publishes_a_next_key_with_private_files_and_says_when_it_signs(
    config: Path,
) -> None:
    code, out = run("keys", "rotate", "--config", str(config))
    assert code == 0, out
    assert "Key 2 is published now and takes over signing on" in out
    assert "Next key: key 2" in out and "(in 8 days)" in out
    assert "then stays published until" in out
    settings = load_settings(config)
    assert settings.key_rotation is not None
    manifest = settings.key_rotation.manifest
    assert manifest == config.parent / "keys" / "key-set.toml"
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    new = generations_of(settings)[1]
    for path in (new.files.saml_key, new.files.oidc_rsa, new.files.oidc_ec):
        assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(new.files.saml_key.parent.stat().st_mode) == 0o700


def test_a_second_rotate_while_one_waits_is_refused_and_changes_nothing(config: Path) -> None:
    assert run("keys", "rotate", "--config", str(config))[0] == 0
    manifest = config.parent / "keys" / "key-set.toml"
    before = manifest.read_bytes()
    code, out = run("keys", "rotate", "--config", str(config))
    assert code == 1
    assert "key 2 is already waiting to take over" in out and "keys status" in out
    assert manifest.read_bytes() == before
    assert not (config.parent / "keys" / "key-3").exists()


def test_finish_before_any_retirement_says_so(config: Path) -> None:
    assert run("keys", "rotate", "--config", str(config))[0] == 0
    code, out = run("keys", "finish", "--config", str(config))
    assert code == 0 and "No key has retired yet" in out


def test_status_and_finish_after_retirement(config: Path) -> None:
    settings = load_settings(config)
    new = rotation.rotate(settings, 1_000_000.0)
    old = generations_of(settings)[0]
    assert old.retire_after is not None
    later = old.retire_after + 1
    text = "\n".join(status_lines(settings, later))
    assert (
        "Signs now: key 2 (since" in text and "key 1 has retired: `ketenbroker keys finish`" in text
    )
    during = "\n".join(status_lines(settings, new.signing_from + 60))
    assert "Old key: key 1" in during and "disappears from the metadata and JWKS on" in during
    assert "the old key disappears by itself" in during
    removed = rotation.finish(settings, later)
    assert [g.number for g in removed] == [1]
    assert [g.number for g in generations_of(settings)] == [2]
    # A rotation's own files go with their key; the configured ones are the operator's.
    assert settings.saml.signing_key.exists()
    rotation.rotate(settings, later)
    third_retires = generations_of(settings)[0].retire_after
    assert third_retires is not None
    rotation.finish(settings, third_retires)
    assert not new.files.saml_key.exists() and not new.files.saml_key.parent.exists()


def test_retention_covers_the_longest_lifetime(config: Path) -> None:
    settings = load_settings(config)
    # Metadata validUntil (7 days) outlasts an assertion (5 min) and an ID token (10 min).
    assert rotation.retain_seconds(settings) == 7 * 86400 + settings.saml.clock_skew_seconds


def test_manifest_round_trip(config: Path) -> None:
    settings = load_settings(config)
    rotation.rotate(settings, 1_000_000.0)
    manifest = config.parent / "keys" / "key-set.toml"
    generations = read_manifest(manifest)
    assert parse_manifest(render_manifest(generations, manifest.parent), manifest.parent) == (
        generations
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one"),
        ("[[key]]\nnumber = 0", "number"),
        ("[[key]]\nnumber = 1\nsaml_key = 'a'", "saml_key and saml_cert"),
        (
            "[[key]]\nnumber = 1\nsaml_key = 'a'\nsaml_cert = 'b'\npublished_from = 2030-01-01",
            "date and time with a zone",
        ),
        ("key = [", "not valid TOML"),
    ],
)
def test_a_bad_manifest_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_manifest(text, Path("/keys"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def live(settings: Settings, clock: Clock) -> LiveKeySet:
    return LiveKeySet(settings, clock=clock, monotonic=clock)


def test_a_worker_looks_at_the_manifest_only_every_check_seconds(config: Path) -> None:
    settings = load_settings(config)
    clock = Clock()
    keys = live(settings, clock)
    assert [g.number for g in keys.current().published] == [1]
    rotation.rotate(settings, clock())
    clock.now += 1
    assert [g.number for g in keys.current().published] == [1]  # not looked yet
    clock.now += settings.key_rotation.check_seconds  # type: ignore[union-attr]
    assert [g.number for g in keys.current().published] == [1, 2]


def test_a_broken_manifest_keeps_the_last_good_key_set(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(config)
    clock = Clock()
    rotation.rotate(settings, clock())
    keys = live(settings, clock)
    manifest = config.parent / "keys" / "key-set.toml"
    manifest.write_text("this is [ not a key set", encoding="utf-8")
    clock.now += 60
    with caplog.at_level(logging.ERROR):
        assert [g.number for g in keys.current().published] == [1, 2]
    assert any(getattr(r, "reason", "") == "key_set_unreadable" for r in caplog.records)
    # At start-up a broken manifest stops the worker, like a broken configuration.
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        live(settings, clock)


def test_a_manifest_that_vanishes_never_brings_back_the_configured_key(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a rotation the configured key (key 1) may be retired: a worker whose manifest
    disappears keeps the set it had, and says so."""
    settings = load_settings(config)
    clock = Clock()
    rotation.rotate(settings, clock())
    keys = live(settings, clock)
    assert [g.number for g in keys.current().published] == [1, 2]
    (config.parent / "keys" / "key-set.toml").unlink()
    clock.now += 60
    with caplog.at_level(logging.ERROR):
        assert [g.number for g in keys.current().published] == [1, 2]
    assert any(getattr(r, "reason", "") == "key_set_unreadable" for r in caplog.records)


@pytest.mark.parametrize(
    ("rotation_table", "message"),
    [
        ("publish_days = 1\npublish_seconds = 86400", "not both"),
        ("publish_seconds = 60", "at least metadata.cache_duration_seconds"),
        ("publish_weeks = 1", "unknown key"),
        ("check_seconds = 0", "check_seconds"),
    ],
)
def test_rotation_settings_are_checked(config: Path, rotation_table: str, message: str) -> None:
    config.write_text(
        config.read_text(encoding="utf-8") + f"\n[keys.rotation]\n{rotation_table}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match=message):
        load_settings(config)


def test_the_default_publish_period_outlasts_the_metadata_validity(config: Path) -> None:
    settings = load_settings(config)
    assert settings.key_rotation is not None
    assert settings.key_rotation.publish_seconds == (settings.metadata.valid_days + 1) * 86400
    config.write_text(
        config.read_text(encoding="utf-8") + "\n[keys.rotation]\npublish_days = 3\n",
        encoding="utf-8",
    )
    assert load_settings(config).key_rotation.publish_seconds == 3 * 86400  # type: ignore[union-attr]


def test_a_manifest_whose_key_files_are_missing_is_not_taken_up(config: Path) -> None:
    """Another machine's manifest copied before its key folder: keep the last good key set."""
    settings = load_settings(config)
    clock = Clock()
    keys = live(settings, clock)
    new = rotation.rotate(settings, clock())
    new.files.saml_cert.unlink()
    clock.now += 60
    assert [g.number for g in keys.current().published] == [1]


def test_a_short_publish_period_is_allowed_with_a_note(config: Path) -> None:
    config.write_text(
        config.read_text(encoding="utf-8") + "\n[keys.rotation]\npublish_days = 1\n",
        encoding="utf-8",
    )
    code, out = run("keys", "rotate", "--config", str(config))
    assert code == 0, out
    assert "(in 1 day)" in out and "shorter than the metadata's validity (7 days)" in out
