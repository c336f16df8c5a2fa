"""`ketenbroker chain move --window`: the move record it writes (the chain left, its key version,
the end), what `chain list` and `pseudonym-key status` say of it, `--finish`, every refusal
(exit code 1, one line, registry and key set file unchanged), the registry file's round trip
and a service's removal taking its record with it."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.adapters.test_cli_pseudonym_key import (
    config,  # noqa: F401  # a fixture
    refused_import,
    state,
)
from tests.support.cli import run

CONFIRMATION_NEEDED = 3


def _moves(config: Path) -> list[tuple[object, ...]]:  # noqa: F811 - a path, not the fixture
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        return connection.execute(
            "SELECT service_id, from_chain, from_version, to_chain FROM chain_moves"
        ).fetchall()


def _move(config: Path, *args: str) -> str:  # noqa: F811
    result = run("chain", "move", *args, "--yes", "--config", config)
    assert result.exit_code == 0, result.output
    return result.output


def _refused(config: Path, args: tuple[str, ...], said: str) -> None:  # noqa: F811
    before = state(config)
    result = run(*args, "--config", config)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {said}"), result.output
    assert len(result.output.splitlines()) == 1
    assert state(config) == before


def test_a_move_with_a_window_records_the_chain_it_left_and_says_so(
    config: Path,  # noqa: F811 - the imported fixture
) -> None:
    before = state(config)
    plan = run("chain", "move", "leesboek", "--to", "toetsen", "--window", "30", "--config", config)
    assert plan.exit_code == CONFIRMATION_NEEDED, plan.output
    assert "  With a migration window until " in plan.output
    assert (
        "the service would receive, beside the new pseudonym, the one it used to receive "
        "(leermiddelen, key version 1) as urn:ketenbroker:previous-pseudonym (SAML) and "
        "previous_sub (OIDC)." in plan.output
    )
    assert state(config) == before

    moved = _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    assert "the service receives, beside the new pseudonym, the one it used to receive" in moved
    assert "chain move --config " in moved and " leesboek --finish" in moved
    assert _moves(config) == [("leesboek", "leermiddelen", 1, "toetsen")]

    status = run("pseudonym-key", "status", "--config", config).output
    assert "service leesboek (in toetsen): moved from leermiddelen (version 1); window open " in (
        status
    )
    listed = {e["id"]: e for e in map(json.loads, run("chain", "list", "--json", "--config",
                                                          config).output.splitlines())}  # fmt: skip
    assert listed["toetsen"]["move_windows"].startswith("leesboek from leermiddelen until ")
    assert listed["leermiddelen"]["move_windows"] is None

    finished = run("chain", "move", "leesboek", "--finish", "--config", config)
    assert finished.exit_code == 0, finished.output
    assert "migration window of its move from leermiddelen finished" in finished.output
    assert _moves(config) == []


def test_without_a_window_no_record_and_the_text_says_so(
    config: Path,  # noqa: F811
) -> None:
    moved = _move(config, "los", "--to", "toetsen")
    assert "Without a migration window (no --window): its platform sees its students" in moved
    assert _moves(config) == []


def test_moves_and_rotations_that_would_make_two_windows_are_refused(
    config: Path,  # noqa: F811
) -> None:
    _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    # A second move inside the open move window, with a window or without.
    for window in (("--window", "5"), ()):
        _refused(
            config,
            ("chain", "move", "leesboek", "--no-chain", *window, "--yes"),
            "service leesboek is in the migration window of its move from leermiddelen until ",
        )
    # A rotation of the chain it moved into.
    _refused(
        config,
        ("pseudonym-key", "rotate", "--chain", "toetsen", "--window", "10"),
        "service leesboek moved into chain toetsen and is in its migration window until ",
    )
    # The chain it left may rotate: the record names the version it used to receive.
    rotated = run(
        "pseudonym-key", "rotate", "--chain", "leermiddelen", "--window", "10", "--config", config
    )
    assert rotated.exit_code == 0, rotated.output
    assert _moves(config) == [("leesboek", "leermiddelen", 1, "toetsen")]
    # A move into a chain in a rotation window, or out of one.
    _refused(
        config,
        ("chain", "move", "los", "--to", "leermiddelen", "--window", "5", "--yes"),
        "chain leermiddelen (it would go to) is in a pseudonym key migration window until ",
    )
    assert run("chain", "move", "leesboek", "--finish", "--config", config).exit_code == 0
    assert run("pseudonym-key", "finish", "--chain", "toetsen", "--config", config).exit_code == 1
    _rotate = ("pseudonym-key", "rotate", "--chain", "toetsen", "--window", "10")
    assert run(*_rotate, "--config", config).exit_code == 0
    _refused(
        config,
        ("chain", "move", "leesboek", "--to", "leermiddelen", "--yes"),
        "chain toetsen (it is in) is in a pseudonym key migration window until ",
    )
    # Bad windows and an early end without a window.
    _refused(
        config,
        ("chain", "move", "los", "--to", "toetsen", "--window", "0", "--yes"),
        "the window must be 1 to 366 days, not 0",
    )
    _refused(
        config,
        ("chain", "move", "los", "--finish"),
        "service los has no open move window to finish",
    )
    usage = run("chain", "move", "los", "--finish", "--no-chain", "--config", config)
    assert usage.exit_code == 2 and "--finish takes the service alone" in usage.output


def test_the_record_goes_through_export_and_import_and_with_its_service(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    text = exported.read_text()
    assert '[[chain_moves]]\nservice_id = "leesboek"\nfrom_chain = "leermiddelen"\n' in text
    # Into a fresh instance: the same record, and the same file out again.
    fresh = tmp_path / "fresh"
    assert run("init", fresh).exit_code == 0
    imported = run("registry", "import", "--config", fresh / "ketenbroker.toml", exported)
    assert imported.exit_code == 0, imported.output
    assert "added    chain move leesboek" in imported.output
    assert _moves(fresh / "ketenbroker.toml") == _moves(config)
    again = tmp_path / "again.toml"
    assert run("registry", "export", "--config", fresh / "ketenbroker.toml", again).exit_code == 0
    assert again.read_text() == text
    # Into the registry it came from: nothing changes.
    same = run("registry", "import", "--config", config, exported)
    assert same.exit_code == 0 and "chain moves: 0 added, 0 changed, 1 unchanged" in same.output
    # A record naming a chain the service is not in is refused, changing nothing.
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace('to_chain = "toetsen"', 'to_chain = "leermiddelen"'))
    before = state(fresh / "ketenbroker.toml")
    refused = run("registry", "import", "--config", fresh / "ketenbroker.toml", wrong)
    assert refused.exit_code == 1
    assert "service leesboek is in toetsen, not leermiddelen" in refused.output
    assert state(fresh / "ketenbroker.toml") == before

    removed = run("publisher", "remove", "leesboek", "--yes", "--config", config)
    assert removed.exit_code == 0, removed.output
    assert _moves(config) == []


def _export(config: Path, file: Path) -> str:  # noqa: F811
    assert run("registry", "export", "--config", config, file).exit_code == 0
    return file.read_text()


def _end_windows(config: Path) -> None:  # noqa: F811
    """Every move window's end passes (moved into the past, as the clock would)."""
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        connection.execute("UPDATE chain_moves SET window_ends = '2020-01-01 00:00:00.000000'")


def test_an_import_that_moves_a_service_in_its_move_window_is_refused_naming_the_finish(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The file (an export from before the move) puts the service back in the chain it left,
    while its move window is open: one line naming `chain move --finish`, nothing changed, as
    `chain move` itself refuses it; the dry run says the same."""
    _export(config, tmp_path / "before.toml")
    _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    before = state(config)
    for dry_run in (("--dry-run",), ()):
        refused = run("registry", "import", *dry_run, "--config", config, tmp_path / "before.toml")
        assert refused.exit_code == 1, refused.output
        problems = [line for line in refused.output.splitlines() if line.startswith("  ")]
        assert problems == [
            "  services[1] leesboek: chain: service leesboek is in the migration window of its "
            "move from leermiddelen until " + problems[0].split(" until ")[1]
        ]
        assert "end it first (`ketenbroker chain move leesboek --finish`)" in problems[0]
        assert state(config) == before


def test_an_import_that_moves_a_service_whose_window_ended_removes_its_record_and_says_so(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """After the window: the import moves the service, its ended record goes (as a `chain
    move` removes it) and the summary says so; nothing is left to block the next move or a
    rotation of the chain it had moved into."""
    _export(config, tmp_path / "before.toml")
    _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    _end_windows(config)
    dry = run("registry", "import", "--dry-run", "--config", config, tmp_path / "before.toml")
    assert dry.exit_code == 0, dry.output
    assert "would remove chain move leesboek" in dry.output
    assert "chain moves: 0 added, 0 changed, 1 removed, 0 unchanged" in dry.output
    assert _moves(config) == [("leesboek", "leermiddelen", 1, "toetsen")]
    imported = run("registry", "import", "--config", config, tmp_path / "before.toml")
    assert imported.exit_code == 0, imported.output
    assert "removed  chain move leesboek" in imported.output
    assert "chain moves: 0 added, 0 changed, 1 removed, 0 unchanged" in imported.output
    assert "kept" not in imported.output
    assert imported.output.splitlines()[-1] == "0 added, 1 changed, 1 removed, 3 unchanged."
    assert _moves(config) == []
    rotated = run("pseudonym-key", "rotate", "--chain", "toetsen", "--window", "10", "--config",
                  config)  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    assert run("pseudonym-key", "finish", "--chain", "toetsen", "--config", config).exit_code == 0
    _move(config, "leesboek", "--to", "toetsen", "--window", "5")


def test_an_import_moves_a_service_only_outside_the_key_windows_of_both_chains(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """As `chain move` without a window: not out of, nor into, a chain in a rotation window."""
    text = _export(config, tmp_path / "registry.toml")
    into = tmp_path / "into.toml"
    into.write_text(text.replace('chain = "leermiddelen"', 'chain = "toetsen"'))
    rotated = run("pseudonym-key", "rotate", "--chain", "toetsen", "--window", "10", "--config",
                  config)  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    before = state(config)
    refused = run("registry", "import", "--config", config, into)
    assert refused.exit_code == 1
    assert (
        "  services[1] leesboek: chain: chain toetsen (it would go to) is in a pseudonym key "
        "migration window until "
    ) in refused.output
    assert "(`ketenbroker pseudonym-key finish --chain toetsen`)" in refused.output
    assert state(config) == before


def test_a_record_the_file_brings_for_a_service_it_moves_starts_from_the_chain_it_leaves(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A file from another registry where the service moved with a window: imported where
    the service is in the record's `from_chain`, it moves with its window; where it is in
    another chain it is refused (the previous pseudonym would not be the one its platform
    knows)."""
    elsewhere = tmp_path / "elsewhere"
    assert run("init", elsewhere).exit_code == 0
    other = elsewhere / "ketenbroker.toml"
    _export(config, tmp_path / "staged.toml")
    # Another registry with the same services, where los is in leermiddelen.
    assert run("registry", "import", "--config", other, tmp_path / "staged.toml").exit_code == 0
    assert _move(other, "los", "--to", "leermiddelen")
    _move(config, "los", "--to", "toetsen", "--window", "30")
    _export(config, tmp_path / "moved.toml")
    refused_import(
        other,
        tmp_path / "moved.toml",
        "chain_moves[1]: from_chain: service los is in leermiddelen before the import, "
        "not service:los: its platform knows it by that chain's pseudonym",
    )
    # Where los is still in no chain: it moves, with the file's window.
    fresh = tmp_path / "fresh"
    assert run("init", fresh).exit_code == 0
    assert run("registry", "import", "--config", fresh / "ketenbroker.toml",
               tmp_path / "staged.toml").exit_code == 0  # fmt: skip
    imported = run("registry", "import", "--config", fresh / "ketenbroker.toml",
                   tmp_path / "moved.toml")  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert "changed  service los" in imported.output
    assert "added    chain move los" in imported.output
    assert _moves(fresh / "ketenbroker.toml") == [("los", "service:los", 1, "toetsen")]


def test_a_record_an_older_version_left_behind_releases_nothing_and_blocks_nothing(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A registry where an import by a version before this rule moved the service on during
    its window, leaving its record: the record names a chain the service is no longer in. It
    refuses no rotation and no move, shows nowhere, and is not exported (no import would take
    it); the next move removes it."""
    _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        connection.execute("UPDATE services SET chain_id = NULL WHERE id = 'leesboek'")
    status = run("pseudonym-key", "status", "--config", config).output
    assert "service leesboek" not in status
    listed = run("chain", "list", "--json", "--config", config).output
    assert "leesboek" not in listed
    text = _export(config, tmp_path / "registry.toml")
    assert "[[chain_moves]]" not in text
    fresh = tmp_path / "fresh"
    assert run("init", fresh).exit_code == 0
    assert run("registry", "import", "--config", fresh / "ketenbroker.toml",
               tmp_path / "registry.toml").exit_code == 0  # fmt: skip
    rotated = run("pseudonym-key", "rotate", "--chain", "toetsen", "--window", "10", "--config",
                  config)  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    assert run("pseudonym-key", "finish", "--chain", "toetsen", "--config", config).exit_code == 0
    finish = run("chain", "move", "leesboek", "--finish", "--config", config)
    assert finish.exit_code == 1 and "has no open move window to finish" in finish.output
    _move(config, "leesboek", "--to", "leermiddelen", "--window", "5")
    assert _moves(config) == [("leesboek", "service:leesboek", 1, "leermiddelen")]


def _with_record(text: str, service: str, from_chain: str, to_chain: str, ends: str) -> str:
    return (
        f'{text}\n[[chain_moves]]\nservice_id = "{service}"\nfrom_chain = "{from_chain}"\n'
        f'from_version = 1\nto_chain = "{to_chain}"\nwindow_ends = {ends}\n'
    )


def test_a_file_cannot_add_a_move_the_import_does_not_make(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The review's proof: leesboek was always in leermiddelen; a record "moved from toetsen"
    would hand it every student's toetsen pseudonym as the previous one. Refused, within the
    longest window or beyond it (then that is said first), changing nothing."""
    text = _export(config, tmp_path / "registry.toml")
    soon = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()
    invented = tmp_path / "invented.toml"
    invented.write_text(_with_record(text, "leesboek", "toetsen", "leermiddelen", soon))
    refused_import(
        config,
        invented,
        "chain_moves[1]: service_id: service leesboek is in leermiddelen in the registry and "
        "the file does not move it: a move record comes only with the move it records",
    )
    assert _moves(config) == []
    far = tmp_path / "far.toml"
    far.write_text(
        _with_record(text, "leesboek", "toetsen", "leermiddelen", "2099-01-01T00:00:00Z")
    )
    refused_import(
        config,
        far,
        "chain_moves[1]: window_ends: the window ends 2099-01-01 00:00 UTC, more than 366 days "
        "from now (at most ",
    )


def test_a_service_new_to_the_registry_takes_the_files_record_within_the_longest_window(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Rebuilding from an export: nothing here says where the service was, so its record is
    taken as the file has it, but a window ending more than 366 days on is refused."""
    _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    text = _export(config, tmp_path / "registry.toml")
    ends = text[text.index("window_ends = ", text.index("[[chain_moves]]")) :].splitlines()[0]
    far = tmp_path / "far.toml"
    far.write_text(text.replace(ends, "window_ends = 2099-01-01T00:00:00Z"))
    fresh = tmp_path / "fresh" / "ketenbroker.toml"
    assert run("init", fresh.parent).exit_code == 0
    refused_import(fresh, far, "chain_moves[1]: window_ends: ")
    imported = run("registry", "import", "--config", fresh, tmp_path / "registry.toml")
    assert imported.exit_code == 0, imported.output
    assert _moves(fresh) == [("leesboek", "leermiddelen", 1, "toetsen")]


def test_a_service_new_to_a_registry_with_services_comes_without_its_record(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Only a registry with no service at all takes a new service's record on the file's word:
    a registry that holds one refuses it, changing nothing, and says how instead (add the
    service, then `chain move --window`)."""
    _move(config, "leesboek", "--to", "toetsen", "--window", "30")
    _export(config, tmp_path / "registry.toml")
    other = tmp_path / "other" / "ketenbroker.toml"
    assert run("init", other.parent).exit_code == 0
    added = run("publisher", "add", "--config", other, "--id", "anders", "--name", "Anders",
                "--oidc-redirect-uri", "https://anders.example/cb")  # fmt: skip
    assert added.exit_code == 0, added.output
    refused_import(
        other,
        tmp_path / "registry.toml",
        "chain_moves[1]: service_id: service leesboek is new to the registry, which holds other "
        "services: a move record comes with a new service only when a registry is rebuilt from "
        "an export into an empty one; add the service in chain leermiddelen first, then move it "
        "(`ketenbroker chain move leesboek --to toetsen --window DAYS`)",
    )
    assert _moves(other) == []
