"""`ketenbroker pseudonym-key …` and the key set file it extends (pseudonym_key_file.py).

Refusals check the message, a non-zero exit and that neither the registry nor the key set file
changed. No output ever carries key material.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.config import load_settings
from broker.core.errors import ConfigurationError
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.pseudonym_key_file import PseudonymKeyFile, add_key_version, read_key_set
from broker.registry import SqlRegistry
from tests.support.cli import run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """An instance with two chains, an OIDC service in one and an OIDC service in none."""
    folder = tmp_path / "broker"
    assert run("init", folder).exit_code == 0
    path = folder / "ketenbroker.toml"
    for chain in ("leermiddelen", "toetsen"):
        assert run("chain", "add", "--config", path, "--id", chain, "--name", chain).exit_code == 0
    in_chains: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("leesboek", ("--chain", "leermiddelen")),
        ("los", ()),
    )
    for service, in_chain in in_chains:
        result = run(
            "publisher", "add", "--config", path, "--id", service, "--name", service,
            "--oidc-redirect-uri", f"https://{service}.example/cb", *in_chain,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return path


def key_file(config: Path) -> Path:
    return config.parent / "keys" / "pseudonym-keys.toml"


def state(config: Path) -> tuple[bytes, list[str]]:
    """The key set file's bytes and the registry's dump: what a refusal must leave alone."""
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        dump = list(connection.iterdump())
    return key_file(config).read_bytes(), dump


def refused_import(config: Path, file: Path, *said: str) -> None:
    """`registry import` of `file` refused (exit code 1), saying each of `said`, and the
    registry and the key set file unchanged."""
    before = state(config)
    refused = run("registry", "import", "--config", config, file)
    assert refused.exit_code == 1, refused.output
    for part in said:
        assert part in refused.output, refused.output
    assert state(config) == before


def no_key_material(config: Path, output: str) -> None:
    for key in read_key_set(key_file(config)).keys.values():
        assert key.hex() not in output


def test_status_before_any_rotation(config: Path) -> None:
    result = run("pseudonym-key", "status", "--config", config)
    assert result.exit_code == 0, result.output
    assert "Key set: versions 1; chains never rotated use 1." in result.output
    for chain in ("leermiddelen", "toetsen", "service:los"):
        assert f"{chain}: version 1\n" in result.output


def test_status_says_the_files_previous_releases_nothing(config: Path) -> None:
    path = key_file(config)
    key = read_key_set(path).keys[1].hex()
    path.write_text(f'current = 2\nprevious = 1\n[keys]\n"1" = "{key}"\n"2" = "{"ab" * 32}"\n')
    result = run("pseudonym-key", "status", "--config", config)
    assert result.exit_code == 0, result.output
    assert "`previous = 1` releases nothing" in result.output
    no_key_material(config, result.output)


def test_rotate_adds_a_version_points_the_chain_and_opens_the_window(config: Path) -> None:
    version_1 = read_key_set(key_file(config)).keys[1]
    result = run("pseudonym-key", "rotate", "--config", config, "--chain", "leermiddelen",
                 "--window", "30")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Key set: version 2 added (key material not shown)." in result.output
    assert "Chain leermiddelen: key version 2 (was 1); migration window until" in result.output
    no_key_material(config, result.output)
    keys = read_key_set(key_file(config))
    assert sorted(keys.keys) == [1, 2] and keys.current_version == 1
    assert keys.keys[1] == version_1 and len(keys.keys[2]) == 32
    assert stat.S_IMODE(key_file(config).stat().st_mode) == 0o600
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        record = registry.pseudonym_key_version("leermiddelen")
        assert record is not None
        assert (record.current_version, record.previous_version) == (2, 1)
        assert registry.pseudonym_key_version("toetsen") is None
    finally:
        registry.close()
    status = run("pseudonym-key", "status", "--config", config).output
    assert "leermiddelen: version 2; window open until" in status
    assert "(previous version 1 released too)" in status
    assert "toetsen: version 1\n" in status


def test_rotate_under_a_uid_without_a_passwd_entry_records_the_uid(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container run under a uid /etc/passwd does not list (OpenShift, `docker run --user`):
    getpwuid raises KeyError. The rotation still completes, in the key set file and in the
    registry, recorded as made by `cli:uid:N` (it once failed after adding the version to the
    file, before recording it)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # getuser() asks these first
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    result = run("pseudonym-key", "rotate", "--config", config, "--chain", "leermiddelen",
                 "--window", "30")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(read_key_set(key_file(config)).keys) == [1, 2]
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        rows = connection.execute(
            "SELECT current_version, changed_by FROM pseudonym_key_versions WHERE chain = ?",
            ("leermiddelen",),
        ).fetchall()
    assert rows == [(2, f"cli:uid:{os.getuid()}")]


def test_rotating_twice_is_refused_and_changes_nothing(config: Path) -> None:
    args = ("pseudonym-key", "rotate", "--config", config, "--chain", "leermiddelen")
    assert run(*args, "--window", "30").exit_code == 0
    before = state(config)
    result = run(*args, "--window", "10")
    assert result.exit_code != 0
    assert "chain leermiddelen is in a migration window until" in result.output
    assert "finish it first" in result.output
    assert state(config) == before


def test_another_chain_reuses_the_newer_version_and_finish_ends_the_window(config: Path) -> None:
    rotate = ("pseudonym-key", "rotate", "--config", config, "--window", "7")
    assert run(*rotate, "--chain", "leermiddelen").exit_code == 0
    result = run(*rotate, "--chain", "toetsen")
    assert result.exit_code == 0, result.output
    assert "added" not in result.output  # version 2 exists: chains stay apart by their input
    assert sorted(read_key_set(key_file(config)).keys) == [1, 2]
    finish = run("pseudonym-key", "finish", "--config", config, "--chain", "leermiddelen")
    assert finish.exit_code == 0, finish.output
    assert "migration window finished; key version 2 alone" in finish.output
    status = run("pseudonym-key", "status", "--config", config).output
    assert "leermiddelen: version 2\n" in status
    assert "toetsen: version 2; window open" in status
    before = state(config)
    again = run("pseudonym-key", "finish", "--config", config, "--chain", "leermiddelen")
    assert again.exit_code != 0 and "no migration window to finish" in again.output
    assert state(config) == before


def test_a_service_in_no_chain_is_rotated_as_a_chain_of_its_own(config: Path) -> None:
    result = run("pseudonym-key", "rotate", "--config", config, "--service", "los",
                 "--window", "14")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Chain service:los: key version 2 (was 1)" in result.output
    # The hint is the whole command, pasted as it stands (--config included).
    assert f"pseudonym-key finish --config {config} --service los" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--chain", "onbekend", "--window", "7"), "unknown chain 'onbekend'"),
        (("--service", "leesboek", "--window", "7"), "is in chain leermiddelen"),
        (("--service", "onbekend", "--window", "7"), "unknown service 'onbekend'"),
        (("--window", "7"), "give --chain"),
        (("--chain", "toetsen", "--service", "los", "--window", "7"), "give --chain"),
        (("--chain", "toetsen", "--window", "0"), "1 to 366 days"),
    ],
)
def test_bad_rotations_are_refused_and_change_nothing(
    config: Path, args: tuple[str, ...], message: str
) -> None:
    before = state(config)
    result = run("pseudonym-key", "rotate", "--config", config, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert state(config) == before


def test_a_key_set_from_the_environment_cannot_be_extended(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETENBROKER_PSEUDONYM_KEYS", key_file(config).read_text(encoding="utf-8"))
    before = state(config)
    result = run("pseudonym-key", "rotate", "--config", config, "--chain", "toetsen",
                 "--window", "7")  # fmt: skip
    assert result.exit_code != 0
    assert "the key set comes from KETENBROKER_PSEUDONYM_KEYS: add version 2" in result.output
    assert state(config) == before


def test_add_prepares_a_version_that_the_next_rotation_uses(config: Path) -> None:
    added = run("pseudonym-key", "add", "--config", config)
    assert added.exit_code == 0, added.output
    assert "version 2 added" in added.output
    no_key_material(config, added.output)
    result = run("pseudonym-key", "rotate", "--config", config, "--chain", "toetsen",
                 "--window", "7")  # fmt: skip
    assert result.exit_code == 0 and "added" not in result.output


# -- the key set file -----------------------------------------------------------------------------
def test_a_worker_reads_a_version_added_after_it_started(config: Path) -> None:
    path = key_file(config)
    worker = PseudonymKeyFile(path, read_key_set(path))
    assert sorted(worker.key_set().keys) == [1]
    with pytest.raises(ConfigurationError, match="version 2, which the key set"):
        worker.key_set_holding(frozenset({1, 2}))
    added = add_key_version(path, 2)
    assert worker.key_set_holding(frozenset({1, 2})).keys == added.keys
    assert sorted(worker.key_set().keys) == [1, 2]


def test_concurrent_additions_give_one_version_one_key(config: Path) -> None:
    path = key_file(config)
    results: list[bytes] = []

    def add() -> None:
        results.append(add_key_version(path, 2).keys[2])

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert read_key_set(path).keys[2] == results[0]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".pseudonym-keys")]


# -- registry export and import ------------------------------------------------------------------
def test_export_carries_key_versions_and_import_restores_them(config: Path, tmp_path: Path) -> None:
    rotate = ("pseudonym-key", "rotate", "--config", config, "--window", "7")
    assert run(*rotate, "--chain", "leermiddelen").exit_code == 0
    assert run(*rotate, "--service", "los").exit_code == 0
    assert run("pseudonym-key", "finish", "--config", config, "--service", "los").exit_code == 0
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert '[[pseudonym_key_versions]]\nchain = "leermiddelen"\ncurrent_version = 2\n' in text
    assert "previous_version = 1\nwindow_ends = " in text
    assert '[[pseudonym_key_versions]]\nchain = "service:los"\ncurrent_version = 2\n' in text

    # A registry rebuilt from the file keeps every chain on its version.
    fresh = tmp_path / "fresh"
    assert run("init", fresh).exit_code == 0
    fresh_config = fresh / "ketenbroker.toml"
    result = run("registry", "import", "--config", fresh_config, exported)
    assert result.exit_code == 0, result.output
    assert "added    pseudonym key version leermiddelen" in result.output
    status = run("pseudonym-key", "status", "--config", fresh_config).output
    assert "leermiddelen: version 2; window open until" in status
    assert "service:los: version 2\n" in status
    # The same file again changes nothing.
    again = run("registry", "import", "--config", fresh_config, exported)
    assert again.exit_code == 0 and "added" not in again.output.replace("0 added", "")


def test_an_import_never_moves_a_chains_key_version(config: Path, tmp_path: Path) -> None:
    args = ("pseudonym-key", "rotate", "--config", config, "--chain", "leermiddelen")
    assert run(*args, "--window", "7").exit_code == 0
    stale = tmp_path / "stale.toml"
    assert run("registry", "export", "--config", config, stale).exit_code == 0
    finish = ("pseudonym-key", "finish", "--config", config, "--chain", "leermiddelen")
    assert run(*finish).exit_code == 0
    before = state(config)
    result = run("registry", "import", "--config", config, stale)
    assert result.exit_code != 0
    assert "an import never moves a chain's pseudonym key" in result.output
    assert state(config) == before


def test_status_says_when_a_window_ended_by_itself(config: Path) -> None:
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        ended = ChainKeyVersion("toetsen", 2, 1, datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
        registry.pseudonym_keys.replace(None, ended, "test")
    finally:
        registry.close()
    status = run("pseudonym-key", "status", "--config", config).output
    assert "toetsen: version 2; window ended 2026-01-02 03:04 UTC" in status
    assert "(version 1 no longer released)" in status
    # An ended window does not block the next rotation.
    result = run("pseudonym-key", "rotate", "--config", config, "--chain", "toetsen",
                 "--window", "5")  # fmt: skip
    assert result.exit_code == 0 and "key version 3 (was 2)" in result.output


def test_an_imported_key_window_ends_at_most_the_longest_window_from_now(
    config: Path, tmp_path: Path
) -> None:
    """`pseudonym-key rotate --window` opens at most 366 days; a file may not add a record
    whose window ends later (a previous pseudonym for years), into a fresh registry either."""
    assert run("pseudonym-key", "rotate", "--config", config, "--chain", "toetsen",
               "--window", "7").exit_code == 0  # fmt: skip
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    far = tmp_path / "far.toml"
    start = text.index("window_ends = ", text.index('chain = "toetsen"'))
    end = text.index("\n", start)
    far.write_text(text[:start] + "window_ends = 2099-01-01T00:00:00Z" + text[end:])
    fresh = tmp_path / "fresh"
    assert run("init", fresh).exit_code == 0
    fresh_config = fresh / "ketenbroker.toml"
    refused_import(
        fresh_config,
        far,
        "pseudonym_key_versions[1]: window_ends: the window ends 2099-01-01 00:00 UTC, more "
        "than 366 days from now (at most ",
    )
    # The file as exported, its window a week long, imports.
    assert run("registry", "import", "--config", fresh_config, exported).exit_code == 0
