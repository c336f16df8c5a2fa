"""`ketenbroker school add --town`, `school update --town`, `school list` and the registry file's
`town`: set, changed, cleared, listed, carried by export and import; a bad town is refused with
the reason and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config import load_settings
from broker.core.towns import MAX_TOWN
from broker.registry import SqlRegistry

# The CLI's fixtures: a broker with a chain, the school 99XX00 (no town) and a publisher.
from tests.adapters.test_cli import (  # noqa: F401  # fixtures
    Metadata,
    expect_refusal,
    metadata,
    populated,
    populated_template,
    unchanged,
)
from tests.support.cli import Result, run


def exported(config: Path, folder: Path) -> tuple[Path, str]:
    """The registry of `config` exported into `folder`: the file and its text."""
    file = folder / "registry.toml"
    assert run("registry", "export", "--config", config, file).exit_code == 0
    return file, file.read_text()


def import_text(config: Path, file: Path, text: str) -> Result:
    """`text` written to `file` and imported into the registry of `config`."""
    file.write_text(text)
    return run("registry", "import", "--config", config, file)


def _town(config: Path, school_id: str) -> str:
    registry = SqlRegistry(load_settings(config).registry_url)
    try:
        school = registry.school(school_id)
        assert school is not None
        return school.town
    finally:
        registry.close()


def test_a_school_is_added_with_its_town(
    populated: Path,  # noqa: F811 - the imported fixture
    metadata: Metadata,  # noqa: F811
) -> None:
    result = run(
        "school", "add", "--config", populated, "--id", "11AA00", "--name", "Stedelijk Gymnasium",
        "--town", "  Leiden ", "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _town(populated, "11AA00") == "Leiden"
    listed = [json.loads(line) for line in run("school", "list", "--config", populated, "--json")
              .output.splitlines() if line.startswith("{")]  # fmt: skip
    assert {line["id"]: line["town"] for line in listed} == {"11AA00": "Leiden", "99XX00": None}
    table = run("school", "list", "--config", populated).output
    assert "TOWN" in table and "Leiden" in table


def test_update_sets_changes_and_clears_the_town(populated: Path) -> None:  # noqa: F811
    result = run("school", "update", "--config", populated, "--id", "99XX00", "--town", "Utrecht")
    assert result.exit_code == 0, result.output
    assert "School 99XX00: town set to Utrecht." in result.output
    assert _town(populated, "99XX00") == "Utrecht"
    run("school", "update", "--config", populated, "--id", "99XX00", "--town", "'s-Hertogenbosch")
    assert _town(populated, "99XX00") == "'s-Hertogenbosch"
    result = run("school", "update", "--config", populated, "--id", "99XX00", "--town", "")
    assert result.exit_code == 0 and "town cleared" in result.output
    assert _town(populated, "99XX00") == ""


@pytest.mark.parametrize(
    ("town", "reason"),
    [
        ("L" * (MAX_TOWN + 1), f"at most {MAX_TOWN} characters"),
        ("Leiden\u202e", "plain text"),
        ("Lei\x00den", "plain text"),
    ],
)
def test_a_bad_town_is_refused_and_changes_nothing(
    unchanged: Path,  # noqa: F811
    metadata: Metadata,  # noqa: F811
    town: str,
    reason: str,
) -> None:
    update = run("school", "update", "--config", unchanged, "--id", "99XX00", "--town", town)
    expect_refusal(update, "--town", reason)
    add = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", "X",
        "--town", town, "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    expect_refusal(add, "--town", reason)


def test_update_needs_something_to_update_and_a_known_school(unchanged: Path) -> None:  # noqa: F811
    expect_refusal(run("school", "update", "--config", unchanged, "--id", "99XX00"), "--town")
    unknown = run("school", "update", "--config", unchanged, "--id", "00ZZ00", "--town", "Ede")
    expect_refusal(unknown, "no school with id '00ZZ00'")


def test_the_town_travels_with_the_registry_file(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run("school", "update", "--config", populated, "--id", "99XX00", "--town", "Den Haag")
    file, text = exported(populated, tmp_path)
    assert 'town = "Den Haag"' in text
    # A file that moves the school to another town changes only that.
    result = import_text(populated, file, text.replace('town = "Den Haag"', 'town = "Delft"'))
    assert result.exit_code == 0, result.output
    assert "changed  school 99XX00" in result.output
    assert _town(populated, "99XX00") == "Delft"


def test_a_bad_town_in_the_registry_file_is_named_with_its_place(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    file = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", populated, file).exit_code == 0
    text = file.read_text().replace(
        'name = "De Demoschool"\n', 'name = "De Demoschool"\ntown = 3\n'
    )
    file.write_text(text)
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 1
    assert "town: must be text of 1-80 characters" in result.output
    assert _town(populated, "99XX00") == ""


@pytest.mark.parametrize("name", ["Lees\u200bplank", "Lyceum\u202emuecyL", "   "])
def test_a_name_that_would_mislead_students_is_refused_and_changes_nothing(
    unchanged: Path,  # noqa: F811
    metadata: Metadata,  # noqa: F811
    name: str,
) -> None:
    """The same rule for every name students or staff read (core/display_text.py)."""
    school = run(
        "school", "add", "--config", unchanged, "--id", "11AA00", "--name", name,
        "--saml-metadata", metadata.second_idp,
    )  # fmt: skip
    expect_refusal(school, "--name", "the name must")
    chain = run("chain", "add", "--config", unchanged, "--id", "toetsen2", "--name", name)
    expect_refusal(chain, "--name", "the name must")


def test_a_misleading_name_in_the_registry_file_is_named_with_its_place(
    populated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    file = tmp_path / "registry.toml"
    assert run("registry", "export", "--config", populated, file).exit_code == 0
    file.write_text(
        file.read_text().replace('name = "De Demoschool"', 'name = "De\u200bDemoschool"')
    )
    result = run("registry", "import", "--config", populated, file)
    assert result.exit_code == 1
    assert "name: must be plain text: letters, digits, spaces and punctuation" in result.output
