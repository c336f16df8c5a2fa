"""`ketenbroker chain list|remove|move`: each chain with its services and pseudonym key version, never
key material; a removal refused (exit code 1) while a service is in the chain or its window is
open, one that only says what would go (exit code 3), and the removal itself, each refusal with
the registry and the key set file unchanged. A removed chain's kept key version record does not
stop the registry file's round trip. A service moved between chains only with `--yes`, and
its pseudonyms then follow the new chain."""

from __future__ import annotations

import getpass
import json
import sqlite3
from pathlib import Path

from tests.adapters.test_cli_pseudonym_key import (
    config,  # noqa: F401  # a fixture
    no_key_material,
    state,
)
from tests.support.cli import run

CONFIRMATION_NEEDED = 3


def _rotate(config: Path, chain: str) -> None:  # noqa: F811 - a path, not the fixture
    result = run("pseudonym-key", "rotate", "--config", config, "--chain", chain, "--window", "30")
    assert result.exit_code == 0, result.output


def test_chain_list_shows_services_and_key_versions_without_key_material(
    config: Path,  # noqa: F811 - the imported fixture
) -> None:
    _rotate(config, "leermiddelen")
    before = state(config)
    listed = run("chain", "list", "--config", config)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == [
        "ID", "NAME", "SERVICES", "KEY", "VERSION", "WINDOW", "MOVE", "WINDOWS"
    ]  # fmt: skip
    assert lines[1].split()[:4] == ["leermiddelen", "leermiddelen", "1", "2"]
    assert "open until " in lines[1]
    assert lines[1].endswith("(previous version 1 released too)  -")
    assert lines[2].split() == ["toetsen", "toetsen", "0", "1", "-", "-"]
    assert lines[3] == "2 chains."
    as_json = run("chain", "list", "--config", config, "--json")
    entries = [json.loads(line) for line in as_json.output.splitlines()]
    assert entries[1] == {
        "id": "toetsen",
        "name": "toetsen",
        "services": 0,
        "key_version": 1,
        "window": None,
        "move_windows": None,
    }
    assert entries[0]["key_version"] == 2 and entries[0]["window"].startswith("open until ")
    no_key_material(config, listed.output + as_json.output)
    assert state(config) == before


def test_a_chain_with_services_an_open_window_or_no_such_id_is_refused(
    config: Path,  # noqa: F811
) -> None:
    before = state(config)
    for confirm in ((), ("--yes",)):
        refused = run("chain", "remove", "leermiddelen", *confirm, "--config", config)
        assert refused.exit_code == 1
        assert refused.output == (
            "Error: chain leermiddelen still has services leesboek: move each to another chain "
            "or out of every chain (`ketenbroker chain move SERVICE --to CHAIN` or "
            "`--no-chain`, the operator portal's Services page, or a registry import; its "
            "pseudonyms change), or remove it with `ketenbroker publisher remove SERVICE "
            "--yes`; nothing was changed\n"
        )
    unknown = run("chain", "remove", "nergens", "--yes", "--config", config)
    assert unknown.exit_code == 1 and unknown.output == "Error: no chain with id 'nergens'\n"
    assert state(config) == before
    _rotate(config, "toetsen")
    before = state(config)
    in_window = run("chain", "remove", "toetsen", "--yes", "--config", config)
    assert in_window.exit_code == 1
    assert "chain toetsen is in a pseudonym key migration window until " in in_window.output
    assert "`ketenbroker pseudonym-key finish --chain toetsen`" in in_window.output
    assert state(config) == before


def test_without_yes_it_says_what_would_go_and_with_yes_the_chain_goes(
    config: Path,  # noqa: F811
) -> None:
    before = state(config)
    plan = run("chain", "remove", "toetsen", "--config", config)
    assert plan.exit_code == CONFIRMATION_NEEDED, plan.output
    assert plan.output.splitlines() == [
        "Chain toetsen (toetsen) would be removed.",
        "Goes with it:",
        "  the chain (no service is in it)",
        "Stays:",
        "  0 receipts naming it (what was released to whom)",
        "  no pseudonym key version record (never rotated: the key set's current version)",
        "  the pseudonym key set file, unchanged (its versions are shared by every chain)",
        "  its pseudonyms: a chain added again as toetsen gives its services the same ones "
        "again; a chain that must not be linked to it needs a new id",
        "Nothing was changed: run again with --yes to remove toetsen.",
    ]
    assert state(config) == before

    removed = run("chain", "remove", "toetsen", "--yes", "--config", config)
    assert removed.exit_code == 0, removed.output
    assert removed.output.startswith("Chain toetsen (toetsen) removed.\nWent with it:\n")
    assert "Running brokers forget it within a second" in removed.output
    assert state(config)[0] == before[0]  # the key set file
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        recorded = connection.execute(
            "SELECT kind, entry_id, name, removed_by FROM removals"
        ).fetchall()
    assert recorded == [("chain", "toetsen", "toetsen", f"cli:{getpass.getuser()}")]
    assert run("chain", "list", "--config", config).output.endswith("1 chain.\n")
    again = run("chain", "remove", "toetsen", "--yes", "--config", config)
    assert again.exit_code == 1 and "no chain with id 'toetsen'" in again.output


def test_a_removed_chains_key_version_stays_through_export_and_import(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    _rotate(config, "toetsen")
    assert run("pseudonym-key", "finish", "--config", config, "--chain", "toetsen").exit_code == 0
    removed = run("chain", "remove", "toetsen", "--yes", "--config", config)
    assert "its pseudonym key version record (version 2)" in removed.output
    status = run("pseudonym-key", "status", "--config", config).output
    assert "toetsen (removed; record kept): version 2\n" in status
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    assert '[[pseudonym_key_versions]]\nchain = "toetsen"\n' in exported.read_text()
    # The registry's own record, with no chain left to name it, passes as it is.
    again = run("registry", "import", "--config", config, exported)
    assert again.exit_code == 0, again.output
    assert "0 added, 0 changed" in again.output
    # Added again under its id, the chain derives with its kept version: the same pseudonyms.
    assert run("chain", "add", "--config", config, "--id", "toetsen", "--name", "T").exit_code == 0
    status = run("pseudonym-key", "status", "--config", config).output
    assert "toetsen: version 2\n" in status


def test_a_service_moves_to_another_chain_or_none_only_with_yes(
    config: Path,  # noqa: F811
) -> None:
    before = state(config)
    plan = run("chain", "move", "leesboek", "--to", "toetsen", "--config", config)
    assert plan.exit_code == CONFIRMATION_NEEDED, plan.output
    assert plan.output.splitlines() == [
        "Service leesboek (leesboek) would move from chain leermiddelen to chain toetsen.",
        "  Its students would get other pseudonyms there (the chain is an input of the pseudonym).",
        "  Without a migration window (no --window): its platform would see its students as "
        "new students.",
        "Nothing was changed: run again with --yes to move leesboek.",
    ]
    assert state(config) == before

    moved = run("chain", "move", "leesboek", "--to", "toetsen", "--yes", "--config", config)
    assert moved.exit_code == 0, moved.output
    assert moved.output.startswith(
        "Service leesboek (leesboek) moved from chain leermiddelen to chain toetsen.\n"
    )
    listed = run("chain", "list", "--config", config, "--json").output
    counts = {e["id"]: e["services"] for e in map(json.loads, listed.splitlines())}
    assert counts == {"leermiddelen": 0, "toetsen": 1}
    # Now the chain it left can go, as the refusal said.
    assert run("chain", "remove", "leermiddelen", "--yes", "--config", config).exit_code == 0

    same = run("chain", "move", "leesboek", "--to", "toetsen", "--yes", "--config", config)
    assert same.exit_code == 0
    assert same.output == (
        "Service leesboek (leesboek) is already in chain toetsen; nothing was changed.\n"
    )
    out = run("chain", "move", "leesboek", "--no-chain", "--yes", "--config", config)
    assert out.exit_code == 0, out.output
    assert "moved from chain toetsen to no chain." in out.output
    status = run("pseudonym-key", "status", "--config", config).output
    assert "service:leesboek: version 1\n" in status


def test_a_move_to_an_unknown_chain_or_of_an_unknown_service_changes_nothing(
    config: Path,  # noqa: F811
) -> None:
    before = state(config)
    for args, said in (
        (("leesboek", "--to", "nergens"), "Error: no chain with id 'nergens'\n"),
        (("niemand", "--to", "toetsen"), "Error: no service with id 'niemand'\n"),
    ):
        refused = run("chain", "move", *args, "--yes", "--config", config)
        assert (refused.exit_code, refused.output) == (1, said)
    for wrong in ((), ("--to", "toetsen", "--no-chain")):
        usage = run("chain", "move", "leesboek", *wrong, "--yes", "--config", config)
        assert usage.exit_code == 2
        assert "give --to CHAIN or --no-chain, not both" in usage.output
    assert state(config) == before


def test_a_chain_id_of_another_shape_is_refused_and_changes_nothing(
    config: Path,  # noqa: F811
) -> None:
    """A chain id is lower-case letters, digits and hyphens, as the portal asks: `service:los`
    would give its services the pseudonyms of the service los, which is in no chain."""
    before = state(config)
    colon = run("chain", "add", "--config", config, "--id", "service:los", "--name", "Los")
    assert colon.exit_code == 1
    assert colon.output == (
        "Error: chain id 'service:los' has a ':': a chain id must be lower-case letters, digits "
        "and hyphens, starting with a letter or digit (at most 63), so that it can never equal "
        "the pseudonym input of a service in no chain (service:<id>)\n"
    )
    for chain_id in ("Leermiddelen", "leer_middelen", "-toetsen", "x" * 64):
        refused = run("chain", "add", "--config", config, "--id", chain_id, "--name", "X")
        assert refused.exit_code == 1
        assert refused.output.startswith(f"Error: chain id {chain_id!r} must be lower-case")
    assert state(config) == before
    added = run("chain", "add", "--config", config, "--id", "examens-2", "--name", "Examens")
    assert added.exit_code == 0, added.output


def _register_chain_as_before_the_rule(config: Path, chain_id: str) -> None:  # noqa: F811
    """A chain a registry holds from before the rule (an older version, a file), with leesboek
    in it."""
    with sqlite3.connect(config.parent / "registry.sqlite3") as connection:
        connection.execute("INSERT INTO chains (id, name) VALUES (?, 'Oud')", (chain_id,))
        connection.execute("UPDATE services SET chain_id = ? WHERE id = 'leesboek'", (chain_id,))


def test_a_chain_id_from_before_the_rule_stays_and_registry_problems_names_it(
    config: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Never renamed (every pseudonym of its chain would change): the registry's own file
    imports again, `registry problems` names it, and only a new chain of that id is refused,
    in the file's checks (all of them listed) as in `chain add`."""
    _register_chain_as_before_the_rule(config, "service:los")
    problems = run("registry", "problems", "--config", config, "--json")
    assert problems.exit_code == 1, problems.output
    kinds = {k["kind"]: k for k in json.loads(problems.output)["kinds"]}
    assert kinds["chains_id_not_plain"]["entries"] == [
        {"id": "service:los", "name": "Oud", "reason": "chain_pseudonyms_shared"}
    ]
    exported = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", config, exported).exit_code == 0
    again = run("registry", "import", "--config", config, exported)
    assert again.exit_code == 0, again.output
    fresh = tmp_path / "fresh" / "ketenbroker.toml"
    assert run("init", fresh.parent).exit_code == 0
    before = state(fresh)
    refused = run("registry", "import", "--config", fresh, exported)
    assert refused.exit_code == 1
    assert "chains[2] service:los: id: chain id 'service:los' has a ':'" in refused.output, (
        refused.output
    )
    assert state(fresh) == before
